// Branch-free float exp and tanh built from arithmetic only, so loops calling them vectorise (a libm call
// in the loop body stops the compiler). Accuracy: exp within ~2 ulp over its range, tanh within ~3e-7
// relative; NaN in, NaN out. Used only by the float CPU kernels; double and CUDA use the standard library.
#pragma once
#include <cstdint>
#include <cmath>
#include <cstring>

namespace sc {

__attribute__((always_inline)) inline float vexpf(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447504f;  // beyond: +inf / below float's normal range
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // x = n ln2 + r, |r| <= ln2/2; ln2 split in two parts so n*ln2 is exact enough.
  const float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // Taylor polynomial of e^r to degree 7 (truncation error < 5e-9 on |r| <= 0.347).
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  // Scale by 2^n through the exponent bits.
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float result = p * scale;
  result = x > hi ? __builtin_inff() : result;
  result = x < lo ? 0.f : result;
  return x != x ? x : result;
}

__attribute__((always_inline)) inline float vtanhf(float x) {
  const float a = x < 0 ? -x : x;
  // Large |x|: tanh = 1 - 2 / (e^{2|x|} + 1). Small |x|: odd Taylor series (avoids cancellation).
  const float e = vexpf(2.f * (a > 9.f ? 9.f : a));
  const float big = 1.f - 2.f / (e + 1.f);
  const float x2 = a * a;
  float s = -17.f / 315.f;
  s = s * x2 + 2.f / 15.f;
  s = s * x2 - 1.f / 3.f;
  const float small = a + a * x2 * s;
  float t = a < 0.0625f ? small : big;
  t = x < 0 ? -t : t;
  return x != x ? x : t;
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}). With u = e^{-|x|} in (0, 1],
// log1p(u) = 2 atanh(s), s = u / (2 + u) in (0, 1/3]: an odd series that converges fast and keeps
// full relative accuracy for tiny u.
__attribute__((always_inline)) inline float vsoftplusf(float x) {
  const float a = x < 0 ? -x : x;
  const float u = vexpf(-a);
  const float s = u / (2.f + u);
  const float s2 = s * s;
  float p = 1.f / 15.f;
  p = p * s2 + 1.f / 13.f;
  p = p * s2 + 1.f / 11.f;
  p = p * s2 + 1.f / 9.f;
  p = p * s2 + 1.f / 7.f;
  p = p * s2 + 1.f / 5.f;
  p = p * s2 + 1.f / 3.f;
  p = p * s2 + 1.f;
  const float r = (x > 0 ? x : 0.f) + 2.f * s * p;
  return x != x ? x : r;
}

// acos on [-1, 1]: asin series on [0, 1/2], and acos(x) = 2 asin(sqrt((1 - x) / 2)) above; within ~2e-7 abs.
__attribute__((always_inline)) inline float vacosf(float x) {
  const float a = x < 0 ? -x : x;
  const bool big = a > 0.5f;
  const float t2 = big ? 0.5f * (1.f - a) : a * a;  // argument of the series, squared
  const float t = big ? std::sqrt(t2) : a;
  // asin(t) = t + t^3 P(t^2), Taylor coefficients of asin up to t^19 (|t| <= 1/2: error < 2e-8).
  float p = 0.0097616095f;
  p = p * t2 + 0.0115518009f;
  p = p * t2 + 0.0139648438f;
  p = p * t2 + 0.0173527644f;
  p = p * t2 + 0.0223721591f;
  p = p * t2 + 0.0303819444f;
  p = p * t2 + 0.0446428571f;
  p = p * t2 + 0.0750000000f;
  p = p * t2 + 0.1666666667f;
  const float as = t + t * t2 * p;
  const float r = big ? 2.f * as : 1.57079632679f - as;  // acos(|x|)
  const float res = x < 0 ? 3.14159265359f - r : r;
  return x != x ? x : res;
}

}  // namespace sc
