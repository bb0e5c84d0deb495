#include "common/cpu_features.h"

#include <pybind11/pybind11.h>

#include <atomic>

namespace sc {

static CpuIsa detect() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::avx2;
#endif
  return CpuIsa::generic;
}

static std::atomic<int> g_isa{-1};

CpuIsa active_cpu_isa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(detect());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<CpuIsa>(v);
}

bool cpu_supports(CpuIsa isa) { return isa == CpuIsa::generic || detect() == CpuIsa::avx2; }

void set_cpu_isa(const std::string& name) {
  CpuIsa isa;
  if (name == "auto") {
    isa = detect();
  } else if (name == "generic") {
    isa = CpuIsa::generic;
  } else if (name == "avx2") {
    isa = CpuIsa::avx2;
  } else {
    throw pybind11::value_error("cpu isa must be 'auto', 'generic' or 'avx2', got '" + name + "'");
  }
  if (!cpu_supports(isa)) throw pybind11::value_error("this CPU does not support " + name);
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

const char* cpu_isa_name(CpuIsa isa) { return isa == CpuIsa::avx2 ? "avx2+fma" : "generic x86-64"; }

}  // namespace sc
