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
  // Counts kept as float (exact: at most one tile's rows, far below 2^24) so the whole loop is one lane type.
  std::vector<float> valid, within;
  void reset(int64_t n) {
    energy.assign(n, 0.f);
    dsum.assign(n, 0.f);
    coef.assign(n, 0.f);
    dmin.assign(n, std::numeric_limits<float>::infinity());
    dmax.assign(n, -std::numeric_limits<float>::infinity());
    valid.assign(n, 0.f);
    within.assign(n, 0.f);
  }
};

// Per-row reductions of one pass.
struct RowStats {
  float e_sum = 0.f, d_sum = 0.f, c_sum = 0.f;
  float d_min = std::numeric_limits<float>::infinity(), d_max = -std::numeric_limits<float>::infinity();
  int32_t n_valid = 0, n_within = 0, n_inside = 0;
};

struct Consts {
  float r0, kc, rc, sc;
};

// One row of a tile, columns [j_lo, j_hi). A separate function so every pointer is a restrict *parameter*:
// GCC honours restrict on parameters but not on local pointers, and without it the symmetric variant (seven
// column-partial arrays besides the tile row) fell back to its scalar loop version at run time.
template <int Metric, bool Grouped, bool Exclude, bool Sym>
__attribute__((noinline)) RowStats row_pass(float* __restrict s, int32_t j_lo, int32_t j_hi, int32_t self_col,
                                            bool same, int64_t g, float qs, const int64_t* __restrict k_group,
                                            const float* __restrict k_sq, Consts k, float* __restrict pe,
                                            float* __restrict pd, float* __restrict pc, float* __restrict pmin,
                                            float* __restrict pmax, float* __restrict pv,
                                            float* __restrict pw) {
  const float r0 = k.r0, kc = k.kc, rc = k.rc, sc_ = k.sc;
  float e_sum = 0.f, d_sum = 0.f, c_sum = 0.f, d_min = std::numeric_limits<float>::infinity(),
        d_max = -std::numeric_limits<float>::infinity();
  int32_t n_valid = 0, n_within = 0, n_inside = 0;
#pragma omp simd reduction(+ : e_sum, d_sum, c_sum, n_valid, n_within, n_inside) reduction(min : d_min) \
    reduction(max : d_max)
  for (int32_t j = j_lo; j < j_hi; ++j) {
    bool valid = true;
    if (Grouped) valid = k_group[j] == g;
    if (Exclude) valid = valid && j != self_col;
    // The expansion behind S loses the exact values of a row with itself; restore them (a select, not a
    // conditional store followed by a reload, which the vectoriser refused).
    const bool self = same && j == self_col;
    const float sj = self ? (Metric == kAngle ? 1.f : qs) : s[j];
    float d, coef, cc;
    if (Metric == kAngle) {
      float x = sc_ * sj;
      x = x > 1.f ? 1.f : (x < -1.f ? -1.f : x);
      d = vacosf(x);
      coef = (valid && d < r0) ? kc * (r0 - d) * sc_ / std::sqrt(1.f - x * x) : 0.f;
      cc = coef * sj;
    } else {
      // Load k_sq unconditionally: inside the select it became a masked load the vectoriser refused.
      const float d2_expanded = qs + k_sq[j] - 2.f * sj;
      const float d2 = self ? 0.f : d2_expanded;
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
      pv[j] += valid ? 1.f : 0.f;
      pw[j] += (valid && d < rc) ? 1.f : 0.f;
      // Select first, then store unconditionally: a conditional store becomes a masked store, which is
      // microcoded and slow on AMD cores.
      // Values, not std::min/max: those return a reference to one of their arguments, and a select between a
      // memory location and a temporary kept GCC from vectorising this loop at all (it ran scalar).
      const float lo = pmin[j], hi = pmax[j];
      const float vlo = valid ? d : std::numeric_limits<float>::infinity();
      const float vhi = valid ? d : -std::numeric_limits<float>::infinity();
      pmin[j] = vlo < lo ? vlo : lo;
      pmax[j] = vhi > hi ? vhi : hi;
    }
  }
  RowStats r;
  r.e_sum = e_sum;
  r.d_sum = d_sum;
  r.c_sum = c_sum;
  r.d_min = d_min;
  r.d_max = d_max;
  r.n_valid = n_valid;
  r.n_within = n_within;
  r.n_inside = n_inside;
  return r;
}

template <int Metric, bool Grouped, bool Exclude, bool Sym>
int64_t run(float* S, const PairTile& t, const float* q_sq, const float* k_sq, const int64_t* q_group,
            const int64_t* k_group, const PairAcc& R, const PairAcc& C, int threads) {
  const Consts k{float(t.r0), float(t.k), float(t.r_count), float(t.scale)};
  const int64_t cols = t.cols;
  int64_t inside_total = 0;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, t.rows)));
  std::vector<Partial> parts(Sym ? threads : 0);
  // Key-side arrays shifted to the tile's first column, so the row pass indexes them by tile column.
  const int64_t* kg = Grouped ? k_group + t.col0 : nullptr;
  const float* ks = Metric == kL2 ? k_sq + t.col0 : nullptr;
#pragma omp parallel num_threads(threads) reduction(+ : inside_total)
  {
    float *pe = nullptr, *pd = nullptr, *pc = nullptr, *pmin = nullptr, *pmax = nullptr;
    float *pv = nullptr, *pw = nullptr;
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
      const int64_t gi = t.row0 + i;
      // Column of the pair (i, i + query_offset) in this tile, or -1. Kept 32-bit like every other lane value:
      // GCC 12 miscompiled the int32 reductions when a 64-bit compare fed them (AVX2 build).
      const int64_t self64 = gi + t.query_offset - t.col0;
      const int32_t self_col = (self64 >= 0 && self64 < cols) ? int32_t(self64) : -1;
      const RowStats r = row_pass<Metric, Grouped, Exclude, Sym>(
          S + i * t.ld, 0, int32_t(cols), self_col, t.same_rows, Grouped ? q_group[gi] : 0,
          Metric == kL2 ? q_sq[gi] : 0.f, kg, ks, k, pe, pd, pc, pmin, pmax, pv, pw);
      R.energy[gi] += r.e_sum;
      R.dist_sum[gi] += r.d_sum;
      R.coef_sum[gi] += r.c_sum;
      R.valid[gi] += r.n_valid;
      R.within[gi] += r.n_within;
      R.dist_min[gi] = std::min(R.dist_min[gi], r.d_min);
      R.dist_max[gi] = std::max(R.dist_max[gi], r.d_max);
      inside_total += r.n_inside;
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
        C.valid[gj] += int64_t(P.valid[j]);
        C.within[gj] += int64_t(P.within[j]);
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
