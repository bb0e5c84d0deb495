// CPU halves of the native modulated convolution: each is one pass over the activation, the inner loop
// vectorised. NCHW: parallel over (sample, channel) planes, the loop runs along a plane. Channels-last (NHWC):
// parallel over pixels, the loop runs along a pixel's channels, and per-channel sums go to partials of fixed
// pixel blocks that are added in a fixed order afterwards, so results do not depend on the thread count.
// Sums accumulate in double: a 256x256 plane has 65536 terms and the style / demodulation gradients feed
// every layer below.
#define SC_CPU_VECTOR_MATH 1
#include <omp.h>

#include <algorithm>
#include <vector>

#include "bias_act/bias_act_math.h"
#include "modconv/modconv.h"

namespace sc {
namespace SYNTHCORE_ISA {
namespace {

int plane_threads(int64_t total, int threads) { return total < (int64_t(1) << 15) ? 1 : std::max(1, threads); }

template <int A, bool C, typename T>
void epilogue(const T* t, const T* d, const T* noise, const T* bias, T* out, const ModconvEpilogueArgs& a,
              int threads) {
  const T alpha = T(a.alpha), gain = T(a.gain), clamp = T(a.clamp < 0 ? 0 : a.clamp);
  const int64_t planes = a.n * a.c, p = a.p;
#pragma omp parallel for num_threads(plane_threads(planes * p, threads)) schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t n = pl / a.c, c = pl % a.c;
    const T dv = d ? d[pl] : T(1), bv = bias ? bias[c] : T(0);
    // out may alias t (in-place epilogue): each element is read before it is written, at the same index.
    const T* src = t + pl * p;
    T* dst = out + pl * p;
    if (a.noise_n) {
      const T* nz = noise + (a.noise_n == 1 ? 0 : n * p);
#pragma omp simd
      for (int64_t i = 0; i < p; ++i)
        dst[i] = bias_act_value<A, 0, C>(dv * src[i] + nz[i] + bv, T(1), alpha, gain, clamp);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < p; ++i)
        dst[i] = bias_act_value<A, 0, C>(dv * src[i] + bv, T(1), alpha, gain, clamp);
    }
  }
}

template <int A, bool C, typename T>
void epilogue_grad(const T* gy, const T* t, const T* d, const T* noise, const T* bias, T* __restrict gt, T* gd,
                   T* gsum, const ModconvEpilogueArgs& a, int threads) {
  const T alpha = T(a.alpha), gain = T(a.gain), clamp = T(a.clamp < 0 ? 0 : a.clamp);
  const int64_t planes = a.n * a.c, p = a.p;
#pragma omp parallel for num_threads(plane_threads(planes * p, threads)) schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t n = pl / a.c, c = pl % a.c;
    const T dv = d ? d[pl] : T(1), bv = bias ? bias[c] : T(0);
    const T* __restrict tp = t + pl * p;
    const T* __restrict gp = gy + pl * p;
    T* __restrict out = gt + pl * p;
    const T* __restrict nz = a.noise_n ? noise + (a.noise_n == 1 ? 0 : n * p) : nullptr;
    double sd = 0, ss = 0;
    if (nz) {
#pragma omp simd reduction(+ : sd, ss)
      for (int64_t i = 0; i < p; ++i) {
        const T gz = bias_act_value<A, 1, C>(dv * tp[i] + nz[i] + bv, gp[i], alpha, gain, clamp);
        out[i] = gz * dv;
        sd += double(gz) * double(tp[i]);
        ss += double(gz);
      }
    } else {
#pragma omp simd reduction(+ : sd, ss)
      for (int64_t i = 0; i < p; ++i) {
        const T gz = bias_act_value<A, 1, C>(dv * tp[i] + bv, gp[i], alpha, gain, clamp);
        out[i] = gz * dv;
        sd += double(gz) * double(tp[i]);
        ss += double(gz);
      }
    }
    if (gd) gd[pl] = T(sd);
    if (gsum) gsum[pl] = T(ss);
  }
}

// Pixels per partial-sum block of the channels-last reductions: enough work per block to amortise its
// partials, few enough blocks that the final pass over them is negligible.
constexpr int64_t kPixelBlock = 256;

int64_t pixel_blocks(int64_t p) { return (p + kPixelBlock - 1) / kPixelBlock; }

// Per-channel unit / zero rows standing in for an absent d or bias, so the channel loop has one form.
template <typename T>
struct ChannelDefaults {
  std::vector<T> ones, zeros;
  ChannelDefaults(int64_t c, bool need_ones, bool need_zeros) {
    if (need_ones) ones.assign(size_t(c), T(1));
    if (need_zeros) zeros.assign(size_t(c), T(0));
  }
};

// out[n, q, :] = clamp(gain * act(d[n, :] * t[n, q, :] + noise[n|0, q] + bias[:]))
template <int A, bool C, typename T>
void epilogue_nhwc(const T* t, const T* d, const T* noise, const T* bias, T* out, const ModconvEpilogueArgs& a,
                   int threads) {
  const T alpha = T(a.alpha), gain = T(a.gain), clamp = T(a.clamp < 0 ? 0 : a.clamp);
  const int64_t c = a.c, p = a.p, rows = a.n * a.p;
  const ChannelDefaults<T> def(c, d == nullptr, bias == nullptr);
#pragma omp parallel for num_threads(plane_threads(rows * c, threads)) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / p, q = r % p;
    const T* __restrict dv = d ? d + n * c : def.ones.data();
    const T* __restrict bv = bias ? bias : def.zeros.data();
    const T nz = a.noise_n ? noise[(a.noise_n == 1 ? 0 : n * p) + q] : T(0);
    // out may alias t (in place): each element is read before it is written, at the same index.
    const T* src = t + r * c;
    T* dst = out + r * c;
#pragma omp simd
    for (int64_t i = 0; i < c; ++i)
      dst[i] = bias_act_value<A, 0, C>(dv[i] * src[i] + nz + bv[i], T(1), alpha, gain, clamp);
  }
}

// Adds the per-block partials [n][blocks][2][c] into two [n, c] outputs (either may be null), in block order.
template <typename T>
void reduce_blocks(const std::vector<double>& part, int64_t n, int64_t blocks, int64_t c, T* out0, T* out1) {
  std::vector<double> acc0(static_cast<size_t>(c)), acc1(static_cast<size_t>(c));
  for (int64_t s = 0; s < n; ++s) {
    std::fill(acc0.begin(), acc0.end(), 0.0);
    std::fill(acc1.begin(), acc1.end(), 0.0);
    for (int64_t b = 0; b < blocks; ++b) {
      const double* p0 = part.data() + ((s * blocks + b) * 2) * c;
      const double* p1 = p0 + c;
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        acc0[i] += p0[i];
        acc1[i] += p1[i];
      }
    }
    for (int64_t i = 0; i < c; ++i) {
      if (out0) out0[s * c + i] = T(acc0[i]);
      if (out1) out1[s * c + i] = T(acc1[i]);
    }
  }
}

template <int A, bool C, typename T>
void epilogue_grad_nhwc(const T* gy, const T* t, const T* d, const T* noise, const T* bias, T* gt, T* gd, T* gsum,
                        const ModconvEpilogueArgs& a, int threads) {
  const T alpha = T(a.alpha), gain = T(a.gain), clamp = T(a.clamp < 0 ? 0 : a.clamp);
  const int64_t c = a.c, p = a.p, blocks = pixel_blocks(p);
  const ChannelDefaults<T> def(c, d == nullptr, bias == nullptr);
  std::vector<double> part(size_t(a.n * blocks * 2 * c), 0.0);
#pragma omp parallel for num_threads(plane_threads(a.n * p * c, threads)) schedule(static)
  for (int64_t nb = 0; nb < a.n * blocks; ++nb) {
    const int64_t n = nb / blocks, q0 = (nb % blocks) * kPixelBlock, q1 = std::min(p, q0 + kPixelBlock);
    const T* __restrict dv = d ? d + n * c : def.ones.data();
    const T* __restrict bv = bias ? bias : def.zeros.data();
    double* __restrict sd = part.data() + nb * 2 * c;
    double* __restrict ss = sd + c;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t r = n * p + q;
      const T nz = a.noise_n ? noise[(a.noise_n == 1 ? 0 : n * p) + q] : T(0);
      const T* __restrict tp = t + r * c;
      const T* __restrict gp = gy + r * c;
      T* __restrict o = gt + r * c;
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        const T gz = bias_act_value<A, 1, C>(dv[i] * tp[i] + nz + bv[i], gp[i], alpha, gain, clamp);
        o[i] = gz * dv[i];
        sd[i] += double(gz) * double(tp[i]);
        ss[i] += double(gz);
      }
    }
  }
  reduce_blocks(part, a.n, blocks, c, gd, gsum);
}

template <typename T>
void scale_grad_nhwc(const T* g, const T* x, const T* s, T* gx, T* gs, int64_t n, int64_t c, int64_t p,
                     int threads) {
  const int64_t blocks = pixel_blocks(p);
  std::vector<double> part(gs ? size_t(n * blocks * 2 * c) : 0, 0.0);
#pragma omp parallel for num_threads(plane_threads(n * p * c, threads)) schedule(static)
  for (int64_t nb = 0; nb < n * blocks; ++nb) {
    const int64_t sn = nb / blocks, q0 = (nb % blocks) * kPixelBlock, q1 = std::min(p, q0 + kPixelBlock);
    const T* __restrict sv = s + sn * c;
    double* __restrict acc = gs ? part.data() + nb * 2 * c : nullptr;
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t r = sn * p + q;
      const T* __restrict gp = g + r * c;
      const T* __restrict xp = x + r * c;
      if (gx) {
        T* __restrict o = gx + r * c;
#pragma omp simd
        for (int64_t i = 0; i < c; ++i) o[i] = gp[i] * sv[i];
      }
      if (acc) {
#pragma omp simd
        for (int64_t i = 0; i < c; ++i) acc[i] += double(gp[i]) * double(xp[i]);
      }
    }
  }
  if (gs) reduce_blocks<T>(part, n, blocks, c, gs, nullptr);
}

template <bool C, typename T>
void epilogue_by_act(const T* t, const T* d, const T* noise, const T* bias, T* out, const ModconvEpilogueArgs& a,
                     int threads) {
  with_act(a.act, [&](auto act) {
    if (a.channels_last)
      epilogue_nhwc<decltype(act)::value, C>(t, d, noise, bias, out, a, threads);
    else
      epilogue<decltype(act)::value, C>(t, d, noise, bias, out, a, threads);
  });
}

template <bool C, typename T>
void grad_by_act(const T* gy, const T* t, const T* d, const T* noise, const T* bias, T* gt, T* gd, T* gsum,
                 const ModconvEpilogueArgs& a, int threads) {
  with_act(a.act, [&](auto act) {
    if (a.channels_last)
      epilogue_grad_nhwc<decltype(act)::value, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    else
      epilogue_grad<decltype(act)::value, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
  });
}

template <typename T>
void scale_grad(const T* g, const T* x, const T* s, T* gx, T* gs, int64_t n, int64_t c, int64_t p, int threads) {
  const int64_t planes = n * c;
#pragma omp parallel for num_threads(plane_threads(planes * p, threads)) schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* __restrict gp = g + pl * p;
    const T* __restrict xp = x + pl * p;
    if (gx) {
      T* __restrict out = gx + pl * p;
      const T sv = s[pl];
#pragma omp simd
      for (int64_t i = 0; i < p; ++i) out[i] = gp[i] * sv;
    }
    if (gs) {
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < p; ++i) acc += double(gp[i]) * double(xp[i]);
      gs[pl] = T(acc);
    }
  }
}

}  // namespace

#define SC_DEFINE_MODCONV_CPU(T)                                                                              \
  void modconv_epilogue_cpu(const T* t, const T* d, const T* noise, const T* bias, T* out,                    \
                            const ModconvEpilogueArgs& a, int threads) {                                      \
    if (a.clamp >= 0)                                                                                         \
      epilogue_by_act<true>(t, d, noise, bias, out, a, threads);                                              \
    else                                                                                                      \
      epilogue_by_act<false>(t, d, noise, bias, out, a, threads);                                             \
  }                                                                                                           \
  void modconv_epilogue_grad_cpu(const T* gy, const T* t, const T* d, const T* noise, const T* bias, T* gt,  \
                                 T* gd, T* gsum, const ModconvEpilogueArgs& a, int threads) {                 \
    if (a.clamp >= 0)                                                                                         \
      grad_by_act<true>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);                                     \
    else                                                                                                      \
      grad_by_act<false>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);                                    \
  }                                                                                                           \
  void modconv_scale_grad_cpu(const T* g, const T* x, const T* s, T* gx, T* gs, int64_t n, int64_t c,        \
                              int64_t p, bool channels_last, int threads) {                                   \
    if (channels_last)                                                                                        \
      scale_grad_nhwc(g, x, s, gx, gs, n, c, p, threads);                                                     \
    else                                                                                                      \
      scale_grad(g, x, s, gx, gs, n, c, p, threads);                                                          \
  }
SC_DEFINE_MODCONV_CPU(float)
SC_DEFINE_MODCONV_CPU(double)
#undef SC_DEFINE_MODCONV_CPU

}  // namespace SYNTHCORE_ISA
}  // namespace sc
