// Binding-side entry for upfirdn2d: validates every argument, turns the filter into correlation-order taps
// (flip, gain, separability) and dispatches to the CPU variant or the CUDA kernel.
#include "upfirdn2d/upfirdn2d_api.h"

#include <cmath>
#include <limits>
#include <vector>

#include "common/cpu_features.h"
#include "common/tensor_view.h"
#include "upfirdn2d/upfirdn2d.h"

namespace sc {
namespace {

constexpr int64_t kMaxSide = int64_t(1) << 30;  // keeps every index inside int32 arithmetic

int64_t output_size(int64_t in, int up, int down, int pad0, int pad1, int taps) {
  return (in * up + pad0 + pad1 - taps + down) / down;  // floor division; numerator checked >= down below
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
  if (f.ndim == 1) {
    const double s = std::sqrt(gain);
    ty = oriented(fp, g.taps_h, flip, s);
    tx = oriented(fp, g.taps_w, flip, s);
    g.separable = true;
  } else {
    // 2-D: flip both axes by flipping the flattened array.
    std::vector<T> t2 = oriented(fp, g.taps_h * g.taps_w, flip, gain);
    if (g.taps_h > 1 && g.taps_w > 1 && split_rank_one(t2, g.taps_h, g.taps_w, ty, tx)) {
      g.separable = true;
    } else {
      tx = std::move(t2);
      g.separable = false;
    }
  }
  const T* xp = static_cast<const T*>(x.data);
  T* yp = static_cast<T*>(y.data);
  if (active_cpu_isa() == CpuIsa::avx2)
    avx2::upfirdn2d_cpu(xp, g.separable ? ty.data() : nullptr, tx.data(), yp, g, threads);
  else
    generic::upfirdn2d_cpu(xp, g.separable ? ty.data() : nullptr, tx.data(), yp, g, threads);
}

}  // namespace

void upfirdn2d(const py::object& x_obj, const py::object& f_obj, const py::object& y_obj, int up_x, int up_y,
               int down_x, int down_y, int pad_x0, int pad_x1, int pad_y0, int pad_y1, bool flip, double gain,
               int threads, std::uintptr_t stream) {
  Borrowed xb(x_obj, "x"), fb(f_obj, "f"), yb(y_obj, "y");
  const View &x = xb.view(), &f = fb.view(), &y = yb.view();

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
  if (up_x < 1 || up_y < 1 || down_x < 1 || down_y < 1) {
    throw py::value_error("up and down factors must be >= 1");
  }
  if (f.numel() == 0) throw py::value_error("f: filter is empty");
  if (!std::isfinite(gain)) throw py::value_error("gain must be finite");
  for (int i = 0; i < f.ndim; ++i)
    if (f.shape[i] > 1024) throw py::value_error("f: filters larger than 1024 taps per axis are not supported");

  Upfirdn2dGeom g;
  g.planes = x.shape[0] * x.shape[1];
  g.channels_last = layout == Layout::nhwc;
  g.batch = x.shape[0];
  g.channels = x.shape[1];
  g.taps_h = int(f.ndim == 2 ? f.shape[0] : f.shape[0]);
  g.taps_w = int(f.ndim == 2 ? f.shape[1] : f.shape[0]);
  const int64_t in_h = x.shape[2], in_w = x.shape[3];
  if (in_h > kMaxSide || in_w > kMaxSide) throw py::value_error("x: spatial size too large");
  const int64_t lim = kMaxSide;
  for (int64_t p : {int64_t(pad_x0), int64_t(pad_x1), int64_t(pad_y0), int64_t(pad_y1)})
    if (p > lim || p < -lim) throw py::value_error("padding too large");
  const int64_t span_w = in_w * up_x + pad_x0 + pad_x1, span_h = in_h * up_y + pad_y0 + pad_y1;
  if (span_w > kMaxSide || span_h > kMaxSide) {
    throw py::value_error("padded size exceeds the supported 2^30 samples per axis");
  }
  if (span_w < g.taps_w || span_h < g.taps_h) {
    throw py::value_error("padding leaves a padded image smaller than the filter: the output would be empty");
  }
  const int64_t out_h = output_size(in_h, up_y, down_y, pad_y0, pad_y1, g.taps_h);
  const int64_t out_w = output_size(in_w, up_x, down_x, pad_x0, pad_x1, g.taps_w);
  require_dim(y, 0, x.shape[0], "batch of x");
  require_dim(y, 1, x.shape[1], "channels of x");
  require_dim(y, 2, out_h, "output height");
  require_dim(y, 3, out_w, "output width");

  g.in_h = int(in_h);
  g.in_w = int(in_w);
  g.out_h = int(out_h);
  g.out_w = int(out_w);
  g.up_x = up_x;
  g.up_y = up_y;
  g.down_x = down_x;
  g.down_y = down_y;
  g.pad_x0 = pad_x0;
  g.pad_x1 = pad_x1;
  g.pad_y0 = pad_y0;
  g.pad_y1 = pad_y1;
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
