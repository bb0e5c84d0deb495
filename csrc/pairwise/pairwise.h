// Pairwise soft-sphere interaction, tile epilogue.
// The caller computes a similarity tile S = Qt Kt^T (cosines of normalised rows for the angle metric, raw dot
// products for l2) with a matrix product; the epilogue turns it, in one pass and in place, into the force
// coefficients and accumulates energy and distance statistics per row (and per column for symmetric tiles).
//   angle: c = S, d = acos(scale c), inside = d < r0, coef = k (r0 - d) scale / sqrt(1 - (scale c)^2),
//          dU/dq_i = (sum_j coef_ij khat_j - (sum_j coef_ij c_ij) qhat_i) / |q_i|
//   l2:    d = sqrt(|q|^2 + |k|^2 - 2 S), coef = k (r0 - d) / d,
//          dU/dq_i = sum_j coef_ij k_j - (sum_j coef_ij) q_i
//   energy_i += k/2 (r0 - d)^2 over inside pairs; statistics over valid pairs (same group, not excluded).
#pragma once
#include <cstdint>

namespace sc {

enum PairMetric : int { kAngle = 0, kL2 = 1 };

struct PairTile {
  int64_t rows = 0, cols = 0, ld = 0;  // S is rows x cols, row stride ld
  int64_t row0 = 0, col0 = 0;          // global index of the tile's first row (query space) / column (key space)
  int metric = kAngle;
  double r0 = 1, k = 1, r_count = 0, scale = 0.999999;
  bool exclude_self = false;
  int64_t query_offset = 0;  // pair (i, j) is "self" when j == i + query_offset
  bool symmetric = false;    // also accumulate the column-side statistics (keys are the queries)
  bool same_rows = false;    // the pair (i, i + query_offset) is a row with itself: cos 1, l2 distance 0, exactly
};

// Per-row accumulators, indexed by global row (or column) index. Any pointer may be shared by rows and columns.
struct PairAcc {
  double* energy = nullptr;
  double* dist_sum = nullptr;
  double* coef_sum = nullptr;  // angle: sum coef * c; l2: sum coef
  float* dist_min = nullptr;
  float* dist_max = nullptr;
  int64_t* valid = nullptr;
  int64_t* within = nullptr;  // pairs with d < r_count
};

#define SC_DECLARE_PAIRWISE_CPU(ns)                                                                          \
  namespace ns {                                                                                             \
  /* Returns the number of pairs inside the cutoff (non-zero coefficients). */                                \
  int64_t pairwise_epilogue_cpu(float* S, const PairTile& t, const float* q_sq, const float* k_sq,           \
                                const int64_t* q_group, const int64_t* k_group, const PairAcc& rows,         \
                                const PairAcc& cols, int threads);                                           \
  /* F_rows[i] += sum_j A[i][j] K[j];  F_cols[j] += sum_i A[i][j] Q[i] (if F_cols). Sparse A. */              \
  void pairwise_sparse_accumulate_cpu(const float* A, int64_t rows, int64_t cols, int64_t ld, const float* K, \
                                      const float* Q, int64_t dim, float* F_rows, float* F_cols, int threads);\
  }
SC_DECLARE_PAIRWISE_CPU(generic)
SC_DECLARE_PAIRWISE_CPU(avx2)
#undef SC_DECLARE_PAIRWISE_CPU

int64_t pairwise_epilogue_cuda(float* S, const PairTile& t, const float* q_sq, const float* k_sq,
                               const int64_t* q_group, const int64_t* k_group, const PairAcc& rows,
                               const PairAcc& cols, int device, std::uintptr_t stream);

}  // namespace sc
