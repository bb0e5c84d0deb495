"""upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample; and the resampling wrappers.

Semantics follow the StyleGAN2 op (see ../shared/testdata/stylegan2/README.md section 7.2):
``padding`` is ``[px0, px1, py0, py1]`` (x first, negative values crop); the filter is applied as a true
convolution unless ``flip_filter``; a 2-D filter is scaled by ``gain``, a 1-D (separable) filter by
``sqrt(gain)`` on each of its two passes.
"""

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from synthcore import _native
from synthcore.ops import _backend

IntOrPair = Union[int, Sequence[int]]

__all__ = [
    "centring_padding",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_reference",
    "upsample2d",
    "downsample2d",
    "filter2d",
]


def _pair(name: str, v: IntOrPair) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    v = [int(e) for e in v]
    if len(v) != 2:
        raise ValueError(f"upfirdn2d: {name} must be an int or [x, y], got {v}")
    return v[0], v[1]


def _parse_factors(name: str, v: IntOrPair) -> Tuple[int, int]:
    fx, fy = _pair(name, v)
    if fx < 1 or fy < 1:
        raise ValueError(f"upfirdn2d: {name} factors must be >= 1, got {[fx, fy]}")
    return fx, fy


def _parse_padding(padding: IntOrPair) -> List[int]:
    if isinstance(padding, int):
        return [padding] * 4
    p = [int(e) for e in padding]
    if len(p) == 2:
        return [p[0], p[0], p[1], p[1]]
    if len(p) == 4:
        return p
    raise ValueError(f"upfirdn2d: padding must be an int, [px, py] or [px0, px1, py0, py1], got {p}")


def _filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(fw, fh) of a filter; a 1-D filter of n taps stands for n x n."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


def centring_padding(f: Optional[torch.Tensor], up: IntOrPair = 1, down: IntOrPair = 1) -> List[int]:
    """The padding ``[px0, px1, py0, py1]`` that keeps filter ``f`` centred on one resampling step: upsampling by
    ``up`` or downsampling by ``down`` (at most one of them above 1), or plain filtering when both are 1. This is
    StyleGAN2's convention; every wrapper and ``conv2d_resample`` derive their padding from it."""
    ux, uy = _parse_factors("up", up)
    dx, dy = _parse_factors("down", down)
    if max(ux, uy) > 1 and max(dx, dy) > 1:
        raise ValueError("centring_padding: one step either upsamples or downsamples, not both")
    fw, fh = _filter_size(f)

    # Per axis with n taps: upsampling by u pads (n + u - 1) // 2 and (n - u) // 2, downsampling by d pads
    # (n - d + 1) // 2 and (n - d) // 2; with u = d = 1 both reduce to the centred n // 2 and (n - 1) // 2.
    def axis(n: int, u: int, d: int) -> List[int]:
        return [(n + u - d) // 2, (n - u - d + 1) // 2]

    return axis(fw, ux, dx) + axis(fh, uy, dy)


def setup_filter(
    f: Union[None, float, Sequence, torch.Tensor],
    device: Union[str, torch.device] = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: Optional[bool] = None,
) -> torch.Tensor:
    """Turn a list/array of taps into a float32 filter tensor for :func:`upfirdn2d`.

    None becomes [1]. A 1-D filter becomes the 2-D outer product unless it is separable (by default: 1-D
    with at least 8 taps). Then normalise to unit sum, optionally flip every axis, and scale by
    ``gain ** (ndim / 2)``.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: expected a non-empty 1-D or 2-D filter, got shape {list(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError("setup_filter: a 2-D filter cannot be separable")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _output_shape(
    x_shape: Sequence[int], fw: int, fh: int, up: Tuple[int, int], down: Tuple[int, int], pad: List[int]
) -> List[int]:
    n, c, h, w = x_shape
    span_w = w * up[0] + pad[0] + pad[1]
    span_h = h * up[1] + pad[2] + pad[3]
    if max(abs(p) for p in pad) > 2**30 or span_w > 2**30 or span_h > 2**30:
        raise ValueError(f"upfirdn2d: padding {pad} is too large (at most 2^30 samples per axis)")
    if span_w < fw or span_h < fh:
        raise ValueError(
            f"upfirdn2d: padding {pad} leaves a {span_h}x{span_w} padded image, smaller than the "
            f"{fh}x{fw} filter: the output would be empty"
        )
    return [n, c, (span_h - fh) // down[1] + 1, (span_w - fw) // down[0] + 1]


def upfirdn2d_reference(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Plain-torch definition of upfirdn2d: materialise each step, then filter with a depthwise conv."""
    if f is None:
        f = torch.ones([1, 1], dtype=x.dtype, device=x.device)
    ux, uy = _parse_factors("up", up)
    dx, dy = _parse_factors("down", down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    out_shape = _output_shape(x.shape, fw, fh, (ux, uy), (dx, dy), [px0, px1, py0, py1])
    n, c, h, w = x.shape
    if x.numel() == 0:
        return x.new_zeros(out_shape)

    # 1. Zero insertion: each sample followed by up-1 zeros along each axis.
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, ux - 1, 0, 0, 0, uy - 1])
    x = x.reshape(n, c, h * uy, w * ux)
    # 2. Zero padding, then cropping for negative pads.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # 3. FIR filter. conv2d correlates, so a true convolution needs the taps reversed.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, f[None, None, :, None].repeat(c, 1, 1, 1), groups=c)
    # 4. Keep every down-th sample.
    return x[:, :, ::dy, ::dx]


# --- native custom op --------------------------------------------------------------------------------------


@torch.library.custom_op("synthcore::upfirdn2d", mutates_args=())
def _upfirdn2d_op(
    x: torch.Tensor, f: torch.Tensor, up: List[int], down: List[int], padding: List[int], flip_filter: bool, gain: float
) -> torch.Tensor:
    fw, fh = _filter_size(f)
    fmt = _backend.activation_format(x)  # channels_last stays channels_last (CPU), anything else goes NCHW
    shape = _output_shape(x.shape, fw, fh, (up[0], up[1]), (down[0], down[1]), padding)
    y = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    f = f.contiguous()
    _native.native_module().upfirdn2d(
        _backend.to_native(x),
        _backend.to_native(f),
        _backend.to_native(y),
        up[0],
        up[1],
        down[0],
        down[1],
        padding[0],
        padding[1],
        padding[2],
        padding[3],
        flip_filter,
        gain,
        _backend.num_threads(),
        _backend.cuda_stream(x),
    )
    return y


@_upfirdn2d_op.register_fake
def _(x, f, up, down, padding, flip_filter, gain):
    fw, fh = _filter_size(f)
    shape = _output_shape(x.shape, fw, fh, (up[0], up[1]), (down[0], down[1]), padding)
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_backend.activation_format(x))


def _setup_context(ctx, inputs, output):
    x, f, up, down, padding, flip_filter, gain = inputs
    ctx.save_for_backward(f)
    ctx.args = (x.shape, up, down, padding, flip_filter, gain)


def _backward(ctx, dy):
    (f,) = ctx.saved_tensors
    x_shape, up, down, padding, flip_filter, gain = ctx.args
    fw, fh = _filter_size(f)
    # The adjoint of upfirdn2d is upfirdn2d with up and down swapped, the filter mirrored, and the padding
    # chosen so the result has x's size: left pad f-1-p0, right pad whatever makes the length come out.
    h, w = x_shape[2], x_shape[3]
    out_h, out_w = dy.shape[2], dy.shape[3]
    px0 = fw - padding[0] - 1
    px1 = w * up[0] - out_w * down[0] + padding[0] - up[0] + 1
    py0 = fh - padding[2] - 1
    py1 = h * up[1] - out_h * down[1] + padding[2] - up[1] + 1
    dx = _upfirdn2d_op(dy, f, list(down), list(up), [px0, px1, py0, py1], not flip_filter, gain)
    return dx, None, None, None, None, None, None


_upfirdn2d_op.register_autograd(_backward, setup_context=_setup_context)


# --- public API --------------------------------------------------------------------------------------------


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter and downsample a batch of images.

    Args:
        x: [N, C, H, W] floating-point images. The native CPU kernel keeps a channels_last ``x``
            channels_last (the output too); other layouts run as contiguous NCHW.
        f: filter, [fh, fw] (2-D) or [taps] (separable, applied along both axes), or None for identity;
            see :func:`setup_filter`. Gradients flow to ``x`` only; the filter is a constant.
        up, down: int or [x, y] integer factors.
        padding: int, [px, py] or [px0, px1, py0, py1] (negative crops), in upsampled coordinates.
        flip_filter: correlate instead of convolve.
        gain: overall scale of the filter.
        impl: "native", "reference", or None (native where built for x's device and dtype).
    """
    op = "upfirdn2d"
    _backend.require_tensor(op, "x", x, (4,))
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    _backend.require_tensor(op, "f", f, (1, 2))
    _backend.require_same_device(op, "f", f, "x", x)
    if f.numel() == 0:
        raise ValueError("upfirdn2d: the filter is empty")
    if not math.isfinite(float(gain)):
        raise ValueError(f"upfirdn2d: gain must be finite, got {gain}")
    ux, uy = _parse_factors("up", up)
    dx, dy = _parse_factors("down", down)
    pad = _parse_padding(padding)
    fw, fh = _filter_size(f)
    _output_shape(x.shape, fw, fh, (ux, uy), (dx, dy), pad)  # validates the geometry for both impls
    if _backend.choose_impl(op, impl, x) == "reference":
        return upfirdn2d_reference(x, f, [ux, uy], [dx, dy], pad, flip_filter, gain)
    f_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return _upfirdn2d_op(x, f.to(f_dtype), [ux, uy], [dx, dy], pad, bool(flip_filter), float(gain))


def upsample2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntOrPair = 2,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Upsample by ``up`` with filter ``f``; the output is ``up`` times the input size (plus ``padding``)."""
    ux, uy = _parse_factors("up", up)
    p = [a + b for a, b in zip(_parse_padding(padding), centring_padding(f, up=[ux, uy]))]
    return upfirdn2d(x, f, up=[ux, uy], padding=p, flip_filter=flip_filter, gain=gain * ux * uy, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    down: IntOrPair = 2,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Low-pass with ``f`` and keep every ``down``-th sample; the output is the input size / ``down``."""
    dx, dy = _parse_factors("down", down)
    p = [a + b for a, b in zip(_parse_padding(padding), centring_padding(f, down=[dx, dy]))]
    return upfirdn2d(x, f, down=[dx, dy], padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def filter2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Filter with ``f``, keeping the input size (plus ``padding``)."""
    p = [a + b for a, b in zip(_parse_padding(padding), centring_padding(f))]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
