// CUDA upfirdn2d: one thread per output sample, polyphase tap walk (only taps that land on real input samples
// are visited, so zero-inserted samples cost nothing), taps staged in shared memory with flip and gain applied.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include "common/cuda_info.h"
#include "common/cuda_types.cuh"
#include "upfirdn2d/upfirdn2d.h"

namespace sc {
namespace {

constexpr int kBlockX = 32, kBlockY = 8;
constexpr int kMaxSharedTaps = 4096;

template <typename A>
__device__ __forceinline__ A tap_value(const A* f, int a, int b, const Upfirdn2dGeom& g, bool flip, A gain) {
  const int fa = flip ? a : g.taps_h - 1 - a;
  const int fb = flip ? b : g.taps_w - 1 - b;
  return gain * (g.separable ? f[fa] * f[fb] : f[fa * g.taps_w + fb]);
}

template <typename T, typename A, bool SharedTaps>
__global__ void upfirdn2d_kernel(const T* __restrict__ x, const A* __restrict__ f, T* __restrict__ y,
                                 Upfirdn2dGeom g, bool flip, A gain) {
  extern __shared__ unsigned char smem_raw[];
  A* taps = reinterpret_cast<A*>(smem_raw);
  if (SharedTaps) {
    const int nt = g.taps_h * g.taps_w;
    for (int i = threadIdx.y * blockDim.x + threadIdx.x; i < nt; i += blockDim.x * blockDim.y)
      taps[i] = tap_value(f, i / g.taps_w, i % g.taps_w, g, flip, gain);
    __syncthreads();
  }
  const int ox = blockIdx.x * blockDim.x + threadIdx.x;
  if (ox >= g.out_w) return;
  const int X0 = ox * g.down_x - g.pad_x0;
  const int b0 = ((-X0) % g.up_x + g.up_x) % g.up_x;
  const int64_t in_plane = int64_t(g.in_h) * g.in_w, out_plane = int64_t(g.out_h) * g.out_w;
  for (int oy = blockIdx.y * blockDim.y + threadIdx.y; oy < g.out_h; oy += gridDim.y * blockDim.y) {
    const int Y0 = oy * g.down_y - g.pad_y0;
    const int a0 = ((-Y0) % g.up_y + g.up_y) % g.up_y;
    for (int64_t p = blockIdx.z; p < g.planes; p += gridDim.z) {
      const T* xp = x + p * in_plane;
      A acc = A(0);
      for (int a = a0; a < g.taps_h; a += g.up_y) {
        const int iy = (Y0 + a) / g.up_y;  // exact: Y0 + a is a multiple of up_y
        if (iy < 0 || iy >= g.in_h) continue;
        const T* row = xp + int64_t(iy) * g.in_w;
        for (int b = b0; b < g.taps_w; b += g.up_x) {
          const int ix = (X0 + b) / g.up_x;
          if (ix < 0 || ix >= g.in_w) continue;
          const A t = SharedTaps ? taps[a * g.taps_w + b] : tap_value(f, a, b, g, flip, gain);
          acc += t * load_as<A>(row + ix);
        }
      }
      y[p * out_plane + int64_t(oy) * g.out_w + ox] = store_as<T>(acc);
    }
  }
}

template <typename T, typename A>
void launch(const void* x, const void* f, void* y, const Upfirdn2dGeom& g, bool flip, double gain,
            cudaStream_t stream) {
  dim3 block(kBlockX, kBlockY);
  const unsigned gx = unsigned((g.out_w + kBlockX - 1) / kBlockX);
  const unsigned gy = unsigned(std::min<int64_t>((g.out_h + kBlockY - 1) / kBlockY, 65535));
  const unsigned gz = unsigned(std::min<int64_t>(g.planes, 65535));
  dim3 grid(gx, gy, gz);
  const int nt = g.taps_h * g.taps_w;
  auto xp = static_cast<const T*>(x);
  auto fp = static_cast<const A*>(f);
  auto yp = static_cast<T*>(y);
  if (nt <= kMaxSharedTaps) {
    upfirdn2d_kernel<T, A, true><<<grid, block, nt * sizeof(A), stream>>>(xp, fp, yp, g, flip, A(gain));
  } else {
    upfirdn2d_kernel<T, A, false><<<grid, block, 0, stream>>>(xp, fp, yp, g, flip, A(gain));
  }
  cuda_check(cudaGetLastError(), "upfirdn2d kernel launch");
}

}  // namespace

void upfirdn2d_cuda(const void* x, const void* f, void* y, int dtype, const Upfirdn2dGeom& g, bool flip,
                    double gain, int device, std::uintptr_t stream) {
  CudaDeviceScope scope(device);
  auto s = reinterpret_cast<cudaStream_t>(stream);
  if (g.out_w > int64_t(65535) * kBlockX) throw std::runtime_error("upfirdn2d: output too wide for the CUDA grid");
  switch (dtype) {
    case 0: return launch<float, float>(x, f, y, g, flip, gain, s);
    case 1: return launch<double, double>(x, f, y, g, flip, gain, s);
    case 2: return launch<__half, float>(x, f, y, g, flip, gain, s);
    default: return launch<__nv_bfloat16, float>(x, f, y, g, flip, gain, s);
  }
}

}  // namespace sc
