// Activation functions and their first and second derivatives, shared by the CPU and CUDA kernels.
// Comparisons are written so that NaN propagates (NaN < 0 is false, so NaN takes the identity branch).
#pragma once
#include <cmath>
#include <type_traits>

#if defined(SC_CPU_VECTOR_MATH) && !defined(__CUDACC__)
#include "common/vector_math.h"
#endif

#ifdef __CUDACC__
#define SC_HD __host__ __device__ __forceinline__
#else
#define SC_HD inline __attribute__((always_inline))
#endif

namespace sc {

enum Act : int { kLinear = 0, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish, kNumActs };

// Calls f(std::integral_constant<int, A>{}) for the runtime activation `act` (host side), so a kernel
// templated on the activation is instantiated for each one from a single call site.
template <typename F>
inline void with_act(int act, F&& f) {
  switch (act) {
    case kLinear: return f(std::integral_constant<int, kLinear>{});
    case kRelu: return f(std::integral_constant<int, kRelu>{});
    case kLrelu: return f(std::integral_constant<int, kLrelu>{});
    case kTanh: return f(std::integral_constant<int, kTanh>{});
    case kSigmoid: return f(std::integral_constant<int, kSigmoid>{});
    case kElu: return f(std::integral_constant<int, kElu>{});
    case kSelu: return f(std::integral_constant<int, kSelu>{});
    case kSoftplus: return f(std::integral_constant<int, kSoftplus>{});
    default: return f(std::integral_constant<int, kSwish>{});
  }
}

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

template <typename T>
SC_HD T sc_exp(T v) { return std::exp(v); }
template <typename T>
SC_HD T sc_tanh(T v) { return std::tanh(v); }
template <typename T>
SC_HD T sc_softplus(T v) { return std::log1p(std::exp(v)); }

#if defined(SC_CPU_VECTOR_MATH) && !defined(__CUDACC__)
// The float CPU kernels use arithmetic-only exp/tanh so their loops vectorise (common/vector_math.h).
template <>
__attribute__((always_inline)) inline float sc_exp<float>(float v) { return vexpf(v); }
template <>
__attribute__((always_inline)) inline float sc_tanh<float>(float v) { return vtanhf(v); }
template <>
__attribute__((always_inline)) inline float sc_softplus<float>(float v) { return vsoftplusf(v); }
#endif

template <typename T>
SC_HD T sigmoid(T v) { return T(1) / (T(1) + sc_exp(-v)); }

// order 0: f(v); order 1: f'(v); order 2: f''(v).
template <int A, int Order, typename T>
SC_HD T activate(T v, T alpha) {
  if constexpr (A == kLinear) {
    return Order == 0 ? v : (Order == 1 ? T(1) : T(0));
  } else if constexpr (A == kRelu) {
    // torch's relu passes the gradient only where v > 0.
    if constexpr (Order == 0) return v < T(0) ? T(0) : v;
    else if constexpr (Order == 1) return v > T(0) ? T(1) : T(0);
    else return T(0);
  } else if constexpr (A == kLrelu) {
    if constexpr (Order == 0) return v < T(0) ? v * alpha : v;
    else if constexpr (Order == 1) return v > T(0) ? T(1) : alpha;
    else return T(0);
  } else if constexpr (A == kTanh) {
    T t = sc_tanh(v);
    if constexpr (Order == 0) return t;
    else if constexpr (Order == 1) return T(1) - t * t;
    else return T(-2) * t * (T(1) - t * t);
  } else if constexpr (A == kSigmoid) {
    T s = sigmoid(v);
    if constexpr (Order == 0) return s;
    else if constexpr (Order == 1) return s * (T(1) - s);
    else return s * (T(1) - s) * (T(1) - T(2) * s);
  } else if constexpr (A == kElu) {
    if constexpr (Order == 0) return v > T(0) ? v : sc_exp(v) - T(1);
    else if constexpr (Order == 1) return v > T(0) ? T(1) : sc_exp(v);
    else return v > T(0) ? T(0) : sc_exp(v);
  } else if constexpr (A == kSelu) {
    const T s = T(kSeluScale), a = T(kSeluAlpha);
    if constexpr (Order == 0) return v > T(0) ? s * v : s * a * (sc_exp(v) - T(1));
    else if constexpr (Order == 1) return v > T(0) ? s : s * a * sc_exp(v);
    else return v > T(0) ? T(0) : s * a * sc_exp(v);
  } else if constexpr (A == kSoftplus) {
    // torch.nn.functional.softplus with threshold 20: linear above it.
    if constexpr (Order == 0) return v > T(20) ? v : sc_softplus(v);
    else if constexpr (Order == 1) return v > T(20) ? T(1) : sigmoid(v);
    else {
      T s = sigmoid(v);
      return v > T(20) ? T(0) : s * (T(1) - s);
    }
  } else {  // kSwish: v * sigmoid(v)
    T s = sigmoid(v);
    if constexpr (Order == 0) return v * s;
    else if constexpr (Order == 1) return s * (T(1) + v * (T(1) - s));
    else return s * (T(1) - s) * (T(2) + v * (T(1) - T(2) * s));
  }
}

// clamp < 0 means no clamp. Written with comparisons so NaN passes through.
template <typename T>
SC_HD T clamp_value(T v, T c) {
  return v < -c ? -c : (v > c ? c : v);
}

// y = clamp(gain * f(v)).  For order k > 0: m * d^k y / dv^k, zero where the clamp is active.
// Branch-free (selects only) so the CPU loops vectorise.
template <int A, int Order, bool HasClamp, typename T>
SC_HD T bias_act_value(T v, T m, T alpha, T gain, T clamp) {
  if constexpr (Order == 0) {
    T r = activate<A, 0>(v, alpha) * gain;
    if constexpr (HasClamp) r = clamp_value(r, clamp);
    return r;
  } else {
    T d = m * activate<A, Order>(v, alpha) * gain;
    if constexpr (HasClamp) {
      // torch.clamp passes the gradient where -c <= r <= c.
      const T r = activate<A, 0>(v, alpha) * gain;
      d = (r >= -clamp && r <= clamp) ? d : T(0);
    }
    return d;
  }
}

}  // namespace sc
