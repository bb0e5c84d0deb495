// Philox4x32-10 counter-based generator (Salmon et al., SC'11) and Box-Muller normals, host and device.
// The noise of element (row, col) at a step is a pure function of (seed, step, row, col): any split of the
// rows into batches, any thread count and any device give the same numbers.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define SC_PHILOX_HD __host__ __device__ __forceinline__
#else
#define SC_PHILOX_HD inline
#endif

namespace sc {

struct Philox4 {
  uint32_t v[4];
};

SC_PHILOX_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

// Counter (c0, c1, c2, c3) = (column block, row low word, row high word, step); key = seed words.
SC_PHILOX_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, c0, hi0, lo0);
    mulhilo32(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Two standard normals from two 32-bit words: u1 in (0, 1], u2 in [0, 1), both exact 24-bit grids.
template <typename T>
SC_PHILOX_HD void box_muller(uint32_t a, uint32_t b, T& z0, T& z1) {
  const T u1 = T((a >> 8) + 1u) * T(5.9604644775390625e-08);  // 2^-24
  const T u2 = T(b >> 8) * T(5.9604644775390625e-08);
  const T r = sqrt(T(-2) * log(u1));
  const T th = T(6.283185307179586) * u2;
  z0 = r * cos(th);
  z1 = r * sin(th);
}

// Normals for columns [4 * block, 4 * block + 4) of a row.
template <typename T>
SC_PHILOX_HD void normal4(uint64_t seed, int64_t step, int64_t row, int64_t block, T out[4]) {
  const Philox4 x = philox4x32_10(uint32_t(block), uint32_t(uint64_t(row)), uint32_t(uint64_t(row) >> 32),
                                  uint32_t(step), uint32_t(seed), uint32_t(seed >> 32));
  box_muller<T>(x.v[0], x.v[1], out[0], out[1]);
  box_muller<T>(x.v[2], x.v[3], out[2], out[3]);
}

// One Philox block of the Langevin step: columns [4 b, 4 b + 4) of local row i (global row row_offset + i).
// out = w + drift (F + kl (w_avg - w)) + diff xi, or out = xi when noise_only. Shared by the CPU and CUDA kernels.
template <typename T>
SC_PHILOX_HD void langevin_block(const T* w, const T* F, const T* w_avg, T* out, int64_t i, int64_t b, int64_t dim,
                                 int64_t row_offset, uint64_t seed, int64_t step, T drift, T diff, T kl,
                                 bool noise_only) {
  T xi[4];
  normal4<T>(seed, step, row_offset + i, b, xi);
  for (int q = 0; q < 4; ++q) {
    const int64_t j = 4 * b + q;
    if (j >= dim) break;
    const int64_t e = i * dim + j;
    if (noise_only) {
      out[e] = xi[q];
    } else {
      T force = F[e];
      if (w_avg) force += kl * (w_avg[j] - w[e]);
      out[e] = w[e] + drift * force + diff * xi[q];
    }
  }
}

}  // namespace sc
