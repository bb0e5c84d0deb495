// upfirdn2d evaluated literally, every tap against every sample of the zero-inserted, padded image (zeros
// included). Only for filters with a NaN or infinite tap: IEEE arithmetic gives 0 * inf = NaN, so such a filter
// spreads NaN over every output, and the fast kernels, which never multiply the inserted zeros and split rank-one
// filters, would drop it. Matches the reference (materialise, convolve) exactly in that case. Slow, CPU only.
#pragma once
#include <cstdint>

#include "upfirdn2d/upfirdn2d.h"

namespace sc {

// x, y: dense [N, C, H, W] (NCHW) or [N, H, W, C] (channels_last, g.channels_last) arrays.
// Separable: taps_y [taps_h] and taps_x [taps_w], applied as the reference does (a horizontal pass over every row of
// the padded image, then a vertical one); otherwise taps_x holds the [taps_h, taps_w] 2-D taps. All taps are in
// correlation order with the gain folded in.
void upfirdn2d_dense_cpu(const float* x, const float* taps_y, const float* taps_x, float* y, const Upfirdn2dGeom& g);
void upfirdn2d_dense_cpu(const double* x, const double* taps_y, const double* taps_x, double* y,
                         const Upfirdn2dGeom& g);

}  // namespace sc
