// upfirdn2d: zero-insertion upsampling, zero padding (negative = crop), FIR filtering, decimation.
// Kernels receive taps already in correlation order with the gain folded in:
//   out[oy][ox] = sum_{a,b} taps[a][b] * P[oy*down_y + a][ox*down_x + b]
// where P is the upsampled, padded input. Separable filters come as two 1-D tap vectors (taps_y, taps_x).
#pragma once
#include <cstdint>

namespace sc {

struct Upfirdn2dGeom {
  int64_t planes = 0;  // N * C, each a contiguous in_h x in_w image (NCHW)
  // channels_last: x and y are dense [N, H, W, C] arrays instead (CPU only); planes is still N * C.
  bool channels_last = false;
  int64_t batch = 0, channels = 0;
  int in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int up_x = 1, up_y = 1, down_x = 1, down_y = 1;
  int pad_x0 = 0, pad_x1 = 0, pad_y0 = 0, pad_y1 = 0;
  int taps_h = 1, taps_w = 1;
  bool separable = false;
};

// CPU kernels, one copy per instruction set (see CMakeLists.txt).
#define SC_DECLARE_UPFIRDN2D_CPU(ns)                                                                     \
  namespace ns {                                                                                         \
  void upfirdn2d_cpu(const float* x, const float* taps_y, const float* taps_x, float* y,                 \
                     const Upfirdn2dGeom& g, int threads);                                               \
  void upfirdn2d_cpu(const double* x, const double* taps_y, const double* taps_x, double* y,             \
                     const Upfirdn2dGeom& g, int threads);                                               \
  }
SC_DECLARE_UPFIRDN2D_CPU(generic)
SC_DECLARE_UPFIRDN2D_CPU(avx2)
#undef SC_DECLARE_UPFIRDN2D_CPU

// CUDA kernel: the raw (unflipped) filter f is read on device; flip and gain are applied when taps are staged.
// f is [taps_h, taps_w] for a 2-D filter or [taps_w] for a separable one (then taps_h == taps_w).
// dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16 (x and y); f is float32, or float64 when x is.
void upfirdn2d_cuda(const void* x, const void* f, void* y, int dtype, const Upfirdn2dGeom& g, bool flip,
                    double gain, int device, std::uintptr_t stream);

}  // namespace sc
