#include <cuda_runtime.h>

#include <algorithm>

#include "common/cuda_info.h"
#include "langevin/langevin.h"
#include "langevin/philox.h"

namespace sc {
namespace {

// One thread per block of four columns of a row (one Philox call each).
template <typename T>
__global__ void langevin_kernel(const T* w, const T* F, const T* w_avg, T* out, LangevinArgs a, bool noise_only) {
  const int64_t blocks = (a.dim + 3) / 4, total = a.rows * blocks;
  const T drift = T(a.dt / a.mu), diff = T(sqrt(a.dt) / a.mu * a.eta), kl = T(a.k_l);
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    langevin_block<T>(w, F, w_avg, out, t / blocks, t % blocks, a.dim, a.row_offset, a.seed, a.step, drift, diff, kl,
                      noise_only);
  }
}

}  // namespace

void langevin_cuda(const void* w, const void* F, const void* w_avg, void* out, int dtype, const LangevinArgs& a,
                   bool noise_only, int device, std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  const int threads = 256;
  const int64_t total = a.rows * ((a.dim + 3) / 4);
  const unsigned blocks = unsigned(std::max<int64_t>(1, std::min<int64_t>((total + threads - 1) / threads, 1 << 16)));
  auto s = reinterpret_cast<cudaStream_t>(stream);
  if (dtype == 0) {
    langevin_kernel<float><<<blocks, threads, 0, s>>>(static_cast<const float*>(w), static_cast<const float*>(F),
                                                      static_cast<const float*>(w_avg), static_cast<float*>(out), a,
                                                      noise_only);
  } else {
    langevin_kernel<double><<<blocks, threads, 0, s>>>(static_cast<const double*>(w), static_cast<const double*>(F),
                                                       static_cast<const double*>(w_avg), static_cast<double*>(out),
                                                       a, noise_only);
  }
  cuda_check(cudaGetLastError(), "langevin kernel launch");
}

}  // namespace sc
