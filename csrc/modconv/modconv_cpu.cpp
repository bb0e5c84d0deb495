// CPU halves of the native modulated convolution: each is one pass over the activation, parallel over
// (sample, channel) planes, the inner loop vectorised. Sums accumulate in double: a 256x256 plane has 65536
// terms and the style / demodulation gradients feed every layer below.
#define SC_CPU_VECTOR_MATH 1
#include <omp.h>

#include <algorithm>

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

template <bool C, typename T>
void epilogue_by_act(const T* t, const T* d, const T* noise, const T* bias, T* out, const ModconvEpilogueArgs& a,
                     int threads) {
  switch (a.act) {
    case kLinear: return epilogue<kLinear, C>(t, d, noise, bias, out, a, threads);
    case kRelu: return epilogue<kRelu, C>(t, d, noise, bias, out, a, threads);
    case kLrelu: return epilogue<kLrelu, C>(t, d, noise, bias, out, a, threads);
    case kTanh: return epilogue<kTanh, C>(t, d, noise, bias, out, a, threads);
    case kSigmoid: return epilogue<kSigmoid, C>(t, d, noise, bias, out, a, threads);
    case kElu: return epilogue<kElu, C>(t, d, noise, bias, out, a, threads);
    case kSelu: return epilogue<kSelu, C>(t, d, noise, bias, out, a, threads);
    case kSoftplus: return epilogue<kSoftplus, C>(t, d, noise, bias, out, a, threads);
    default: return epilogue<kSwish, C>(t, d, noise, bias, out, a, threads);
  }
}

template <bool C, typename T>
void grad_by_act(const T* gy, const T* t, const T* d, const T* noise, const T* bias, T* gt, T* gd, T* gsum,
                 const ModconvEpilogueArgs& a, int threads) {
  switch (a.act) {
    case kLinear: return epilogue_grad<kLinear, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kRelu: return epilogue_grad<kRelu, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kLrelu: return epilogue_grad<kLrelu, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kTanh: return epilogue_grad<kTanh, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kSigmoid: return epilogue_grad<kSigmoid, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kElu: return epilogue_grad<kElu, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kSelu: return epilogue_grad<kSelu, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    case kSoftplus: return epilogue_grad<kSoftplus, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
    default: return epilogue_grad<kSwish, C>(gy, t, d, noise, bias, gt, gd, gsum, a, threads);
  }
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
                              int64_t p, int threads) {                                                       \
    scale_grad(g, x, s, gx, gs, n, c, p, threads);                                                            \
  }
SC_DEFINE_MODCONV_CPU(float)
SC_DEFINE_MODCONV_CPU(double)
#undef SC_DEFINE_MODCONV_CPU

}  // namespace SYNTHCORE_ISA
}  // namespace sc
