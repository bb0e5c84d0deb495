// CUDA halves of the native modulated convolution. The epilogue is a grid-stride elementwise kernel; the two
// gradient kernels give each (sample, channel) plane one block, so the per-plane sums are block reductions
// (deterministic, no atomics) while the elementwise outputs are written on the way.
#include <cuda_runtime.h>

#include <algorithm>

#include "bias_act/bias_act_math.h"
#include "common/cuda_info.h"
#include "common/cuda_types.cuh"
#include "modconv/modconv.h"

namespace sc {
namespace {

constexpr int kBlock = 256;

template <typename Acc>
__device__ Acc block_sum(Acc v, Acc* shared) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? shared[threadIdx.x] : Acc(0);
  if (warp == 0)
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  __syncthreads();
  return v;  // valid in thread 0
}

template <int A, bool C, typename T, typename Acc>
__global__ void epilogue_kernel(const T* t, const Acc* __restrict__ d, const T* __restrict__ noise,
                                const T* __restrict__ bias, T* out, ModconvEpilogueArgs a, Acc alpha, Acc gain,
                                Acc clamp) {
  const int64_t total = a.n * a.c * a.p;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pl = i / a.p, px = i - pl * a.p;
    Acc v = load_as<Acc>(t + i);
    if (d) v *= d[pl];
    if (a.noise_n) v += load_as<Acc>(noise + (a.noise_n == 1 ? px : (pl / a.c) * a.p + px));
    if (bias) v += load_as<Acc>(bias + pl % a.c);
    out[i] = store_as<T>(bias_act_value<A, 0, C>(v, Acc(1), alpha, gain, clamp));
  }
}

template <int A, bool C, typename T, typename Acc>
__global__ void epilogue_grad_kernel(const T* __restrict__ gy, const T* __restrict__ t, const Acc* __restrict__ d,
                                     const T* __restrict__ noise, const T* __restrict__ bias, T* __restrict__ gt,
                                     Acc* __restrict__ gd, Acc* __restrict__ gsum, ModconvEpilogueArgs a, Acc alpha,
                                     Acc gain, Acc clamp) {
  __shared__ Acc shared[32];
  const int64_t pl = blockIdx.x, n = pl / a.c, c = pl % a.c;
  const Acc dv = d ? d[pl] : Acc(1), bv = bias ? load_as<Acc>(bias + c) : Acc(0);
  const T* nz = a.noise_n ? noise + (a.noise_n == 1 ? 0 : n * a.p) : nullptr;
  Acc sd = 0, ss = 0;
  for (int64_t i = threadIdx.x; i < a.p; i += blockDim.x) {
    const int64_t k = pl * a.p + i;
    const Acc tv = load_as<Acc>(t + k);
    Acc z = dv * tv + bv;
    if (nz) z = dv * tv + load_as<Acc>(nz + i) + bv;
    const Acc gz = bias_act_value<A, 1, C>(z, load_as<Acc>(gy + k), alpha, gain, clamp);
    gt[k] = store_as<T>(gz * dv);
    sd += gz * tv;
    ss += gz;
  }
  sd = block_sum(sd, shared);
  ss = block_sum(ss, shared);
  if (threadIdx.x == 0) {
    if (gd) gd[pl] = sd;
    if (gsum) gsum[pl] = ss;
  }
}

template <typename T, typename Acc>
__global__ void scale_grad_kernel(const T* __restrict__ g, const T* __restrict__ x, const Acc* __restrict__ s,
                                  T* __restrict__ gx, Acc* __restrict__ gs, int64_t p) {
  __shared__ Acc shared[32];
  const int64_t pl = blockIdx.x;
  const Acc sv = s[pl];
  Acc acc = 0;
  for (int64_t i = threadIdx.x; i < p; i += blockDim.x) {
    const int64_t k = pl * p + i;
    const Acc gv = load_as<Acc>(g + k);
    if (gx) gx[k] = store_as<T>(gv * sv);
    if (gs) acc += gv * load_as<Acc>(x + k);
  }
  if (gs) {
    acc = block_sum(acc, shared);
    if (threadIdx.x == 0) gs[pl] = acc;
  }
}

template <typename T>
struct Launch {
  using Acc = typename AccType<T>::type;

  template <int A, bool C>
  static void fwd(const void* t, const void* d, const void* noise, const void* bias, void* out,
                  const ModconvEpilogueArgs& a, cudaStream_t s) {
    const int64_t total = a.n * a.c * a.p;
    const int64_t blocks = std::min<int64_t>((total + kBlock - 1) / kBlock, int64_t(1) << 20);
    epilogue_kernel<A, C, T, Acc><<<unsigned(blocks), kBlock, 0, s>>>(
        static_cast<const T*>(t), static_cast<const Acc*>(d), static_cast<const T*>(noise),
        static_cast<const T*>(bias), static_cast<T*>(out), a, Acc(a.alpha), Acc(a.gain),
        Acc(a.clamp < 0 ? 0 : a.clamp));
    cuda_check(cudaGetLastError(), "modconv epilogue kernel launch");
  }

  template <int A, bool C>
  static void bwd(const void* gy, const void* t, const void* d, const void* noise, const void* bias, void* gt,
                  void* gd, void* gsum, const ModconvEpilogueArgs& a, cudaStream_t s) {
    epilogue_grad_kernel<A, C, T, Acc><<<unsigned(a.n * a.c), kBlock, 0, s>>>(
        static_cast<const T*>(gy), static_cast<const T*>(t), static_cast<const Acc*>(d),
        static_cast<const T*>(noise), static_cast<const T*>(bias), static_cast<T*>(gt), static_cast<Acc*>(gd),
        static_cast<Acc*>(gsum), a, Acc(a.alpha), Acc(a.gain), Acc(a.clamp < 0 ? 0 : a.clamp));
    cuda_check(cudaGetLastError(), "modconv epilogue grad kernel launch");
  }
};

template <typename T, bool Grad, bool C>
void by_act(int act, const void* gy, const void* t, const void* d, const void* noise, const void* bias, void* out,
            void* gd, void* gsum, const ModconvEpilogueArgs& a, cudaStream_t s) {
#define SC_CASE(A)                                                       \
  case A:                                                                \
    if constexpr (Grad)                                                  \
      return Launch<T>::template bwd<A, C>(gy, t, d, noise, bias, out, gd, gsum, a, s); \
    else                                                                 \
      return Launch<T>::template fwd<A, C>(t, d, noise, bias, out, a, s);
  switch (act) {
    SC_CASE(kLinear)
    SC_CASE(kRelu)
    SC_CASE(kLrelu)
    SC_CASE(kTanh)
    SC_CASE(kSigmoid)
    SC_CASE(kElu)
    SC_CASE(kSelu)
    SC_CASE(kSoftplus)
    default:
      if constexpr (Grad)
        return Launch<T>::template bwd<kSwish, C>(gy, t, d, noise, bias, out, gd, gsum, a, s);
      else
        return Launch<T>::template fwd<kSwish, C>(t, d, noise, bias, out, a, s);
  }
#undef SC_CASE
}

template <bool Grad>
void by_dtype(int dtype, const void* gy, const void* t, const void* d, const void* noise, const void* bias, void* out,
              void* gd, void* gsum, const ModconvEpilogueArgs& a, cudaStream_t s) {
  const bool c = a.clamp >= 0;
  switch (dtype) {
    case 0: return c ? by_act<float, Grad, true>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s)
                     : by_act<float, Grad, false>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s);
    case 1: return c ? by_act<double, Grad, true>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s)
                     : by_act<double, Grad, false>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s);
    case 2: return c ? by_act<__half, Grad, true>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s)
                     : by_act<__half, Grad, false>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s);
    default: return c ? by_act<__nv_bfloat16, Grad, true>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s)
                      : by_act<__nv_bfloat16, Grad, false>(a.act, gy, t, d, noise, bias, out, gd, gsum, a, s);
  }
}

template <typename T>
void scale_grad_launch(const void* g, const void* x, const void* s, void* gx, void* gs, int64_t n, int64_t c,
                       int64_t p, cudaStream_t st) {
  using Acc = typename AccType<T>::type;
  scale_grad_kernel<T, Acc><<<unsigned(n * c), kBlock, 0, st>>>(static_cast<const T*>(g), static_cast<const T*>(x),
                                                                static_cast<const Acc*>(s), static_cast<T*>(gx),
                                                                static_cast<Acc*>(gs), p);
  cuda_check(cudaGetLastError(), "modconv scale grad kernel launch");
}

}  // namespace

void modconv_epilogue_cuda(const void* t, const void* d, const void* noise, const void* bias, void* out, int dtype,
                           const ModconvEpilogueArgs& a, int device, std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  by_dtype<false>(dtype, nullptr, t, d, noise, bias, out, nullptr, nullptr, a, reinterpret_cast<cudaStream_t>(stream));
}

void modconv_epilogue_grad_cuda(const void* gy, const void* t, const void* d, const void* noise, const void* bias,
                                void* gt, void* gd, void* gsum, int dtype, const ModconvEpilogueArgs& a, int device,
                                std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  by_dtype<true>(dtype, gy, t, d, noise, bias, gt, gd, gsum, a, reinterpret_cast<cudaStream_t>(stream));
}

void modconv_scale_grad_cuda(const void* g, const void* x, const void* s, void* gx, void* gs, int dtype, int64_t n,
                             int64_t c, int64_t p, int device, std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  auto st = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case 0: return scale_grad_launch<float>(g, x, s, gx, gs, n, c, p, st);
    case 1: return scale_grad_launch<double>(g, x, s, gx, gs, n, c, p, st);
    case 2: return scale_grad_launch<__half>(g, x, s, gx, gs, n, c, p, st);
    default: return scale_grad_launch<__nv_bfloat16>(g, x, s, gx, gs, n, c, p, st);
  }
}

}  // namespace sc
