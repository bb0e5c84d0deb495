#include "langevin/langevin_api.h"

#include <cmath>
#include <limits>
#include <memory>

#include "common/cpu_features.h"
#include "common/scalar_checks.h"
#include "common/tensor_view.h"
#include "langevin/langevin.h"

namespace sc {

void langevin(const py::object& w_obj, const py::object& F_obj, const py::object& avg_obj, const py::object& out_obj,
              double dt, double mu, double k_l, double eta, uint64_t seed, int64_t step, int64_t row_offset,
              bool noise_only, int64_t threads_arg, std::uintptr_t stream) {
  Borrowed ob(out_obj, "out");
  const View& out = ob.view();
  require_ndim(out, 2);
  require_float_dtype(out, false);
  require_contiguous(out);
  const int threads = require_threads(threads_arg);
  require_finite_at_least("dt", dt, 0.0);
  require_finite_at_least("mu", mu, 0.0, /*strict=*/true);
  require_finite("k_l", k_l);
  require_finite("eta", eta);
  require_range("step", step, 0, (int64_t(1) << 32) - 1);  // the Philox counter holds 32 bits of it
  require_range("row_offset", row_offset, 0, std::numeric_limits<int64_t>::max());
  checked_add(row_offset, out.shape[0], "row_offset + rows");
  LangevinArgs a;
  a.rows = out.shape[0];
  a.dim = out.shape[1];
  a.dt = dt;
  a.mu = mu;
  a.k_l = k_l;
  a.eta = eta;
  a.seed = seed;
  a.step = step;
  a.row_offset = row_offset;

  std::unique_ptr<Borrowed> wb, fb, ab;
  const void *w = nullptr, *F = nullptr, *avg = nullptr;
  if (!noise_only) {
    wb = std::make_unique<Borrowed>(w_obj, "w");
    fb = std::make_unique<Borrowed>(F_obj, "F");
    for (const View* v : {&wb->view(), &fb->view()}) {
      require_same_dtype(out, *v);
      require_same_device(out, *v);
      require_contiguous(*v);
      if (v->ndim != 2) throw py::value_error(v->name + ": expected a 2-D tensor, got shape " + v->shape_str());
      require_dim(*v, 0, a.rows, "rows of out");
      require_dim(*v, 1, a.dim, "columns of out");
    }
    require_no_overlap(out, fb->view());
    w = wb->view().data;
    F = fb->view().data;
    if (out.data != w) require_no_overlap(out, wb->view());  // exactly in place is fine, partial overlap is not
    if (!avg_obj.is_none()) {
      ab = std::make_unique<Borrowed>(avg_obj, "w_avg");
      const View& v = ab->view();
      require_ndim(v, 1);
      require_same_dtype(out, v);
      require_same_device(out, v);
      require_contiguous(v);
      require_dim(v, 0, a.dim, "columns of w");
      avg = v.data;
    }
  }
  if (a.rows == 0 || a.dim == 0) return;
  if (out.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    const bool avx2 = active_cpu_isa() == CpuIsa::avx2;
    auto run = [&](auto tag) {
      using T = decltype(tag);
      auto c = [](const void* p) { return static_cast<const T*>(p); };
      T* o = static_cast<T*>(out.data);
      avx2 ? avx2::langevin_cpu(c(w), c(F), c(avg), o, a, noise_only, threads)
           : generic::langevin_cpu(c(w), c(F), c(avg), o, a, noise_only, threads);
    };
    if (out.dtype == DType::f32)
      run(float{});
    else
      run(double{});
    return;
  }
#ifdef SYNTHCORE_WITH_CUDA
  py::gil_scoped_release nogil;
  langevin_cuda(w, F, avg, out.data, out.dtype == DType::f32 ? 0 : 1, a, noise_only, out.device_id, stream);
#else
  (void)stream;
  throw py::value_error("out is on " + out.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

}  // namespace sc
