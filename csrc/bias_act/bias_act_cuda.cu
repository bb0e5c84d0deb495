// CUDA bias_act: a grid-stride elementwise kernel, one instantiation per (activation, order, dtype).
#include <cuda_runtime.h>

#include <algorithm>

#include "bias_act/bias_act.h"
#include "bias_act/bias_act_math.h"
#include "common/cuda_info.h"
#include "common/cuda_types.cuh"

namespace sc {
namespace {

template <int A, int Order, bool C, typename T, typename Acc>
__global__ void bias_act_kernel(const T* __restrict__ x, const T* __restrict__ b, const T* __restrict__ m,
                                T* __restrict__ out, int64_t total, int64_t channels, int64_t inner, Acc alpha,
                                Acc gain, Acc clamp) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    Acc v = load_as<Acc>(x + i);
    if (b) v += load_as<Acc>(b + (i / inner) % channels);
    const Acc mv = m ? load_as<Acc>(m + i) : Acc(1);
    out[i] = store_as<T>(bias_act_value<A, Order, C>(v, mv, alpha, gain, clamp));
  }
}

template <int A, int Order, typename T>
void launch(const void* x, const void* b, const void* m, void* out, const BiasActArgs& a, cudaStream_t s) {
  using Acc = typename AccType<T>::type;
  const int64_t total = a.outer * a.channels * a.inner;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, int64_t(1) << 20);
  const Acc alpha = Acc(a.alpha), gain = Acc(a.gain), clamp = Acc(a.clamp < 0 ? 0 : a.clamp);
  auto xp = static_cast<const T*>(x), bp = static_cast<const T*>(b), mp = static_cast<const T*>(m);
  auto op = static_cast<T*>(out);
  if (a.clamp >= 0)
    bias_act_kernel<A, Order, true, T, Acc><<<unsigned(blocks), threads, 0, s>>>(xp, bp, mp, op, total, a.channels,
                                                                                 a.inner, alpha, gain, clamp);
  else
    bias_act_kernel<A, Order, false, T, Acc><<<unsigned(blocks), threads, 0, s>>>(xp, bp, mp, op, total, a.channels,
                                                                                  a.inner, alpha, gain, clamp);
  cuda_check(cudaGetLastError(), "bias_act kernel launch");
}

template <int Order, typename T>
void by_act(const void* x, const void* b, const void* m, void* out, const BiasActArgs& a, cudaStream_t s) {
  switch (a.act) {
    case kLinear: return launch<kLinear, Order, T>(x, b, m, out, a, s);
    case kRelu: return launch<kRelu, Order, T>(x, b, m, out, a, s);
    case kLrelu: return launch<kLrelu, Order, T>(x, b, m, out, a, s);
    case kTanh: return launch<kTanh, Order, T>(x, b, m, out, a, s);
    case kSigmoid: return launch<kSigmoid, Order, T>(x, b, m, out, a, s);
    case kElu: return launch<kElu, Order, T>(x, b, m, out, a, s);
    case kSelu: return launch<kSelu, Order, T>(x, b, m, out, a, s);
    case kSoftplus: return launch<kSoftplus, Order, T>(x, b, m, out, a, s);
    default: return launch<kSwish, Order, T>(x, b, m, out, a, s);
  }
}

template <typename T>
void by_order(const void* x, const void* b, const void* m, void* out, const BiasActArgs& a, cudaStream_t s) {
  if (a.order == 0) return by_act<0, T>(x, b, m, out, a, s);
  if (a.order == 1) return by_act<1, T>(x, b, m, out, a, s);
  return by_act<2, T>(x, b, m, out, a, s);
}

}  // namespace

void bias_act_cuda(const void* x, const void* b, const void* m, void* out, int dtype, const BiasActArgs& a,
                   int device, std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case 0: return by_order<float>(x, b, m, out, a, s);
    case 1: return by_order<double>(x, b, m, out, a, s);
    case 2: return by_order<__half>(x, b, m, out, a, s);
    default: return by_order<__nv_bfloat16>(x, b, m, out, a, s);
  }
}

}  // namespace sc
