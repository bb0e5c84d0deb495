// CPU bias_act: one pass over memory (read x [and m], write out) instead of the reference's four or more.
// Templated on the activation and derivative order so each inner loop is branch-light and vectorisable.
#include <omp.h>

#include <algorithm>

#include "bias_act/bias_act.h"
#include "bias_act/bias_act_math.h"

namespace sc {
namespace SYNTHCORE_ISA {
namespace {

// One contiguous run of n elements. bias_step 0: one bias value for the run; 1: a bias per element.
template <int A, int Order, typename T>
inline void run_span(const T* __restrict x, const T* __restrict b, int bias_step, const T* __restrict m,
                     T* __restrict out, int64_t n, T alpha, T gain, T clamp, bool has_clamp) {
  if (bias_step == 0) {
    const T bv = b ? b[0] : T(0);
    if (m) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order>(x[i] + bv, m[i], alpha, gain, clamp, has_clamp);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order>(x[i] + bv, T(1), alpha, gain, clamp, has_clamp);
    }
  } else {
    if (m) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order>(x[i] + b[i], m[i], alpha, gain, clamp, has_clamp);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        out[i] = bias_act_value<A, Order>(x[i] + b[i], T(1), alpha, gain, clamp, has_clamp);
    }
  }
}

template <int A, int Order, typename T>
void run(const T* x, const T* b, const T* m, T* out, const BiasActArgs& a, int threads) {
  const T alpha = T(a.alpha), gain = T(a.gain), clamp = T(a.clamp < 0 ? 0 : a.clamp);
  const bool has_clamp = a.clamp >= 0;
  const int64_t total = a.outer * a.channels * a.inner;
  if (total < (int64_t(1) << 15)) threads = 1;
  threads = std::max(1, threads);
  if (a.inner >= 16 || !b) {
    // Stripes of `inner` elements share one bias value; without a bias the whole tensor is one run.
    const int64_t stripes = b ? a.outer * a.channels : 1;
    const int64_t len = b ? a.inner : total;
    if (stripes >= threads || !b) {
      // Split into chunks of whole stripes, or into equal element ranges if there is a single run.
      const int64_t chunks = b ? stripes : std::min<int64_t>(int64_t(threads) * 4, std::max<int64_t>(1, total / 4096));
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t s = 0; s < chunks; ++s) {
        if (b) {
          const int64_t off = s * len;
          run_span<A, Order>(x + off, b + (s % a.channels), 0, m ? m + off : static_cast<const T*>(nullptr), out + off, len, alpha, gain,
                             clamp, has_clamp);
        } else {
          const int64_t lo = total * s / chunks, hi = total * (s + 1) / chunks;
          run_span<A, Order>(x + lo, static_cast<const T*>(nullptr), 0, m ? m + lo : static_cast<const T*>(nullptr), out + lo, hi - lo, alpha, gain, clamp,
                             has_clamp);
        }
      }
      return;
    }
  }
  // Short stripes (e.g. [N, C] with the bias along C, inner == 1): walk each outer row with a bias per element
  // when inner == 1, else stripe by stripe.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t o = 0; o < a.outer; ++o) {
    const int64_t row = o * a.channels * a.inner;
    if (a.inner == 1) {
      run_span<A, Order>(x + row, b, 1, m ? m + row : static_cast<const T*>(nullptr), out + row, a.channels, alpha, gain, clamp, has_clamp);
    } else {
      for (int64_t c = 0; c < a.channels; ++c) {
        const int64_t off = row + c * a.inner;
        run_span<A, Order>(x + off, b + c, 0, m ? m + off : static_cast<const T*>(nullptr), out + off, a.inner, alpha, gain, clamp,
                           has_clamp);
      }
    }
  }
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
