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

// Everything one pair needs, from its entry of S (rewritten in place to the force coefficient).
struct PairOut {
  float d, cc, e;
  bool valid, within, inside;
};

template <int Metric, bool Grouped, bool Exclude>
__attribute__((always_inline)) inline PairOut eval_pair(float& s, int32_t j, int32_t self_col, bool same,
                                                        int64_t g, const int64_t* k_group, float qs,
                                                        const float* k_sq, float r0, float kc, float scale,
                                                        float rc) {
  bool valid = true;
  if (Grouped) valid = k_group[j] == g;
  if (Exclude) valid = valid && j != self_col;
  // The expansion behind S loses the exact values of a row with itself; restore them.
  const bool self = same && j == self_col;
  if (self) s = Metric == kAngle ? 1.f : qs;
  float d, coef, cc;
  if (Metric == kAngle) {
    float x = scale * s;
    x = x > 1.f ? 1.f : (x < -1.f ? -1.f : x);
    d = vacosf(x);
    coef = (valid && d < r0) ? kc * (r0 - d) * scale / std::sqrt(1.f - x * x) : 0.f;
    cc = coef * s;
  } else {
    const float d2 = self ? 0.f : qs + k_sq[j] - 2.f * s;
    d = std::sqrt(d2 > 0.f ? d2 : 0.f);
    // At d == 0 the direction is undefined: no force (as torch's norm gradient), but the energy counts.
    coef = (valid && d < r0 && d > 0.f) ? kc * (r0 - d) / d : 0.f;
    cc = coef;
  }
  s = coef;
  const float e = (valid && d < r0) ? 0.5f * kc * (r0 - d) * (r0 - d) : 0.f;
  return PairOut{d, cc, e, valid, valid && d < rc, coef != 0.f};
}

struct RowState {
  int64_t gi;
  int32_t self_col;  // column of the pair (i, i + query_offset) in this tile, or -1
  int64_t g;
  float qs;
};

template <int Metric, bool Grouped>
inline RowState row_state(const PairTile& t, int64_t i, const float* q_sq, const int64_t* q_group) {
  RowState r;
  r.gi = t.row0 + i;
  // Kept 32-bit like every other lane value: GCC 12 miscompiled int32 reductions fed by a 64-bit compare (AVX2).
  const int64_t self64 = r.gi + t.query_offset - t.col0;
  r.self_col = (self64 >= 0 && self64 < t.cols) ? int32_t(self64) : -1;
  r.g = Grouped ? q_group[r.gi] : 0;
  r.qs = Metric == kL2 ? q_sq[r.gi] : 0.f;
  return r;
}

struct RowSums {
  float e = 0.f, d = 0.f, c = 0.f, dmin = std::numeric_limits<float>::infinity(),
        dmax = -std::numeric_limits<float>::infinity();
  int32_t valid = 0, within = 0, inside = 0;
  void add_to(const PairAcc& A, int64_t gi) const {
    A.energy[gi] += e;
    A.dist_sum[gi] += d;
    A.coef_sum[gi] += c;
    A.valid[gi] += valid;
    A.within[gi] += within;
    A.dist_min[gi] = std::min(A.dist_min[gi], dmin);
    A.dist_max[gi] = std::max(A.dist_max[gi], dmax);
  }
};

template <int Metric, bool Grouped, bool Exclude, bool Sym>
int64_t run(float* S, const PairTile& t, const float* q_sq, const float* k_sq, const int64_t* q_group,
            const int64_t* k_group, const PairAcc& R, const PairAcc& C, int threads) {
  const float r0 = float(t.r0), kc = float(t.k), rc = float(t.r_count), sc_ = float(t.scale);
  const int64_t cols = t.cols;
  const int32_t cols32 = int32_t(cols);  // tiles are far below 2^31 columns (checked by the binding)
  const bool same = t.same_rows;
  const int64_t* kg = Grouped ? k_group + t.col0 : nullptr;
  const float* ks = Metric == kL2 ? k_sq + t.col0 : nullptr;
  // Symmetric tiles walk two rows per pass, so each column-side partial is read and written once per two entries.
  constexpr int64_t kRowsPerPass = Sym ? 2 : 1;
  const int64_t passes = (t.rows + kRowsPerPass - 1) / kRowsPerPass;
  int64_t inside_total = 0;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, passes)));
  std::vector<Partial> parts(Sym ? threads : 0);
#pragma omp parallel num_threads(threads) reduction(+ : inside_total)
  {
    Partial* P = nullptr;
    float *pe = nullptr, *pd = nullptr, *pc = nullptr, *pmin = nullptr, *pmax = nullptr;
    int32_t *pv = nullptr, *pw = nullptr;
    if (Sym) {
      P = &parts[omp_get_thread_num()];
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
    for (int64_t pass = 0; pass < passes; ++pass) {
      const int64_t i = pass * kRowsPerPass;
      if (Sym && i + 1 < t.rows) {
        float* sa = S + i * t.ld;
        float* sb = sa + t.ld;
        const RowState a = row_state<Metric, Grouped>(t, i, q_sq, q_group);
        const RowState b = row_state<Metric, Grouped>(t, i + 1, q_sq, q_group);
        RowSums A, B;
        float ae = 0.f, ad = 0.f, ac = 0.f, amin = A.dmin, amax = A.dmax;
        float be = 0.f, bd = 0.f, bc = 0.f, bmin = B.dmin, bmax = B.dmax;
        int32_t av = 0, aw = 0, ai = 0, bv = 0, bw = 0, bi = 0;
#pragma omp simd reduction(+ : ae, ad, ac, av, aw, ai, be, bd, bc, bv, bw, bi) reduction(min : amin, bmin) \
    reduction(max : amax, bmax)
        for (int32_t j = 0; j < cols32; ++j) {
          const PairOut x = eval_pair<Metric, Grouped, Exclude>(sa[j], j, a.self_col, same, a.g, kg, a.qs, ks, r0, kc,
                                                                sc_, rc);
          const PairOut y = eval_pair<Metric, Grouped, Exclude>(sb[j], j, b.self_col, same, b.g, kg, b.qs, ks, r0, kc,
                                                                sc_, rc);
          ae += x.e;
          ac += x.cc;
          ad += x.valid ? x.d : 0.f;
          av += x.valid ? 1 : 0;
          aw += x.within ? 1 : 0;
          ai += x.inside ? 1 : 0;
          amin = x.valid ? std::min(amin, x.d) : amin;
          amax = x.valid ? std::max(amax, x.d) : amax;
          be += y.e;
          bc += y.cc;
          bd += y.valid ? y.d : 0.f;
          bv += y.valid ? 1 : 0;
          bw += y.within ? 1 : 0;
          bi += y.inside ? 1 : 0;
          bmin = y.valid ? std::min(bmin, y.d) : bmin;
          bmax = y.valid ? std::max(bmax, y.d) : bmax;
          const float inf = std::numeric_limits<float>::infinity();
          pe[j] += x.e + y.e;
          pc[j] += x.cc + y.cc;
          pd[j] += (x.valid ? x.d : 0.f) + (y.valid ? y.d : 0.f);
          pv[j] += (x.valid ? 1 : 0) + (y.valid ? 1 : 0);
          pw[j] += (x.within ? 1 : 0) + (y.within ? 1 : 0);
          pmin[j] = std::min(pmin[j], std::min(x.valid ? x.d : inf, y.valid ? y.d : inf));
          pmax[j] = std::max(pmax[j], std::max(x.valid ? x.d : -inf, y.valid ? y.d : -inf));
        }
        A.e = ae, A.d = ad, A.c = ac, A.dmin = amin, A.dmax = amax, A.valid = av, A.within = aw;
        B.e = be, B.d = bd, B.c = bc, B.dmin = bmin, B.dmax = bmax, B.valid = bv, B.within = bw;
        A.add_to(R, a.gi);
        B.add_to(R, b.gi);
        inside_total += ai + bi;
        continue;
      }
      // One row (non-symmetric tiles, or the last odd row of a symmetric one).
      float* sa = S + i * t.ld;
      const RowState a = row_state<Metric, Grouped>(t, i, q_sq, q_group);
      float ae = 0.f, ad = 0.f, ac = 0.f, amin = std::numeric_limits<float>::infinity(),
            amax = -std::numeric_limits<float>::infinity();
      int32_t av = 0, aw = 0, ai = 0;
#pragma omp simd reduction(+ : ae, ad, ac, av, aw, ai) reduction(min : amin) reduction(max : amax)
      for (int32_t j = 0; j < cols32; ++j) {
        const PairOut x = eval_pair<Metric, Grouped, Exclude>(sa[j], j, a.self_col, same, a.g, kg, a.qs, ks, r0, kc,
                                                              sc_, rc);
        ae += x.e;
        ac += x.cc;
        ad += x.valid ? x.d : 0.f;
        av += x.valid ? 1 : 0;
        aw += x.within ? 1 : 0;
        ai += x.inside ? 1 : 0;
        amin = x.valid ? std::min(amin, x.d) : amin;
        amax = x.valid ? std::max(amax, x.d) : amax;
        if (Sym) {
          pe[j] += x.e;
          pc[j] += x.cc;
          pd[j] += x.valid ? x.d : 0.f;
          pv[j] += x.valid ? 1 : 0;
          pw[j] += x.within ? 1 : 0;
          pmin[j] = x.valid ? std::min(pmin[j], x.d) : pmin[j];
          pmax[j] = x.valid ? std::max(pmax[j], x.d) : pmax[j];
        }
      }
      RowSums A;
      A.e = ae, A.d = ad, A.c = ac, A.dmin = amin, A.dmax = amax, A.valid = av, A.within = aw;
      A.add_to(R, a.gi);
      inside_total += ai;
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
