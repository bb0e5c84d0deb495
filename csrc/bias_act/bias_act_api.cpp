#include "bias_act/bias_act_api.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "bias_act/bias_act.h"
#include "bias_act/bias_act_math.h"
#include "common/cpu_features.h"
#include "common/scalar_checks.h"
#include "common/tensor_view.h"

namespace sc {

void bias_act(const py::object& x_obj, const py::object& b_obj, const py::object& m_obj, const py::object& out_obj,
              int64_t dim, int64_t act, double alpha, double gain, double clamp, int64_t order,
              int64_t threads_arg, std::uintptr_t stream) {
  Borrowed xb(x_obj, "x"), ob(out_obj, "out");
  std::unique_ptr<Borrowed> bb, mb;
  if (!b_obj.is_none()) bb = std::make_unique<Borrowed>(b_obj, "b");
  if (!m_obj.is_none()) mb = std::make_unique<Borrowed>(m_obj, "grad");
  const View &x = xb.view(), &out = ob.view();

  const int threads = require_threads(threads_arg);
  require_range("act", act, 0, kNumActs - 1);
  require_range("order", order, 0, 2);
  if (order > 0 && !mb) throw py::value_error("grad: required for derivative orders 1 and 2");
  require_finite("alpha", alpha);
  require_finite("gain", gain);
  require_not_nan("clamp", clamp);
  require_range("dim", dim, 0, std::max(x.ndim - 1, 0));  // checked even without a bias: never ignored silently
  require_float_dtype(x, x.device == Dev::cuda);
  require_same_dtype(x, out);
  require_same_device(x, out);
  require_contiguous(x);
  require_contiguous(out);
  if (out.ndim != x.ndim) throw py::value_error("out: rank differs from x");
  for (int i = 0; i < x.ndim; ++i) require_dim(out, i, x.shape[i], "shape of x");
  require_no_overlap(out, x);

  BiasActArgs a;
  a.act = int(act);
  a.alpha = alpha;
  a.gain = gain;
  a.clamp = clamp;
  a.order = int(order);
  if (bb) {
    const View& b = bb->view();
    if (x.ndim == 0) throw py::value_error("x: a bias needs x with at least one dimension");
    if (dim < 0 || dim >= x.ndim) {
      throw py::value_error("dim " + std::to_string(dim) + " is out of range for x of shape " + x.shape_str());
    }
    require_ndim(b, 1);
    require_same_dtype(x, b);
    require_same_device(x, b);
    require_contiguous(b);
    require_dim(b, 0, x.shape[dim], "size of x along dim");
    require_no_overlap(out, b);
    for (int i = 0; i < dim; ++i) a.outer *= x.shape[i];
    a.channels = x.shape[dim];
    for (int i = dim + 1; i < x.ndim; ++i) a.inner *= x.shape[i];
  } else {
    a.outer = 1;
    a.channels = 1;
    a.inner = x.numel();
  }
  if (mb) {
    const View& m = mb->view();
    require_same_dtype(x, m);
    require_same_device(x, m);
    require_contiguous(m);
    if (m.ndim != x.ndim) throw py::value_error("grad: rank differs from x");
    for (int i = 0; i < x.ndim; ++i) require_dim(m, i, x.shape[i], "shape of x");
    require_no_overlap(out, m);
  }
  if (x.numel() == 0) return;

  const void* bp = bb ? bb->view().data : nullptr;
  const void* mp = mb ? mb->view().data : nullptr;
  if (x.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    const bool avx2 = active_cpu_isa() == CpuIsa::avx2;
    if (x.dtype == DType::f32) {
      auto xp = static_cast<const float*>(x.data);
      auto b = static_cast<const float*>(bp);
      auto m = static_cast<const float*>(mp);
      auto o = static_cast<float*>(out.data);
      avx2 ? avx2::bias_act_cpu(xp, b, m, o, a, threads) : generic::bias_act_cpu(xp, b, m, o, a, threads);
    } else {
      auto xp = static_cast<const double*>(x.data);
      auto b = static_cast<const double*>(bp);
      auto m = static_cast<const double*>(mp);
      auto o = static_cast<double*>(out.data);
      avx2 ? avx2::bias_act_cpu(xp, b, m, o, a, threads) : generic::bias_act_cpu(xp, b, m, o, a, threads);
    }
    return;
  }
#ifdef SYNTHCORE_WITH_CUDA
  int code = x.dtype == DType::f32 ? 0 : x.dtype == DType::f64 ? 1 : x.dtype == DType::f16 ? 2 : 3;
  py::gil_scoped_release nogil;
  bias_act_cuda(x.data, bp, mp, out.data, code, a, x.device_id, stream);
#else
  (void)stream;
  throw py::value_error("x is on " + x.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

}  // namespace sc
