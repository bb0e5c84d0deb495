#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

namespace sc {

// y = upfirdn2d(x, f): x [N,C,H,W], f [fh,fw] or [taps] (separable), y preallocated [N,C,outH,outW] in x's
// layout: contiguous (NCHW) or, on CPU, channels_last (NHWC).
// Scalars arrive as 64-bit integers so that any Python int in that range reaches the shared checks
// (common/scalar_checks.h) and gets a ValueError naming it.
void upfirdn2d(const pybind11::object& x, const pybind11::object& f, const pybind11::object& y, int64_t up_x,
               int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
               int64_t pad_y1, bool flip, double gain, int64_t threads, std::uintptr_t stream);

}  // namespace sc
