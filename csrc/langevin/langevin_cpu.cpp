#include <omp.h>

#include <algorithm>
#include <cmath>

#include "langevin/langevin.h"
#include "langevin/philox.h"

namespace sc {
namespace {

using std::cos;
using std::log;
using std::sin;
using std::sqrt;

template <typename T>
void run(const T* w, const T* F, const T* w_avg, T* out, const LangevinArgs& a, bool noise_only, int threads) {
  const int64_t blocks = (a.dim + 3) / 4;
  const T drift = T(a.dt / a.mu), diff = T(std::sqrt(a.dt) / a.mu * a.eta), kl = T(a.k_l);
  threads = a.rows * a.dim < 16384 ? 1 : std::max(1, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < a.rows; ++i) {
    const int64_t row = a.row_offset + i;
    for (int64_t b = 0; b < blocks; ++b) {
      T xi[4];
      normal4<T>(a.seed, a.step, row, b, xi);
      for (int q = 0; q < 4; ++q) {
        const int64_t j = 4 * b + q;
        if (j >= a.dim) break;
        const int64_t e = i * a.dim + j;
        if (noise_only) {
          out[e] = xi[q];
        } else {
          T force = F[e];
          if (w_avg) force += kl * (w_avg[j] - w[e]);
          out[e] = w[e] + drift * force + diff * xi[q];
        }
      }
    }
  }
}

}  // namespace

void langevin_cpu(const float* w, const float* F, const float* w_avg, float* out, const LangevinArgs& a,
                  bool noise_only, int threads) {
  run(w, F, w_avg, out, a, noise_only, threads);
}
void langevin_cpu(const double* w, const double* F, const double* w_avg, double* out, const LangevinArgs& a,
                  bool noise_only, int threads) {
  run(w, F, w_avg, out, a, noise_only, threads);
}

}  // namespace sc
