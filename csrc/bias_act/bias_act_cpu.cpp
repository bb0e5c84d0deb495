// CPU bias_act: one pass over memory (read x [and m], write out) instead of the reference's four or more.
// Templated on the activation and derivative order so each inner loop is branch-light and vectorisable.
#define SC_CPU_VECTOR_MATH 1
#include <omp.h>

#include <algorithm>

#include "bias_act/bias_act.h"
#include "bias_act/bias_act_math.h"

namespace sc {
namespace SYNTHCORE_ISA {
namespace {

// One contiguous run of n elements. bias_step 0: one bias value for the run; 1: a bias per element.
template <int A, int Order, bool C, typename T>
inline void run_span(const T* __restrict x, const T* __restrict b, int bias_step, const T* __restrict m,
                     T* __restrict out, int64_t n, T alpha, T gain, T clamp) {
  if (bias_step == 0) {
    const T bv = b ? b[0] : T(0);
    if (m) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order, C>(x[i] + bv, m[i], alpha, gain, clamp);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order, C>(x[i] + bv, T(1), alpha, gain, clamp);
    }
  } else {
    if (m) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order, C>(x[i] + b[i], m[i], alpha, gain, clamp);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order, C>(x[i] + b[i], T(1), alpha, gain, clamp);
    }
  }
}

template <int A, int Order, bool C, typename T>
void run_impl(const T* x, const T* b, const T* m, T* out, const BiasActArgs& a, int threads) {
  const T alpha = T(a.alpha), gain = T(a.gain), clamp = T(a.clamp < 0 ? 0 : a.clamp);
  const int64_t total = a.outer * a.channels * a.inner;
  const T* const none = nullptr;
  auto span = [&](int64_t off, const T* bias, int bias_step, int64_t n) {
    run_span<A, Order, C>(x + off, bias, bias_step, m ? m + off : none, out + off, n, alpha, gain, clamp);
  };
  threads = total < (int64_t(1) << 15) ? 1 : std::max(1, threads);

  if (!b) {
    // No bias: the whole tensor is one run, split into equal ranges.
    const int64_t chunks = std::min<int64_t>(int64_t(threads) * 4, std::max<int64_t>(1, total / 4096));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t s = 0; s < chunks; ++s) {
      const int64_t lo = total * s / chunks, hi = total * (s + 1) / chunks;
      span(lo, none, 0, hi - lo);
    }
  } else if (a.inner == 1) {
    // Bias along the last dimension (e.g. a fully connected layer's [N, C]): a bias per element of each row.
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t o = 0; o < a.outer; ++o) span(o * a.channels, b, 1, a.channels);
  } else {
    // Stripes of `inner` elements share one bias value.
    const int64_t stripes = a.outer * a.channels;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t s = 0; s < stripes; ++s) span(s * a.inner, b + (s % a.channels), 0, a.inner);
  }
}

template <int A, int Order, typename T>
void run(const T* x, const T* b, const T* m, T* out, const BiasActArgs& a, int threads) {
  if (a.clamp >= 0)
    run_impl<A, Order, true>(x, b, m, out, a, threads);
  else
    run_impl<A, Order, false>(x, b, m, out, a, threads);
}

template <int Order, typename T>
void dispatch_act(const T* x, const T* b, const T* m, T* out, const BiasActArgs& a, int threads) {
  switch (a.act) {
    case kLinear: return run<kLinear, Order>(x, b, m, out, a, threads);
    case kRelu: return run<kRelu, Order>(x, b, m, out, a, threads);
    case kLrelu: return run<kLrelu, Order>(x, b, m, out, a, threads);
    case kTanh: return run<kTanh, Order>(x, b, m, out, a, threads);
    case kSigmoid: return run<kSigmoid, Order>(x, b, m, out, a, threads);
    case kElu: return run<kElu, Order>(x, b, m, out, a, threads);
    case kSelu: return run<kSelu, Order>(x, b, m, out, a, threads);
    case kSoftplus: return run<kSoftplus, Order>(x, b, m, out, a, threads);
    default: return run<kSwish, Order>(x, b, m, out, a, threads);
  }
}

template <typename T>
void dispatch(const T* x, const T* b, const T* m, T* out, const BiasActArgs& a, int threads) {
  if (a.order == 0) return dispatch_act<0>(x, b, m, out, a, threads);
  if (a.order == 1) return dispatch_act<1>(x, b, m, out, a, threads);
  return dispatch_act<2>(x, b, m, out, a, threads);
}

}  // namespace

void bias_act_cpu(const float* x, const float* b, const float* m, float* out, const BiasActArgs& a, int threads) {
  dispatch(x, b, m, out, a, threads);
}
void bias_act_cpu(const double* x, const double* b, const double* m, double* out, const BiasActArgs& a,
                  int threads) {
  dispatch(x, b, m, out, a, threads);
}

}  // namespace SYNTHCORE_ISA
}  // namespace sc
