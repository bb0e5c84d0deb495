// The synthcore._C module: thin pybind11 bindings over the kernel entry points.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "bias_act/bias_act_api.h"
#include "common/cpu_features.h"
#include "common/cuda_info.h"
#include "langevin/langevin_api.h"
#include "modconv/modconv_api.h"
#include "pairwise/pairwise_api.h"
#include "upfirdn2d/upfirdn2d_api.h"

namespace py = pybind11;

#ifndef SYNTHCORE_WITH_CUDA
namespace sc {
CudaInfo cuda_info() { return CudaInfo{}; }
}  // namespace sc
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "synthcore native kernels (CPU, and CUDA when compiled in). Called through synthcore.ops.";

  m.def("build_info", [] {
    sc::CudaInfo c = sc::cuda_info();
    py::dict d;
    d["cpu_isa_compiled"] = std::vector<std::string>{"generic", "avx2"};
    d["cpu_isa_active"] = sc::cpu_isa_name(sc::active_cpu_isa());
    d["cuda_compiled"] = c.compiled;
    d["cuda_archs"] = c.archs;
    d["cuda_runtime_version"] = c.runtime_version;
    d["cuda_driver_version"] = c.driver_version;
    d["cuda_device_count"] = c.device_count;
    d["cuda_error"] = c.error;
    return d;
  });
  m.def("set_cpu_isa", &sc::set_cpu_isa, py::arg("name"),
        "Select the CPU kernel variant: 'auto', 'generic' or 'avx2' (for tests and comparisons).");
  m.def("cpu_isa", [] { return std::string(sc::cpu_isa_name(sc::active_cpu_isa())); });

  m.def("upfirdn2d", &sc::upfirdn2d, py::arg("x"), py::arg("f"), py::arg("y"), py::arg("up_x"), py::arg("up_y"),
        py::arg("down_x"), py::arg("down_y"), py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"),
        py::arg("pad_y1"), py::arg("flip"), py::arg("gain"), py::arg("threads"), py::arg("stream") = 0);
  m.def("bias_act", &sc::bias_act, py::arg("x"), py::arg("b"), py::arg("grad"), py::arg("out"), py::arg("dim"),
        py::arg("act"), py::arg("alpha"), py::arg("gain"), py::arg("clamp"), py::arg("order"), py::arg("threads"),
        py::arg("stream") = 0);

  m.def("pairwise_epilogue", &sc::pairwise_epilogue, py::arg("S"), py::arg("q_sq"), py::arg("k_sq"),
        py::arg("q_group"), py::arg("k_group"), py::arg("acc_rows"), py::arg("acc_cols"), py::arg("row0"),
        py::arg("col0"), py::arg("metric"), py::arg("r0"), py::arg("k"), py::arg("r_count"), py::arg("scale"),
        py::arg("exclude_self"), py::arg("query_offset"), py::arg("symmetric"), py::arg("same_rows"),
        py::arg("threads"),
        py::arg("stream") = 0);
  m.def("pairwise_sparse_accumulate", &sc::pairwise_sparse_accumulate, py::arg("A"), py::arg("K"), py::arg("Q"),
        py::arg("F_rows"), py::arg("F_cols"), py::arg("threads"));
  m.def("langevin", &sc::langevin, py::arg("w"), py::arg("F"), py::arg("w_avg"), py::arg("out"), py::arg("dt"),
        py::arg("mu"), py::arg("k_l"), py::arg("eta"), py::arg("seed"), py::arg("step"), py::arg("row_offset"),
        py::arg("noise_only"), py::arg("threads"), py::arg("stream") = 0);

  m.def("modconv_epilogue", &sc::modconv_epilogue, py::arg("t"), py::arg("d"), py::arg("noise"), py::arg("bias"),
        py::arg("out"), py::arg("act"), py::arg("alpha"), py::arg("gain"), py::arg("clamp"), py::arg("threads"),
        py::arg("stream") = 0);
  m.def("modconv_epilogue_grad", &sc::modconv_epilogue_grad, py::arg("gy"), py::arg("t"), py::arg("d"),
        py::arg("noise"), py::arg("bias"), py::arg("gt"), py::arg("gd"), py::arg("gsum"), py::arg("act"),
        py::arg("alpha"), py::arg("gain"), py::arg("clamp"), py::arg("threads"), py::arg("stream") = 0);
  m.def("modconv_scale_grad", &sc::modconv_scale_grad, py::arg("g"), py::arg("x"), py::arg("s"), py::arg("gx"),
        py::arg("gs"), py::arg("threads"), py::arg("stream") = 0);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::bad_alloc& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });
}
