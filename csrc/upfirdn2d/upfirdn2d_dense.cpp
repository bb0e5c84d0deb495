#include "upfirdn2d/upfirdn2d_dense.h"

namespace sc {
namespace {

template <typename T>
void run(const T* x, const T* taps_y, const T* taps_x, T* y, const Upfirdn2dGeom& g) {
  const int64_t up_h = int64_t(g.in_h) * g.up_y, up_w = int64_t(g.in_w) * g.up_x;
  // Element strides of the two layouts.
  const int64_t sc = g.channels_last ? 1 : int64_t(g.in_h) * g.in_w;
  const int64_t sh = g.channels_last ? int64_t(g.in_w) * g.channels : g.in_w;
  const int64_t sw = g.channels_last ? g.channels : 1;
  const int64_t sn = int64_t(g.in_h) * g.in_w * g.channels;
  const int64_t oc = g.channels_last ? 1 : int64_t(g.out_h) * g.out_w;
  const int64_t oh = g.channels_last ? int64_t(g.out_w) * g.channels : g.out_w;
  const int64_t ow = g.channels_last ? g.channels : 1;
  const int64_t on = int64_t(g.out_h) * g.out_w * g.channels;
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t c = 0; c < g.channels; ++c) {
      const T* xp = x + n * sn + c * sc;
      // Sample (r, q) of the padded, zero-inserted image: an input sample or a zero.
      auto P = [&](int64_t r, int64_t q) -> double {
        const int64_t u = r - g.pad_y0, v = q - g.pad_x0;
        if (u < 0 || u >= up_h || v < 0 || v >= up_w || u % g.up_y || v % g.up_x) return 0.0;
        return double(xp[(u / g.up_y) * sh + (v / g.up_x) * sw]);
      };
      for (int64_t oy = 0; oy < g.out_h; ++oy) {
        for (int64_t ox = 0; ox < g.out_w; ++ox) {
          const int64_t r0 = oy * g.down_y, q0 = ox * g.down_x;
          double acc = 0.0;
          for (int a = 0; a < g.taps_h; ++a) {
            double row = 0.0;  // separable: the horizontal pass at row r0 + a; 2-D: that row's share
            for (int b = 0; b < g.taps_w; ++b) {
              const double t = g.separable ? double(taps_x[b]) : double(taps_x[int64_t(a) * g.taps_w + b]);
              row += t * P(r0 + a, q0 + b);
            }
            acc += g.separable ? double(taps_y[a]) * double(T(row)) : row;
          }
          y[n * on + c * oc + oy * oh + ox * ow] = T(acc);
        }
      }
    }
  }
}

}  // namespace

void upfirdn2d_dense_cpu(const float* x, const float* taps_y, const float* taps_x, float* y, const Upfirdn2dGeom& g) {
  run(x, taps_y, taps_x, y, g);
}
void upfirdn2d_dense_cpu(const double* x, const double* taps_y, const double* taps_x, double* y,
                         const Upfirdn2dGeom& g) {
  run(x, taps_y, taps_x, y, g);
}

}  // namespace sc
