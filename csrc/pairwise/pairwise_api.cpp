#include "pairwise/pairwise_api.h"

#include <array>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/cpu_features.h"
#include "common/scalar_checks.h"
#include "common/tensor_view.h"
#include "pairwise/pairwise.h"

namespace sc {
namespace {

using Holder = std::vector<std::unique_ptr<Borrowed>>;

const View& take(Holder& h, const py::object& o, const char* name) {
  h.push_back(std::make_unique<Borrowed>(o, name));
  return h.back()->view();
}

// A 1-D accumulator over `need` rows, of the given dtype, on S's device.
void* accumulator(Holder& h, const py::object& o, const char* name, DType dtype, int64_t need, const View& S) {
  const View& v = take(h, o, name);
  require_ndim(v, 1);
  require_same_device(S, v);
  require_contiguous(v);
  if (v.dtype != dtype) {
    throw py::type_error(v.name + ": expected " + dtype_name(dtype) + ", got " + dtype_name(v.dtype));
  }
  if (v.shape[0] < need) {
    throw py::value_error(v.name + ": has " + std::to_string(v.shape[0]) + " entries, needs " + std::to_string(need));
  }
  return v.data;
}

PairAcc accumulators(Holder& h, const py::tuple& t, const char* side, int64_t need, const View& S) {
  if (t.size() != 7) throw py::value_error(std::string(side) + ": expected 7 accumulator arrays");
  const std::string p(side);
  static const char* names[7] = {"energy", "dist_sum", "coef_sum", "dist_min", "dist_max", "valid", "within"};
  static const DType types[7] = {DType::f64, DType::f64, DType::f64, DType::f32, DType::f32, DType::i64,
                                 DType::i64};
  std::array<void*, 7> ptr{};
  for (int i = 0; i < 7; ++i) {
    const std::string name = p + "." + names[i];
    ptr[i] = accumulator(h, t[i], name.c_str(), types[i], need, S);
  }
  PairAcc a;
  a.energy = static_cast<double*>(ptr[0]);
  a.dist_sum = static_cast<double*>(ptr[1]);
  a.coef_sum = static_cast<double*>(ptr[2]);
  a.dist_min = static_cast<float*>(ptr[3]);
  a.dist_max = static_cast<float*>(ptr[4]);
  a.valid = static_cast<int64_t*>(ptr[5]);
  a.within = static_cast<int64_t*>(ptr[6]);
  return a;
}

}  // namespace

int64_t pairwise_epilogue(const py::object& S_obj, const py::object& q_sq_obj, const py::object& k_sq_obj,
                          const py::object& q_group_obj, const py::object& k_group_obj, const py::tuple& acc_rows,
                          const py::object& acc_cols, int64_t row0, int64_t col0, int64_t metric, double r0, double k,
                          double r_count, double scale, bool exclude_self, int64_t query_offset, bool symmetric,
                          bool same_rows, int64_t threads_arg, std::uintptr_t stream) {
  const int threads = require_threads(threads_arg);
  require_range("metric", metric, kAngle, kL2);
  require_finite_at_least("r0", r0, 0.0);
  require_finite_at_least("k", k, 0.0);
  require_finite_at_least("r_count", r_count, 0.0);
  require_finite_at_least("scale", scale, 0.0, /*strict=*/true);
  if (scale > 1.0) throw py::value_error("scale must be <= 1 (it keeps arccos finite), got " + std::to_string(scale));
  constexpr int64_t kMaxIndex = std::numeric_limits<int64_t>::max();
  require_range("row0", row0, 0, kMaxIndex);
  require_range("col0", col0, 0, kMaxIndex);
  require_range("query_offset", query_offset, 0, kMaxIndex);
  Holder h;
  const View& S = take(h, S_obj, "S");
  require_ndim(S, 2);
  if (S.dtype != DType::f32) throw py::type_error("S: the pairwise kernels take float32");
  if (S.ndim == 2 && S.strides[1] != 1) throw py::value_error("S: rows must be contiguous");
  if (S.shape[1] >= (int64_t(1) << 31)) throw py::value_error("S: tiles must have fewer than 2^31 columns");
  // Global row and column indices (and a row's own key, row + query_offset) must not wrap.
  const int64_t row_end = checked_add(row0, S.shape[0], "row0 + rows");
  const int64_t col_end = checked_add(col0, S.shape[1], "col0 + columns");
  checked_add(row_end, query_offset, "row0 + rows + query_offset");
  PairTile t;
  t.rows = S.shape[0];
  t.cols = S.shape[1];
  t.ld = S.strides[0];
  t.row0 = row0;
  t.col0 = col0;
  t.metric = int(metric);
  t.r0 = r0;
  t.k = k;
  t.r_count = r_count;
  t.scale = scale;
  t.exclude_self = exclude_self;
  t.query_offset = query_offset;
  t.symmetric = symmetric;
  t.same_rows = same_rows;

  const float* q_sq = nullptr;
  const float* k_sq = nullptr;
  if (metric == kL2) {
    if (q_sq_obj.is_none() || k_sq_obj.is_none()) throw py::value_error("l2 metric needs q_sq and k_sq");
    q_sq = static_cast<const float*>(accumulator(h, q_sq_obj, "q_sq", DType::f32, row_end, S));
    k_sq = static_cast<const float*>(accumulator(h, k_sq_obj, "k_sq", DType::f32, col_end, S));
  }
  const int64_t* q_group = nullptr;
  const int64_t* k_group = nullptr;
  if (!q_group_obj.is_none() || !k_group_obj.is_none()) {
    if (q_group_obj.is_none() || k_group_obj.is_none()) throw py::value_error("groups need both q_group and k_group");
    q_group = static_cast<const int64_t*>(accumulator(h, q_group_obj, "q_group", DType::i64, row_end, S));
    k_group = static_cast<const int64_t*>(accumulator(h, k_group_obj, "k_group", DType::i64, col_end, S));
  }
  const PairAcc rows = accumulators(h, acc_rows, "acc_rows", row_end, S);
  PairAcc cols;
  if (symmetric) {
    if (acc_cols.is_none()) throw py::value_error("symmetric tiles need acc_cols");
    cols = accumulators(h, py::reinterpret_borrow<py::tuple>(acc_cols), "acc_cols", col_end, S);
  }
  if (t.rows == 0 || t.cols == 0) return 0;

  if (S.device == Dev::cpu) {
    py::gil_scoped_release nogil;
    float* s = static_cast<float*>(S.data);
    if (active_cpu_isa() == CpuIsa::avx2)
      return avx2::pairwise_epilogue_cpu(s, t, q_sq, k_sq, q_group, k_group, rows, cols, threads);
    return generic::pairwise_epilogue_cpu(s, t, q_sq, k_sq, q_group, k_group, rows, cols, threads);
  }
#ifdef SYNTHCORE_WITH_CUDA
  py::gil_scoped_release nogil;
  return pairwise_epilogue_cuda(static_cast<float*>(S.data), t, q_sq, k_sq, q_group, k_group, rows, cols,
                                S.device_id, stream);
#else
  (void)stream;
  throw py::value_error("S is on " + S.device_str() + " but this build of synthcore has no CUDA kernels");
#endif
}

void pairwise_sparse_accumulate(const py::object& A_obj, const py::object& K_obj, const py::object& Q_obj,
                                const py::object& Fr_obj, const py::object& Fc_obj, int64_t threads_arg) {
  const int threads = require_threads(threads_arg);
  Holder h;
  const View& A = take(h, A_obj, "A");
  const View& K = take(h, K_obj, "K");
  const View& Q = take(h, Q_obj, "Q");
  const View& Fr = take(h, Fr_obj, "F_rows");
  require_ndim(A, 2);
  require_ndim(K, 2);
  require_ndim(Q, 2);
  require_ndim(Fr, 2);
  for (const View* v : {&A, &K, &Q, &Fr}) {
    if (v->dtype != DType::f32) throw py::type_error(v->name + ": the pairwise kernels take float32");
    if (v->device != Dev::cpu) throw py::value_error(v->name + ": sparse accumulation runs on the CPU only");
  }
  if (A.strides[1] != 1) throw py::value_error("A: rows must be contiguous");
  require_contiguous(K);
  require_contiguous(Q);
  require_contiguous(Fr);
  const int64_t rows = A.shape[0], cols = A.shape[1], dim = K.shape[1];
  require_dim(K, 0, cols, "columns of A");
  require_dim(Q, 0, rows, "rows of A");
  require_dim(Q, 1, dim, "feature dimension of K");
  require_dim(Fr, 0, rows, "rows of A");
  require_dim(Fr, 1, dim, "feature dimension of K");
  require_no_overlap(Fr, K);
  require_no_overlap(Fr, Q);
  float* fc = nullptr;
  if (!Fc_obj.is_none()) {
    const View& Fc = take(h, Fc_obj, "F_cols");
    require_ndim(Fc, 2);
    if (Fc.dtype != DType::f32 || Fc.device != Dev::cpu) throw py::type_error("F_cols: float32 CPU tensor expected");
    require_contiguous(Fc);
    require_dim(Fc, 0, cols, "columns of A");
    require_dim(Fc, 1, dim, "feature dimension of K");
    require_no_overlap(Fc, Fr);
    fc = static_cast<float*>(Fc.data);
  }
  py::gil_scoped_release nogil;
  auto a = static_cast<const float*>(A.data);
  auto kp = static_cast<const float*>(K.data);
  auto qp = static_cast<const float*>(Q.data);
  auto fr = static_cast<float*>(Fr.data);
  if (active_cpu_isa() == CpuIsa::avx2)
    avx2::pairwise_sparse_accumulate_cpu(a, rows, cols, A.strides[0], kp, qp, dim, fr, fc, threads);
  else
    generic::pairwise_sparse_accumulate_cpu(a, rows, cols, A.strides[0], kp, qp, dim, fr, fc, threads);
}

}  // namespace sc
