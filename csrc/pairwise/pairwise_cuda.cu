// CUDA pairwise epilogue: one thread per tile entry; statistics folded in with atomics.
// (A fused tensor-core kernel that keeps similarity tiles on chip is the next step; this one pairs with a
// cuBLAS product for the tile.)
#include <cuda_runtime.h>

#include <algorithm>

#include "common/cuda_info.h"
#include "pairwise/pairwise.h"

namespace sc {
namespace {

// Non-negative floats order like their bit patterns as signed ints.
__device__ __forceinline__ void atomic_min_nonneg(float* addr, float v) {
  atomicMin(reinterpret_cast<int*>(addr), __float_as_int(v));
}
__device__ __forceinline__ void atomic_max_nonneg(float* addr, float v) {
  atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
}

__device__ __forceinline__ void fold(const PairAcc& a, int64_t g, float e, float d, float cc, bool valid, bool within) {
  if (e != 0.f) atomicAdd(a.energy + g, double(e));
  if (cc != 0.f) atomicAdd(a.coef_sum + g, double(cc));
  if (!valid) return;
  atomicAdd(a.dist_sum + g, double(d));
  atomicAdd(reinterpret_cast<unsigned long long*>(a.valid + g), 1ull);
  if (within) atomicAdd(reinterpret_cast<unsigned long long*>(a.within + g), 1ull);
  atomic_min_nonneg(a.dist_min + g, d);
  atomic_max_nonneg(a.dist_max + g, d);
}

__global__ void epilogue_kernel(float* S, PairTile t, const float* q_sq, const float* k_sq, const int64_t* q_group,
                                const int64_t* k_group, PairAcc R, PairAcc C) {
  const int64_t total = t.rows * t.cols;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = idx / t.cols, j = idx % t.cols;
    const int64_t gi = t.row0 + i, gj = t.col0 + j;
    float* s = S + i * t.ld + j;
    bool valid = true;
    if (q_group) valid = q_group[gi] == k_group[gj];
    if (t.exclude_self) valid = valid && gj != gi + t.query_offset;
    const float r0 = float(t.r0), kc = float(t.k);
    const bool self = t.same_rows && gj == gi + t.query_offset;
    if (self) *s = t.metric == kAngle ? 1.f : q_sq[gi];
    float d, coef, cc;
    if (t.metric == kAngle) {
      float x = float(t.scale) * *s;
      x = fminf(1.f, fmaxf(-1.f, x));
      d = acosf(x);
      coef = (valid && d < r0) ? kc * (r0 - d) * float(t.scale) * rsqrtf(1.f - x * x) : 0.f;
      cc = coef * *s;
    } else {
      const float d2 = self ? 0.f : q_sq[gi] + k_sq[gj] - 2.f * *s;
      d = sqrtf(fmaxf(d2, 0.f));
      coef = (valid && d < r0 && d > 0.f) ? kc * (r0 - d) / d : 0.f;
      cc = coef;
    }
    const float e = (valid && d < r0) ? 0.5f * kc * (r0 - d) * (r0 - d) : 0.f;
    *s = coef;
    const bool within = d < float(t.r_count);
    fold(R, gi, e, d, cc, valid, within);
    if (t.symmetric) fold(C, gj, e, d, cc, valid, within);
  }
}

}  // namespace

int64_t pairwise_epilogue_cuda(float* S, const PairTile& t, const float* q_sq, const float* k_sq,
                               const int64_t* q_group, const int64_t* k_group, const PairAcc& rows,
                               const PairAcc& cols, int device, std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((t.rows * t.cols + threads - 1) / threads, int64_t(1) << 16);
  epilogue_kernel<<<unsigned(blocks), threads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      S, t, q_sq, k_sq, q_group, k_group, rows, cols);
  cuda_check(cudaGetLastError(), "pairwise epilogue launch");
  return -1;
}

}  // namespace sc
