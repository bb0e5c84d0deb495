// The elementwise halves of the native modulated convolution (the convolution itself is torch's):
//   epilogue       out = clamp(gain * act(d[n,c] * t + noise[n|0, p] + bias[c]))        (out may be t: in place)
//   epilogue_grad  gz = gy * d out/d z;  gt = gz * d;  gd[n,c] = sum_p gz * t;  gsum[n,c] = sum_p gz
//   scale_grad     the backward of xs = x * s[n,c]:  gx = g * s;  gs[n,c] = sum_p g * x
// Activations (t, gy, gt, out, x, g, gx) are [n, c, p] (NCHW) or, with channels_last, [n, p, c] (NHWC, CPU
// only); d, s, gd, gsum, gs are [n, c], noise [1 or n, p], bias [c], all dense. t, gy, gt, noise, bias, x, g,
// gx have the storage type; d, s, gd, gsum, gs the accumulation type (double for double data, else float).
#pragma once
#include <cstdint>

namespace sc {

struct ModconvEpilogueArgs {
  int64_t n = 0, c = 0, p = 0;  // t is [n, c, p]
  int64_t noise_n = 0;          // 0: no noise; 1: one [p] plane for every sample; n: [n, p]
  int act = 0;
  bool channels_last = false;  // activations are [n, p, c]
  double alpha = 0, gain = 1, clamp = -1;  // clamp < 0: none
};

#define SC_DECLARE_MODCONV_CPU(ns, T)                                                                        \
  namespace ns {                                                                                             \
  void modconv_epilogue_cpu(const T* t, const T* d, const T* noise, const T* bias, T* out,                   \
                            const ModconvEpilogueArgs& a, int threads);                                      \
  void modconv_epilogue_grad_cpu(const T* gy, const T* t, const T* d, const T* noise, const T* bias, T* gt, \
                                 T* gd, T* gsum, const ModconvEpilogueArgs& a, int threads);                 \
  void modconv_scale_grad_cpu(const T* g, const T* x, const T* s, T* gx, T* gs, int64_t n, int64_t c,       \
                              int64_t p, bool channels_last, int threads);                                   \
  }
SC_DECLARE_MODCONV_CPU(generic, float)
SC_DECLARE_MODCONV_CPU(generic, double)
SC_DECLARE_MODCONV_CPU(avx2, float)
SC_DECLARE_MODCONV_CPU(avx2, double)
#undef SC_DECLARE_MODCONV_CPU

// dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16 (storage type; the accumulation arrays are float or double).
void modconv_epilogue_cuda(const void* t, const void* d, const void* noise, const void* bias, void* out, int dtype,
                           const ModconvEpilogueArgs& a, int device, std::uintptr_t stream);
void modconv_epilogue_grad_cuda(const void* gy, const void* t, const void* d, const void* noise, const void* bias,
                                void* gt, void* gd, void* gsum, int dtype, const ModconvEpilogueArgs& a, int device,
                                std::uintptr_t stream);
void modconv_scale_grad_cuda(const void* g, const void* x, const void* s, void* gx, void* gs, int dtype, int64_t n,
                             int64_t c, int64_t p, int device, std::uintptr_t stream);

}  // namespace sc
