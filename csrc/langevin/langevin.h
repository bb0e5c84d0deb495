// Overdamped Langevin (Euler-Maruyama) update with in-kernel noise:
//   out = w + dt/mu * (F + k_l (w_avg - w)) + sqrt(dt)/mu * eta * xi,   xi = normal(seed, step, row_offset + i, j)
// and the bare noise generator (out = xi) used by tests and by callers that scale noise differently.
#pragma once
#include <cstdint>

namespace sc {

struct LangevinArgs {
  int64_t rows = 0, dim = 0;
  double dt = 0, mu = 1, k_l = 0, eta = 0;
  uint64_t seed = 0;
  int64_t step = 0, row_offset = 0;
};

// w, F, out: [rows, dim]; w_avg: [dim] or null (then the confinement term is off). noise_only: out = xi.
// CPU kernels, one copy per instruction set (see CMakeLists.txt).
#define SC_DECLARE_LANGEVIN_CPU(ns)                                                                          \
  namespace ns {                                                                                             \
  void langevin_cpu(const float* w, const float* F, const float* w_avg, float* out, const LangevinArgs& a,   \
                    bool noise_only, int threads);                                                           \
  void langevin_cpu(const double* w, const double* F, const double* w_avg, double* out,                      \
                    const LangevinArgs& a, bool noise_only, int threads);                                    \
  }
SC_DECLARE_LANGEVIN_CPU(generic)
SC_DECLARE_LANGEVIN_CPU(avx2)
#undef SC_DECLARE_LANGEVIN_CPU

void langevin_cuda(const void* w, const void* F, const void* w_avg, void* out, int dtype, const LangevinArgs& a,
                   bool noise_only, int device, std::uintptr_t stream);

}  // namespace sc
