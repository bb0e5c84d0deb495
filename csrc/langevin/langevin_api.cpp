#include "langevin/langevin_api.h"

#include <cmath>
#include <memory>

#include "common/tensor_view.h"
#include "langevin/langevin.h"

namespace sc {

void langevin(const py::object& w_obj, const py::object& F_obj, const py::object& avg_obj, const py::object& out_obj,
              double dt, double mu, double k_l, double eta, uint64_t seed, int64_t step, int64_t row_offset,
              bool noise_only, int threads, std::uintptr_t stream) {
  Borrowed ob(out_obj, "out");
  const View& out = ob.view();
  require_ndim(out, 2);
  require_float_dtype(out, false);
  require_contiguous(out);
  if (!(std::isfinite(dt) && dt >= 0)) throw py::value_error("dt must be finite and >= 0");
  if (!(std::isfinite(mu) && mu > 0)) throw py::value_error("mu must be finite and > 0");
  if (!std::isfinite(k_l) || !std::isfinite(eta)) throw py::value_error("k_l and eta must be finite");
  if (row_offset < 0 || step < 0) throw py::value_error("row_offset and step must be >= 0");
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
    if (out.dtype == DType::f32)
      langevin_cpu(static_cast<const float*>(w), static_cast<const float*>(F), static_cast<const float*>(avg),
                   static_cast<float*>(out.data), a, noise_only, threads);
    else
      langevin_cpu(static_cast<const double*>(w), static_cast<const double*>(F), static_cast<const double*>(avg),
                   static_cast<double*>(out.data), a, noise_only, threads);
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
