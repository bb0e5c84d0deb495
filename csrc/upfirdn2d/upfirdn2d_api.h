#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

namespace sc {

// y = upfirdn2d(x, f): x [N,C,H,W], f [fh,fw] or [taps] (separable), y preallocated [N,C,outH,outW] in x's
// layout: contiguous (NCHW) or, on CPU, channels_last (NHWC).
void upfirdn2d(const pybind11::object& x, const pybind11::object& f, const pybind11::object& y, int up_x,
               int up_y, int down_x, int down_y, int pad_x0, int pad_x1, int pad_y0, int pad_y1, bool flip,
               double gain, int threads, std::uintptr_t stream);

}  // namespace sc
