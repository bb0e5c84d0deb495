// CPU pairwise epilogue: one vectorisable pass over a similarity tile (acos via common/vector_math.h).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/vector_math.h"
#include "pairwise/pairwise.h"

namespace sc {
namespace SYNTHCORE_ISA {
namespace {

struct Partial {  // column-side partial statistics of one thread (symmetric tiles)
  std::vector<float> energy, dsum, coef, dmin, dmax;
  std::vector<int32_t> valid, within;
  void reset(int64_t n) {
    energy.assign(n, 0.f);
    dsum.assign(n, 0.f);
    coef.assign(n, 0.f);
    dmin.assign(n, std::numeric_limits<float>::infinity());
    dmax.assign(n, -std::numeric_limits<float>::infinity());
    valid.assign(n, 0);
    within.assign(n, 0);
  }
};

template <int Metric, bool Grouped, bool Exclude, bool Sym>
int64_t run(float* S, const PairTile& t, const float* q_sq, const float* k_sq, const int64_t* q_group,
            const int64_t* k_group, const PairAcc& R, const PairAcc& C, int threads) {
  const float r0 = float(t.r0), kc = float(t.k), rc = float(t.r_count), sc_ = float(t.scale);
  const int64_t cols = t.cols;
  const int32_t cols32 = int32_t(cols);  // tiles are far below 2^31 columns (checked by the binding)
  int64_t inside_total = 0;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, t.rows)));
  std::vector<Partial> parts(Sym ? threads : 0);
#pragma omp parallel num_threads(threads) reduction(+ : inside_total)
  {
    // Raw, restrict-qualified pointers: the column partials never alias the tile, so the compiler may keep the
    // loop free of alias checks.
    float *__restrict pe = nullptr, *__restrict pd = nullptr, *__restrict pc = nullptr;
    float *__restrict pmin = nullptr, *__restrict pmax = nullptr;
    int32_t *__restrict pv = nullptr, *__restrict pw = nullptr;
    if (Sym) {
      Partial* P = &parts[omp_get_thread_num()];
      P->reset(cols);
      pe = P->energy.data();
      pd = P->dsum.data();
      pc = P->coef.data();
      pmin = P->dmin.data();
      pmax = P->dmax.data();
      pv = P->valid.data();
      pw = P->within.data();
    }
#pragma omp for schedule(static)
    for (int64_t i = 0; i < t.rows; ++i) {
      float* __restrict s = S + i * t.ld;
      const int64_t gi = t.row0 + i;
      // Column of the pair (i, i + query_offset) in this tile, or -1. Kept 32-bit like every other lane value:
      // GCC 12 miscompiled the int32 reductions below when a 64-bit compare fed them (AVX2 build).
      const int64_t self64 = gi + t.query_offset - t.col0;
      const int32_t self_col = (self64 >= 0 && self64 < cols) ? int32_t(self64) : -1;
      const int64_t g = Grouped ? q_group[gi] : 0;
      const float qs = Metric == kL2 ? q_sq[gi] : 0.f;
      const bool same = t.same_rows;
      float e_sum = 0.f, d_sum = 0.f, c_sum = 0.f, d_min = std::numeric_limits<float>::infinity(),
            d_max = -std::numeric_limits<float>::infinity();
      int32_t n_valid = 0, n_within = 0, n_inside = 0;
#pragma omp simd reduction(+ : e_sum, d_sum, c_sum, n_valid, n_within, n_inside) reduction(min : d_min) \
    reduction(max : d_max)
      for (int32_t j = 0; j < cols32; ++j) {
        bool valid = true;
        if (Grouped) valid = k_group[t.col0 + j] == g;
        if (Exclude) valid = valid && j != self_col;
        // The expansion behind S loses the exact values of a row with itself; restore them.
        const bool self = same && j == self_col;
        if (self) s[j] = Metric == kAngle ? 1.f : qs;
        float d, coef, cc;
        if (Metric == kAngle) {
          float x = sc_ * s[j];
          x = x > 1.f ? 1.f : (x < -1.f ? -1.f : x);
          d = vacosf(x);
          coef = (valid && d < r0) ? kc * (r0 - d) * sc_ / std::sqrt(1.f - x * x) : 0.f;
          cc = coef * s[j];
        } else {
          const float d2 = self ? 0.f : qs + k_sq[t.col0 + j] - 2.f * s[j];
          d = std::sqrt(d2 > 0.f ? d2 : 0.f);
          // At d == 0 the direction is undefined: no force (as torch's norm gradient), but the energy counts.
          coef = (valid && d < r0 && d > 0.f) ? kc * (r0 - d) / d : 0.f;
          cc = coef;
        }
        const bool in = coef != 0.f;
        const float e = (valid && d < r0) ? 0.5f * kc * (r0 - d) * (r0 - d) : 0.f;
        s[j] = coef;
        e_sum += e;
        c_sum += cc;
        n_inside += in ? 1 : 0;
        d_sum += valid ? d : 0.f;
        n_valid += valid ? 1 : 0;
        n_within += (valid && d < rc) ? 1 : 0;
        d_min = valid ? std::min(d_min, d) : d_min;
        d_max = valid ? std::max(d_max, d) : d_max;
        if (Sym) {
          pe[j] += e;
          pc[j] += cc;
          pd[j] += valid ? d : 0.f;
          pv[j] += valid ? 1 : 0;
          pw[j] += (valid && d < rc) ? 1 : 0;
          // Select first, then store unconditionally: a conditional store becomes a masked store, which is
          // microcoded and slow on AMD cores.
          pmin[j] = std::min(pmin[j], valid ? d : std::numeric_limits<float>::infinity());
          pmax[j] = std::max(pmax[j], valid ? d : -std::numeric_limits<float>::infinity());
        }
      }
      R.energy[gi] += e_sum;
      R.dist_sum[gi] += d_sum;
      R.coef_sum[gi] += c_sum;
      R.valid[gi] += n_valid;
      R.within[gi] += n_within;
      R.dist_min[gi] = std::min(R.dist_min[gi], d_min);
      R.dist_max[gi] = std::max(R.dist_max[gi], d_max);
      inside_total += n_inside;
    }
  }
  if (Sym) {
    // Symmetric tile: entry (i, j) is also pair (j, i) of the key rows; fold the threads' column partials in.
    for (const Partial& P : parts) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t gj = t.col0 + j;
        C.energy[gj] += P.energy[j];
        C.dist_sum[gj] += P.dsum[j];
        C.coef_sum[gj] += P.coef[j];
        C.valid[gj] += P.valid[j];
        C.within[gj] += P.within[j];
        C.dist_min[gj] = std::min(C.dist_min[gj], P.dmin[j]);
        C.dist_max[gj] = std::max(C.dist_max[gj], P.dmax[j]);
      }
    }
  }
  return inside_total;
}

template <int Metric>
int64_t by_flags(float* S, const PairTile& t, const float* q_sq, const float* k_sq, const int64_t* q_group,
                 const int64_t* k_group, const PairAcc& R, const PairAcc& C, int threads) {
  const bool grouped = q_group != nullptr, ex = t.exclude_self, sym = t.symmetric;
#define SC_CASE(G, E, Y)                                                                            \
  if (grouped == G && ex == E && sym == Y)                                                          \
    return run<Metric, G, E, Y>(S, t, q_sq, k_sq, q_group, k_group, R, C, threads);
  SC_CASE(false, false, false)
  SC_CASE(false, false, true)
  SC_CASE(false, true, false)
  SC_CASE(false, true, true)
  SC_CASE(true, false, false)
  SC_CASE(true, false, true)
  SC_CASE(true, true, false)
  SC_CASE(true, true, true)
#undef SC_CASE
  return 0;
}

}  // namespace

int64_t pairwise_epilogue_cpu(float* S, const PairTile& t, const float* q_sq, const float* k_sq,
                              const int64_t* q_group, const int64_t* k_group, const PairAcc& rows,
                              const PairAcc& cols, int threads) {
  if (t.metric == kAngle) return by_flags<kAngle>(S, t, q_sq, k_sq, q_group, k_group, rows, cols, threads);
  return by_flags<kL2>(S, t, q_sq, k_sq, q_group, k_group, rows, cols, threads);
}

void pairwise_sparse_accumulate_cpu(const float* A, int64_t rows, int64_t cols, int64_t ld, const float* K,
                                    const float* Q, int64_t dim, float* F_rows, float* F_cols, int threads) {
  // Non-zeros per row, collected once; used for the row side directly and, transposed, for the column side.
  std::vector<std::vector<std::pair<int32_t, float>>> nz(rows);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const float* a = A + i * ld;
    auto& list = nz[i];
    for (int64_t j = 0; j < cols; ++j)
      if (a[j] != 0.f) list.emplace_back(int32_t(j), a[j]);
    float* f = F_rows + i * dim;
    for (const auto& [j, v] : list) {
      const float* kr = K + int64_t(j) * dim;
#pragma omp simd
      for (int64_t c = 0; c < dim; ++c) f[c] += v * kr[c];
    }
  }
  if (!F_cols) return;
  // Column side: each thread owns a range of columns, so no two threads write the same row of F_cols.
#pragma omp parallel num_threads(threads)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t j_lo = cols * id / nt, j_hi = cols * (id + 1) / nt;
    for (int64_t i = 0; i < rows; ++i) {
      const float* qr = Q + i * dim;
      for (const auto& [j, v] : nz[i]) {
        if (j < j_lo || j >= j_hi) continue;
        float* f = F_cols + int64_t(j) * dim;
#pragma omp simd
        for (int64_t c = 0; c < dim; ++c) f[c] += v * qr[c];
      }
    }
  }
}

}  // namespace SYNTHCORE_ISA
}  // namespace sc
