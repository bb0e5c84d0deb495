// Binding-side entry for upfirdn2d: validates every argument, turns the filter into correlation-order taps
// (flip, gain, separability) and dispatches to the CPU variant or the CUDA kernel.
#include "upfirdn2d/upfirdn2d_api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "common/scalar_checks.h"
#include "common/tensor_view.h"
#include "upfirdn2d/upfirdn2d.h"
#include "upfirdn2d/upfirdn2d_dense.h"

namespace sc {
namespace {

// Every side, upsampled side, padding and padded span is at most this: the kernels index in int32, and
// X = o * down + tap - pad0 stays below 2^31.
constexpr int64_t kMaxSide = int64_t(1) << 30;

int64_t output_size(int64_t span, int64_t down, int64_t taps) {
  return (span - taps) / down + 1;  // span >= taps checked before
}

// The fast kernels keep rows of the padded, upsampled span and polyphase accumulators of about out_w + up_x
// samples. Around a tiny image with huge paddings or factors those dwarf the caller's input and output (gigabytes
// for a few outputs); such geometries take the literal path, whose memory is constant.
bool disproportionate(const Upfirdn2dGeom& g) {
  const int64_t budget = 8 * (int64_t(g.in_w) + g.out_w) + 4096;
  const int64_t span_w = int64_t(g.in_w) * g.up_x + g.pad_x0 + g.pad_x1;
  return span_w > budget || int64_t(g.up_x) > budget;
}

template <typename T>
bool all_finite(const std::vector<T>& v) {
  for (T t : v)
    if (!std::isfinite(double(t))) return false;
  return true;
}

// Taps in correlation order with gain folded in: taps[a] = f[n-1-a] (true convolution) or f[a] (flip_filter).
template <typename T>
std::vector<T> oriented(const T* f, int n, bool flip, double scale) {
  std::vector<T> t(n);
  for (int a = 0; a < n; ++a) t[a] = T(scale * double(flip ? f[a] : f[n - 1 - a]));
  return t;
}

// A 2-D filter that is an outer product (as every StyleGAN2 resampling filter is) runs as two 1-D passes:
// fh + fw multiply-adds per output instead of fh * fw. Returns false if f is not rank one.
template <typename T>
bool split_rank_one(const std::vector<T>& f, int fh, int fw, std::vector<T>& ty, std::vector<T>& tx) {
  int pi = 0;
  for (int i = 1; i < fh * fw; ++i)
    if (std::abs(double(f[i])) > std::abs(double(f[pi]))) pi = i;
  const double pivot = double(f[pi]);
  if (pivot == 0.0) return false;
  const int r = pi / fw, c = pi % fw;
  ty.resize(fh);
  tx.resize(fw);
  for (int a = 0; a < fh; ++a) ty[a] = T(double(f[a * fw + c]) / pivot);
  for (int b = 0; b < fw; ++b) tx[b] = f[r * fw + b];
  const double tol = 1e-6 * std::abs(pivot);
  for (int a = 0; a < fh; ++a)
    for (int b = 0; b < fw; ++b)
      if (std::abs(double(ty[a]) * double(tx[b]) - double(f[a * fw + b])) > tol) return false;
  return true;
}

template <typename T>
void run_cpu(const View& x, const View& f, const View& y, Upfirdn2dGeom g, bool flip, double gain, int threads) {
  const T* fp = static_cast<const T*>(f.data);
  std::vector<T> ty, tx;
  const T* xp = static_cast<const T*>(x.data);
  T* yp = static_cast<T*>(y.data);
  // An empty image has no samples: the output is zeros whatever the filter holds (the reference's definition).
  if (g.in_h == 0 || g.in_w == 0) {
    std::fill(yp, yp + y.numel(), T(0));
    return;
  }
  if (f.ndim == 1) {
    const double s = std::sqrt(gain);
    ty = oriented(fp, g.taps_h, flip, s);
    tx = oriented(fp, g.taps_w, flip, s);
    g.separable = true;
    if (!all_finite(tx) || disproportionate(g)) return upfirdn2d_dense_cpu(xp, ty.data(), tx.data(), yp, g);
  } else {
    // 2-D: flip both axes by flipping the flattened array.
    std::vector<T> t2 = oriented(fp, g.taps_h * g.taps_w, flip, gain);
    if (!all_finite(t2)) {  // NaN / inf taps: neither the rank-one split nor skipping zeros keeps them
      g.separable = false;
      return upfirdn2d_dense_cpu(xp, nullptr, t2.data(), yp, g);
    }
    if (g.taps_h > 1 && g.taps_w > 1 && split_rank_one(t2, g.taps_h, g.taps_w, ty, tx)) {
      g.separable = true;
    } else {
      tx = std::move(t2);
      g.separable = false;
    }
  }
  if (disproportionate(g)) return upfirdn2d_dense_cpu(xp, g.separable ? ty.data() : nullptr, tx.data(), yp, g);
  if (active_cpu_isa() == CpuIsa::avx2)
    avx2::upfirdn2d_cpu(xp, g.separable ? ty.data() : nullptr, tx.data(), yp, g, threads);
  else
    generic::upfirdn2d_cpu(xp, g.separable ? ty.data() : nullptr, tx.data(), yp, g, threads);
}

}  // namespace

void upfirdn2d(const py::object& x_obj, const py::object& f_obj, const py::object& y_obj, int64_t up_x,
               int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
               int64_t pad_y1, bool flip, double gain, int64_t threads_arg, std::uintptr_t stream) {
  Borrowed xb(x_obj, "x"), fb(f_obj, "f"), yb(y_obj, "y");
  const View &x = xb.view(), &f = fb.view(), &y = yb.view();

  const int threads = require_threads(threads_arg);
  // Factors may be any int32: what bounds them is the upsampled size below (an empty axis takes any factor).
  constexpr int64_t kMaxFactor = std::numeric_limits<int32_t>::max();
  require_range("up_x", up_x, 1, kMaxFactor);
  require_range("up_y", up_y, 1, kMaxFactor);
  require_range("down_x", down_x, 1, kMaxFactor);
  require_range("down_y", down_y, 1, kMaxFactor);
  require_range("pad_x0", pad_x0, -kMaxSide, kMaxSide);
  require_range("pad_x1", pad_x1, -kMaxSide, kMaxSide);
  require_range("pad_y0", pad_y0, -kMaxSide, kMaxSide);
  require_range("pad_y1", pad_y1, -kMaxSide, kMaxSide);
  require_finite("gain", gain);
  require_ndim(x, 4);
  require_ndim_in(f, 1, 2);
  require_ndim(y, 4);
  const Layout layout = activation_layout(x);
  require_float_dtype(x, x.device == Dev::cuda);
  require_same_dtype(x, y);
  require_same_device(x, f);
  require_same_device(x, y);
  require_contiguous(f);
  require_layout(y, layout);
  require_no_overlap(y, x);
  require_no_overlap(y, f);
  const DType want_f = x.dtype == DType::f64 ? DType::f64 : DType::f32;
  if (f.dtype != want_f) {
    throw py::type_error(std::string("f: filter dtype must be ") + dtype_name(want_f) + " for x of dtype " +
                         dtype_name(x.dtype) + ", got " + dtype_name(f.dtype));
  }
  if (f.numel() == 0) throw py::value_error("f: filter is empty");
  for (int i = 0; i < f.ndim; ++i)
    if (f.shape[i] > 1024) throw py::value_error("f: filters larger than 1024 taps per axis are not supported");

  Upfirdn2dGeom g;
  g.planes = checked_mul(x.shape[0], x.shape[1], "x: batch * channels");
  g.channels_last = layout == Layout::nhwc;
  g.batch = x.shape[0];
  g.channels = x.shape[1];
  g.taps_h = int(f.ndim == 2 ? f.shape[0] : f.shape[0]);
  g.taps_w = int(f.ndim == 2 ? f.shape[1] : f.shape[0]);
  const int64_t in_h = x.shape[2], in_w = x.shape[3];
  if (in_h > kMaxSide || in_w > kMaxSide) throw py::value_error("x: spatial size exceeds 2^30 samples per axis");
  // In 64 bits: sides are at most 2^30 and factors 2^31, so the products and sums below cannot wrap.
  const int64_t up_w = in_w * up_x, up_h = in_h * up_y;
  if (up_w > kMaxSide || up_h > kMaxSide) {
    throw py::value_error("x: upsampled size " + std::to_string(up_h) + "x" + std::to_string(up_w) +
                          " exceeds 2^30 samples per axis");
  }
  const int64_t span_w = up_w + pad_x0 + pad_x1, span_h = up_h + pad_y0 + pad_y1;
  if (span_w > kMaxSide || span_h > kMaxSide) {
    throw py::value_error("padded size exceeds the supported 2^30 samples per axis");
  }
  if (span_w < g.taps_w || span_h < g.taps_h) {
    throw py::value_error("padding leaves a padded image smaller than the filter: the output would be empty");
  }
  const int64_t out_h = output_size(span_h, down_y, g.taps_h);
  const int64_t out_w = output_size(span_w, down_x, g.taps_w);
  require_dim(y, 0, x.shape[0], "batch of x");
  require_dim(y, 1, x.shape[1], "channels of x");
  require_dim(y, 2, out_h, "output height");
  require_dim(y, 3, out_w, "output width");
  // One output along an axis reads from position 0 whatever the step, so the step is irrelevant there; taking 1
  // keeps the kernels' phase arithmetic small for a huge factor.
  if (out_w == 1) down_x = 1;
  if (out_h == 1) down_y = 1;

  g.in_h = int(in_h);
  g.in_w = int(in_w);
  g.out_h = int(out_h);
  g.out_w = int(out_w);
  g.up_x = int(up_x);
  g.up_y = int(up_y);
  g.down_x = int(down_x);
  g.down_y = int(down_y);
  g.pad_x0 = int(pad_x0);
  g.pad_x1 = int(pad_x1);
  g.pad_y0 = int(pad_y0);
  g.pad_y1 = int(pad_y1);
  if (y.numel() == 0) return;

  if (x.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    if (x.dtype == DType::f32)
      run_cpu<float>(x, f, y, g, flip, gain, threads);
    else
      run_cpu<double>(x, f, y, g, flip, gain, threads);
    return;
  }
#ifdef SYNTHCORE_WITH_CUDA
  g.separable = f.ndim == 1;
  int code = x.dtype == DType::f32 ? 0 : x.dtype == DType::f64 ? 1 : x.dtype == DType::f16 ? 2 : 3;
  py::gil_scoped_release nogil;
  upfirdn2d_cuda(x.data, f.data, y.data, code, g, flip, gain, x.device_id, stream);
#else
  (void)stream;
  throw py::value_error("x is on " + x.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

}  // namespace sc
