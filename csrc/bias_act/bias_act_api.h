#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

namespace sc {

// out = clamp(gain * act(x + b)) (order 0) or m * d^order/dx^order of it (order 1, 2).
// b: [x.shape[dim]] or None; m: like x, or None (required for order > 0).
void bias_act(const pybind11::object& x, const pybind11::object& b, const pybind11::object& m,
              const pybind11::object& out, int64_t dim, int64_t act, double alpha, double gain, double clamp,
              int64_t order, int64_t threads, std::uintptr_t stream);

}  // namespace sc
