#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

namespace sc {

// out = w + dt/mu (F + k_l (w_avg - w)) + sqrt(dt)/mu eta xi; with noise_only, out = xi (w, F, w_avg ignored).
void langevin(const pybind11::object& w, const pybind11::object& F, const pybind11::object& w_avg,
              const pybind11::object& out, double dt, double mu, double k_l, double eta, uint64_t seed, int64_t step,
              int64_t row_offset, bool noise_only, int64_t threads, std::uintptr_t stream);

}  // namespace sc
