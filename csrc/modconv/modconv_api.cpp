#include "modconv/modconv_api.h"

#include <cmath>
#include <memory>
#include <string>

#include "bias_act/bias_act_math.h"
#include "common/cpu_features.h"
#include "common/scalar_checks.h"
#include "common/tensor_view.h"
#include "modconv/modconv.h"

namespace sc {
namespace {

using Opt = std::unique_ptr<Borrowed>;

Opt borrow_opt(const py::object& obj, const char* name) {
  return obj.is_none() ? nullptr : std::make_unique<Borrowed>(obj, name);
}
const View* view_of(const Opt& b) { return b ? &b->view() : nullptr; }
void* data_of(const Opt& b) { return b ? b->view().data : nullptr; }

// The dtype of per-plane arrays (d, s, gd, gsum, gs): double for double data, else float.
DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

void require_acc(const View& v, const View& data, int64_t n, int64_t c) {
  if (v.dtype != acc_dtype(data.dtype)) {
    throw py::type_error(v.name + ": expected dtype " + dtype_name(acc_dtype(data.dtype)) + " for " +
                         dtype_name(data.dtype) + " data, got " + dtype_name(v.dtype));
  }
  require_same_device(data, v);
  require_contiguous(v);
  require_ndim(v, 2);
  require_dim(v, 0, n, "batch size");
  require_dim(v, 1, c, "channel count");
}

// v is an activation of ref's dtype, device, shape and layout.
void require_like(const View& v, const View& ref, Layout layout) {
  require_same_dtype(ref, v);
  require_same_device(ref, v);
  if (v.ndim != ref.ndim) throw py::value_error(v.name + ": rank differs from " + ref.name);
  for (int i = 0; i < ref.ndim; ++i) require_dim(v, i, ref.shape[i], "matching shape");
  require_layout(v, layout);
}

// Calls f(float{}) or f(double{}) for the CPU kernels' element type.
template <typename F>
void with_cpu_type(DType t, F&& f) {
  if (t == DType::f32)
    f(float{});
  else
    f(double{});
}

int dtype_code(DType t) { return t == DType::f32 ? 0 : t == DType::f64 ? 1 : t == DType::f16 ? 2 : 3; }

void check_act(int64_t act, double alpha, double gain, double clamp) {
  require_range("act", act, 0, kNumActs - 1);
  require_finite("alpha", alpha);
  require_finite("gain", gain);
  require_not_nan("clamp", clamp);
}

// Shared checks of t, d, noise, bias; fills the geometry.
ModconvEpilogueArgs check_epilogue_inputs(const View& t, const View* d, const View* noise, const View* bias,
                                          int64_t act, double alpha, double gain, double clamp) {
  check_act(act, alpha, gain, clamp);
  require_ndim(t, 4);
  require_float_dtype(t, t.device == Dev::cuda);
  ModconvEpilogueArgs a;
  a.channels_last = activation_layout(t) == Layout::nhwc;
  a.n = t.shape[0];
  a.c = t.shape[1];
  a.p = t.shape[2] * t.shape[3];
  a.act = int(act);
  a.alpha = alpha;
  a.gain = gain;
  a.clamp = clamp;
  if (d) require_acc(*d, t, a.n, a.c);
  if (noise) {
    require_same_dtype(t, *noise);
    require_same_device(t, *noise);
    require_contiguous(*noise);
    require_ndim(*noise, 2);
    if (noise->shape[0] != 1 && noise->shape[0] != a.n) {
      throw py::value_error("noise: first dimension must be 1 or the batch size " + std::to_string(a.n) + ", got " +
                            noise->shape_str());
    }
    require_dim(*noise, 1, a.p, "H*W of t");
    a.noise_n = noise->shape[0];
  }
  if (bias) {
    require_same_dtype(t, *bias);
    require_same_device(t, *bias);
    require_contiguous(*bias);
    require_ndim(*bias, 1);
    require_dim(*bias, 0, a.c, "channel count of t");
  }
  return a;
}

}  // namespace

void modconv_epilogue(const py::object& t_obj, const py::object& d_obj, const py::object& noise_obj,
                      const py::object& bias_obj, const py::object& out_obj, int64_t act, double alpha, double gain,
                      double clamp, int64_t threads_arg, std::uintptr_t stream) {
  const int threads = require_threads(threads_arg);
  Borrowed tb(t_obj, "t"), ob(out_obj, "out");
  Opt db = borrow_opt(d_obj, "d"), nb = borrow_opt(noise_obj, "noise"), bb = borrow_opt(bias_obj, "bias");
  const View &t = tb.view(), &out = ob.view();
  ModconvEpilogueArgs a = check_epilogue_inputs(t, view_of(db), view_of(nb), view_of(bb), act, alpha, gain, clamp);
  require_like(out, t, a.channels_last ? Layout::nhwc : Layout::nchw);
  // In place is allowed (out is t); any other overlap with an input is not.
  if (out.data != t.data) require_no_overlap(out, t);
  for (const View* v : {view_of(db), view_of(nb), view_of(bb)})
    if (v) require_no_overlap(out, *v);
  if (t.numel() == 0) return;

  if (t.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    const bool avx2 = active_cpu_isa() == CpuIsa::avx2;
    with_cpu_type(t.dtype, [&](auto tag) {
      using T = decltype(tag);
      auto c = [](const void* p) { return static_cast<const T*>(p); };
      auto o = static_cast<T*>(out.data);
      avx2 ? avx2::modconv_epilogue_cpu(c(t.data), c(data_of(db)), c(data_of(nb)), c(data_of(bb)), o, a, threads)
           : generic::modconv_epilogue_cpu(c(t.data), c(data_of(db)), c(data_of(nb)), c(data_of(bb)), o, a, threads);
    });
    return;
  }
#ifdef SYNTHCORE_WITH_CUDA
  py::gil_scoped_release nogil;
  modconv_epilogue_cuda(t.data, data_of(db), data_of(nb), data_of(bb), out.data, dtype_code(t.dtype), a, t.device_id,
                        stream);
#else
  (void)stream;
  throw py::value_error("t is on " + t.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

void modconv_epilogue_grad(const py::object& gy_obj, const py::object& t_obj, const py::object& d_obj,
                           const py::object& noise_obj, const py::object& bias_obj, const py::object& gt_obj,
                           const py::object& gd_obj, const py::object& gsum_obj, int64_t act, double alpha,
                           double gain, double clamp, int64_t threads_arg, std::uintptr_t stream) {
  const int threads = require_threads(threads_arg);
  Borrowed gyb(gy_obj, "gy"), tb(t_obj, "t"), gtb(gt_obj, "gt");
  Opt db = borrow_opt(d_obj, "d"), nb = borrow_opt(noise_obj, "noise"), bb = borrow_opt(bias_obj, "bias");
  Opt gdb = borrow_opt(gd_obj, "gd"), gsb = borrow_opt(gsum_obj, "gsum");
  const View &gy = gyb.view(), &t = tb.view(), &gt = gtb.view();
  ModconvEpilogueArgs a = check_epilogue_inputs(t, view_of(db), view_of(nb), view_of(bb), act, alpha, gain, clamp);
  const Layout layout = a.channels_last ? Layout::nhwc : Layout::nchw;
  require_like(gy, t, layout);
  require_like(gt, t, layout);
  if (gdb) require_acc(gdb->view(), t, a.n, a.c);
  if (gsb) require_acc(gsb->view(), t, a.n, a.c);
  for (const View* o : {&gt, view_of(gdb), view_of(gsb)}) {
    if (!o) continue;
    for (const View* v : {&gy, &t, view_of(db), view_of(nb), view_of(bb)})
      if (v) require_no_overlap(*o, *v);
  }
  if (gdb && gsb) require_no_overlap(gdb->view(), gsb->view());
  if (t.numel() == 0) return;

  if (t.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    const bool avx2 = active_cpu_isa() == CpuIsa::avx2;
    auto run = [&](auto tag) {
      using T = decltype(tag);
      auto c = [](const void* p) { return static_cast<const T*>(p); };
      auto m = [](void* p) { return static_cast<T*>(p); };
      avx2 ? avx2::modconv_epilogue_grad_cpu(c(gy.data), c(t.data), c(data_of(db)), c(data_of(nb)), c(data_of(bb)),
                                             m(gt.data), m(data_of(gdb)), m(data_of(gsb)), a, threads)
           : generic::modconv_epilogue_grad_cpu(c(gy.data), c(t.data), c(data_of(db)), c(data_of(nb)),
                                                c(data_of(bb)), m(gt.data), m(data_of(gdb)), m(data_of(gsb)), a,
                                                threads);
    };
    with_cpu_type(t.dtype, run);
    return;
  }
#ifdef SYNTHCORE_WITH_CUDA
  py::gil_scoped_release nogil;
  modconv_epilogue_grad_cuda(gy.data, t.data, data_of(db), data_of(nb), data_of(bb), gt.data, data_of(gdb),
                             data_of(gsb), dtype_code(t.dtype), a, t.device_id, stream);
#else
  (void)stream;
  throw py::value_error("t is on " + t.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

void modconv_scale_grad(const py::object& g_obj, const py::object& x_obj, const py::object& s_obj,
                        const py::object& gx_obj, const py::object& gs_obj, int64_t threads_arg,
                        std::uintptr_t stream) {
  const int threads = require_threads(threads_arg);
  Borrowed gb(g_obj, "g"), xb(x_obj, "x"), sb(s_obj, "s");
  Opt gxb = borrow_opt(gx_obj, "gx"), gsb = borrow_opt(gs_obj, "gs");
  const View &g = gb.view(), &x = xb.view(), &s = sb.view();
  require_ndim(g, 4);
  require_float_dtype(g, g.device == Dev::cuda);
  const Layout layout = activation_layout(g);
  require_like(x, g, layout);
  const int64_t n = g.shape[0], c = g.shape[1], p = g.shape[2] * g.shape[3];
  require_acc(s, g, n, c);
  if (gxb) require_like(gxb->view(), g, layout);
  if (gsb) require_acc(gsb->view(), g, n, c);
  for (const View* o : {view_of(gxb), view_of(gsb)}) {
    if (!o) continue;
    for (const View* v : {&g, &x, &s}) require_no_overlap(*o, *v);
  }
  if (g.numel() == 0 || (!gxb && !gsb)) return;

  if (g.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    const bool avx2 = active_cpu_isa() == CpuIsa::avx2;
    auto run = [&](auto tag) {
      using T = decltype(tag);
      auto cp = [](const void* q) { return static_cast<const T*>(q); };
      auto mp = [](void* q) { return static_cast<T*>(q); };
      const bool cl = layout == Layout::nhwc;
      avx2 ? avx2::modconv_scale_grad_cpu(cp(g.data), cp(x.data), cp(s.data), mp(data_of(gxb)), mp(data_of(gsb)), n,
                                          c, p, cl, threads)
           : generic::modconv_scale_grad_cpu(cp(g.data), cp(x.data), cp(s.data), mp(data_of(gxb)),
                                             mp(data_of(gsb)), n, c, p, cl, threads);
    };
    with_cpu_type(g.dtype, run);
    return;
  }
#ifdef SYNTHCORE_WITH_CUDA
  py::gil_scoped_release nogil;
  modconv_scale_grad_cuda(g.data, x.data, s.data, data_of(gxb), data_of(gsb), dtype_code(g.dtype), n, c, p,
                          g.device_id, stream);
#else
  (void)stream;
  throw py::value_error("g is on " + g.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

}  // namespace sc
