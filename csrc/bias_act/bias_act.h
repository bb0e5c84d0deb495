// bias_act: y = clamp(gain * act(x + b)), bias along one dimension, plus its derivatives.
// x is viewed as [outer, channels, inner] with the bias along `channels`.
#pragma once
#include <cstdint>

namespace sc {

struct BiasActArgs {
  int64_t outer = 1, channels = 1, inner = 1;
  int act = 0;
  double alpha = 0, gain = 1, clamp = -1;  // clamp < 0: none
  int order = 0;  // 0: forward; 1, 2: m * (d/dv)^order of the forward, v = x + b
};

// out = forward(x + b) (order 0) or m * derivative (order 1, 2). b and m may be null (no bias / m = 1).
#define SC_DECLARE_BIAS_ACT_CPU(ns)                                                                     \
  namespace ns {                                                                                        \
  void bias_act_cpu(const float* x, const float* b, const float* m, float* out, const BiasActArgs& a,   \
                    int threads);                                                                       \
  void bias_act_cpu(const double* x, const double* b, const double* m, double* out, const BiasActArgs& a, \
                    int threads);                                                                       \
  }
SC_DECLARE_BIAS_ACT_CPU(generic)
SC_DECLARE_BIAS_ACT_CPU(avx2)
#undef SC_DECLARE_BIAS_ACT_CPU

// dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16 (all arrays share it).
void bias_act_cuda(const void* x, const void* b, const void* m, void* out, int dtype, const BiasActArgs& a,
                   int device, std::uintptr_t stream);

}  // namespace sc
