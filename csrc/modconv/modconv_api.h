#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

namespace sc {

// Activations (t, out, gy, gt, g, x, gx) are [N, C, H, W], contiguous (NCHW) or, on CPU, channels_last (NHWC);
// the activations of one call share a layout.
// out = clamp(gain * act(d * t + noise + bias)); out may be t itself (in place). t, out: [N, C, H, W];
// d: [N, C] (accumulation dtype) or None; noise: [1 or N, H*W] or None; bias: [C] or None.
void modconv_epilogue(const pybind11::object& t, const pybind11::object& d, const pybind11::object& noise,
                      const pybind11::object& bias, const pybind11::object& out, int64_t act, double alpha,
                      double gain, double clamp, int64_t threads, std::uintptr_t stream);

// Backward of the epilogue: gt = gz * d, gd[n, c] = sum gz * t, gsum[n, c] = sum gz, gz = gy * dout/dz.
void modconv_epilogue_grad(const pybind11::object& gy, const pybind11::object& t, const pybind11::object& d,
                           const pybind11::object& noise, const pybind11::object& bias, const pybind11::object& gt,
                           const pybind11::object& gd, const pybind11::object& gsum, int64_t act, double alpha,
                           double gain, double clamp, int64_t threads, std::uintptr_t stream);

// Backward of xs = x * s[:, :, None, None]: gx = g * s, gs[n, c] = sum g * x (either output may be None).
void modconv_scale_grad(const pybind11::object& g, const pybind11::object& x, const pybind11::object& s,
                        const pybind11::object& gx, const pybind11::object& gs, int64_t threads,
                        std::uintptr_t stream);

}  // namespace sc
