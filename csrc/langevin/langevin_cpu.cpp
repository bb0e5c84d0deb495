#include <omp.h>

#include <algorithm>
#include <cmath>

#include "langevin/langevin.h"
#include "langevin/philox.h"

// Compiled once per CPU variant (generic and avx2, see CMakeLists.txt) like every CPU kernel, so the tests run it
// under both. Both run at the same speed today: the Box-Muller transform's libm log/sin/cos keep the loop scalar
// (benchmarks/RESULTS.md).
namespace sc {
namespace SYNTHCORE_ISA {
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
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t b = 0; b < blocks; ++b)
      langevin_block<T>(w, F, w_avg, out, i, b, a.dim, a.row_offset, a.seed, a.step, drift, diff, kl, noise_only);
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

}  // namespace SYNTHCORE_ISA
}  // namespace sc
