"""Differentiable resampling of image batches: axis-aligned (separable) and general affine warps.

Both treat pixels as samples at integer coordinates and the outside of the image as zero (the border of
``cv2.warpAffine(..., borderValue=0)``). When shrinking, ``antialias=True`` widens the interpolation kernel by
the shrink factor (separable path) or averages a grid of sub-pixel samples over each output pixel (affine
path), so detail finer than the output grid is averaged away instead of aliasing.
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F

KERNELS = ("cubic", "linear")
MAX_SUPERSAMPLING = 16  # affine path: at most 16x16 samples per output pixel (shrinking by up to 16x)


def _kernel(x: torch.Tensor, kind: str) -> torch.Tensor:
    ax = x.abs()
    if kind == "linear":
        return (1 - ax).clamp(min=0)
    # Keys cubic convolution with a = -0.5 (the antialiased bicubic of PIL and torch).
    a = -0.5
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def resample_weights(
    n_out: int, n_in: int, step: float, start: float, kernel: str = "cubic", antialias: bool = True
) -> torch.Tensor:
    """[n_out, n_in] float64 matrix whose row u interpolates the input at coordinate ``start + step * u``.

    ``step`` is input pixels per output pixel; above 1 (shrinking) with ``antialias`` the kernel is stretched by
    ``step``. Rows are normalised over all integer taps, including those outside [0, n_in), which then count
    as zero pixels.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if n_out <= 0 or n_in <= 0:
        raise ValueError(f"sizes must be positive, got n_out={n_out}, n_in={n_in}")
    stretch = step if antialias and step > 1 else 1.0
    radius = (2.0 if kernel == "cubic" else 1.0) * stretch
    centres = start + step * torch.arange(n_out, dtype=torch.float64)
    # Every tap any row can reach, including those outside the image, so each row can be normalised.
    lo = min(0, math.floor(centres.min().item() - radius) - 1)
    hi = max(n_in, math.ceil(centres.max().item() + radius) + 2)
    taps = torch.arange(lo, hi, dtype=torch.float64)
    w = _kernel((taps[None, :] - centres[:, None]) / stretch, kernel)
    total = w.sum(dim=1, keepdim=True)
    w = w / torch.where(total == 0, torch.ones_like(total), total)
    return w[:, -lo : -lo + n_in].contiguous()


def resample_axis_aligned(
    images: torch.Tensor,
    out_size: Tuple[int, int],
    step: Tuple[float, float],
    start: Tuple[float, float],
    kernel: str = "cubic",
    antialias: bool = True,
) -> torch.Tensor:
    """Resample [N, C, H, W] images on the grid x = start_x + step_x * u, y = start_y + step_y * v.

    ``out_size`` is (width, height). Separable: two small matrix products, differentiable in ``images``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {list(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected floating-point images, got {images.dtype}")
    h, w = images.shape[-2:]
    wx = resample_weights(out_size[0], w, step[0], start[0], kernel, antialias)
    wy = resample_weights(out_size[1], h, step[1], start[1], kernel, antialias)
    wx = wx.to(device=images.device, dtype=images.dtype)
    wy = wy.to(device=images.device, dtype=images.dtype)
    return torch.matmul(wy, torch.matmul(images, wx.t()))


def invert_affine(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of [..., 2, 3] affine maps (as 2x3 matrices)."""
    a, t = matrices[..., :2], matrices[..., 2:]
    inv = torch.linalg.inv(a)
    return torch.cat([inv, -inv @ t], dim=-1)


def warp_affine(
    images: torch.Tensor, matrices: torch.Tensor, out_size: Tuple[int, int], antialias: bool = True
) -> torch.Tensor:
    """Warp each image by its own affine map, bilinear, zero outside: ``cv2.warpAffine`` per batch element.

    ``matrices`` [N, 2, 3] map source pixel coordinates to output pixel coordinates (cv2's convention);
    ``out_size`` is (width, height). Differentiable in ``images`` and ``matrices``. With ``antialias`` and a
    map that shrinks by up to k, each output pixel averages k x k bilinear samples spread over its footprint.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {list(images.shape)}")
    n, _, h, w = images.shape
    if matrices.shape != (n, 2, 3):
        raise ValueError(f"expected matrices [{n}, 2, 3] (one per image), got {list(matrices.shape)}")
    out_w, out_h = out_size
    opts = {"dtype": images.dtype, "device": images.device}
    inv = invert_affine(matrices.to(**opts))
    # Input pixels per output pixel, per image. Only images that shrink get the footprint average; the batch
    # shares the densest sampling any of them needs.
    shrink = inv[:, :, :2].det().abs().sqrt()
    spread = (shrink > 1 + 1e-6).to(images.dtype) if antialias else torch.zeros_like(shrink)
    k = min(MAX_SUPERSAMPLING, max(1, math.ceil(shrink.max().item() - 1e-6))) if bool(spread.any()) else 1
    offsets = (torch.arange(k, **opts) + 0.5) / k - 0.5
    rows, cols = torch.arange(out_h, **opts), torch.arange(out_w, **opts)
    vv, uu = torch.meshgrid(rows.repeat_interleave(k), cols.repeat_interleave(k), indexing="ij")
    dvv, duu = torch.meshgrid(offsets.repeat(out_h), offsets.repeat(out_w), indexing="ij")
    centres = torch.stack([uu, vv], dim=-1)  # [Hk, Wk, 2] output pixel centres, each repeated k x k times
    deltas = torch.stack([duu, dvv], dim=-1)  # [Hk, Wk, 2] sub-pixel offsets within the output pixel
    lin, t = inv[:, :, :2], inv[:, :, 2]
    points = centres + spread[:, None, None, None] * deltas  # [N, Hk, Wk, 2]
    src = torch.einsum("nij,nhwj->nhwi", lin, points) + t[:, None, None, :]  # source pixel coordinates
    scale = torch.tensor([w, h], dtype=images.dtype, device=images.device)
    grid = (2 * src + 1) / scale - 1  # pixel centres -> grid_sample's align_corners=False coordinates
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(out, k) if k > 1 else out
