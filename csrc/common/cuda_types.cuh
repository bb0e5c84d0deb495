// Element types for CUDA kernels: storage type T, accumulation in float (double for double).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sc {

template <typename T>
struct AccType { using type = float; };
template <>
struct AccType<double> { using type = double; };

template <typename A, typename T>
__device__ __forceinline__ A load_as(const T* p) { return static_cast<A>(*p); }
template <>
__device__ __forceinline__ float load_as<float, __half>(const __half* p) { return __half2float(*p); }
template <>
__device__ __forceinline__ float load_as<float, __nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }

template <typename T, typename A>
__device__ __forceinline__ T store_as(A v) { return static_cast<T>(v); }
template <>
__device__ __forceinline__ __half store_as<__half, float>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 store_as<__nv_bfloat16, float>(float v) { return __float2bfloat16_rn(v); }

}  // namespace sc
