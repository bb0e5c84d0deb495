#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

namespace sc {

// See pairwise.h. acc_rows / acc_cols: tuples (energy f64, dist_sum f64, coef_sum f64, dist_min f32, dist_max f32,
// valid i64, within i64), each 1-D over all query (key) rows. Returns the number of pairs inside the cutoff on
// CPU, -1 on CUDA (counting there would need a device synchronisation).
int64_t pairwise_epilogue(const pybind11::object& S, const pybind11::object& q_sq, const pybind11::object& k_sq,
                          const pybind11::object& q_group, const pybind11::object& k_group,
                          const pybind11::tuple& acc_rows, const pybind11::object& acc_cols, int64_t row0,
                          int64_t col0, int64_t metric, double r0, double k, double r_count, double scale,
                          bool exclude_self, int64_t query_offset, bool symmetric, bool same_rows, int64_t threads,
                          std::uintptr_t stream);

void pairwise_sparse_accumulate(const pybind11::object& A, const pybind11::object& K, const pybind11::object& Q,
                                const pybind11::object& F_rows, const pybind11::object& F_cols, int64_t threads);

}  // namespace sc
