"""conv2d_resample: a 2-D convolution combined with 2x FIR up/downsampling (StyleGAN2's ``conv2d_resample``).

Semantics follow the official op (../shared/testdata/stylegan2/README.md section 7.4): upsample by zero insertion
and filter (gain up^2), "valid" convolution (cross-correlation when ``flip_weight``, else true convolution), then
filter and keep every down-th sample; ``padding`` is in upsampled coordinates. The convolution is always torch's;
``impl`` chooses the implementation of the FIR steps. It is also the convolution inside the native modulated
convolution (:mod:`synthcore.ops.modconv`).
"""

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from synthcore.ops import _backend
from synthcore.ops.upfirdn2d import _filter_size, _parse_padding, centring_padding, upfirdn2d

IntOrList = Union[int, Sequence[int]]

__all__ = ["conv2d_resample", "conv2d_resample_reference"]


def _check_factor(op: str, name: str, v: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{op}: {name} must be an int >= 1, got {v!r}")
    return v


def _conv_weight(w: torch.Tensor, flip_weight: bool) -> torch.Tensor:
    """The weight for torch's cross-correlating conv2d: a true convolution is a correlation with the kernel
    rotated by 180 degrees."""
    return w if flip_weight else w.flip([2, 3])


def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """[O, I/g, kh, kw] -> [I, O/g, kh, kw], the layout conv_transpose2d takes."""
    o, ig, kh, kw = w.shape
    w = w.reshape(groups, o // groups, ig, kh, kw).transpose(1, 2)
    return w.reshape(groups * ig, o // groups, kh, kw)


def _frozen_derived(w: torch.Tensor, name: str, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``make(w)``, remembered on ``w`` while it is frozen and unchanged.

    A generator used for sampling recomputes the same weight-derived tensors (the per-(o, i) squared sums of
    demodulation, the transposed up-convolution weight) on every call; these are kept on the weight tensor,
    keyed by its storage, version counter, dtype and shape, and recomputed after any in-place change (and
    never kept for a weight that requires grad or has no version counter, as in inference mode).
    """
    if w.requires_grad or torch.compiler.is_compiling():  # a compiled graph keeps constants its own way
        return make(w)
    try:
        key = (w.data_ptr(), w._version, w.dtype, tuple(w.shape), tuple(w.stride()))
    except RuntimeError:  # inference tensors track no version
        return make(w)
    cache = w.__dict__.setdefault("_synthcore_derived", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = make(w)
    cache[name] = (key, value)
    return value


def _padded_conv2d(x: torch.Tensor, w: torch.Tensor, pad: List[int], stride: int, groups: int) -> torch.Tensor:
    """conv2d (cross-correlation) after padding [px0, px1, py0, py1] (negative crops)."""
    px0, px1, py0, py1 = pad
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, w, stride=stride, padding=(py0, px0), groups=groups)
    return F.conv2d(F.pad(x, [px0, px1, py0, py1]), w, stride=stride, groups=groups)


def _resample_padding(f: Optional[torch.Tensor], up: int, down: int, pad: List[int]) -> List[int]:
    """The user's padding plus what keeps the filter centred on each resampling step (the official convention)."""
    steps = ([centring_padding(f, up=up)] if up > 1 else []) + ([centring_padding(f, down=down)] if down > 1 else [])
    total = list(pad)
    for step in steps:
        total = [a + b for a, b in zip(total, step)]
    return total


def _output_hw(
    x_hw: Tuple[int, int], k_hw: Tuple[int, int], f: Optional[torch.Tensor], up: int, down: int, pad: List[int]
) -> Tuple[int, int]:
    """Output size of conv2d_resample, following its definition step by step."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _resample_padding(f, up, down, pad)
    h = x_hw[0] * up + py0 + py1 - (fh - 1 if up > 1 else 0) - (k_hw[0] - 1)
    w = x_hw[1] * up + px0 + px1 - (fw - 1 if up > 1 else 0) - (k_hw[1] - 1)
    if down > 1:
        h, w = (h - fh) // down + 1, (w - fw) // down + 1
    return h, w


def _conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor],
    up: int,
    down: int,
    pad: List[int],
    groups: int,
    flip_weight: bool,
    flip_filter: bool,
    fir_impl: Optional[str],
) -> torch.Tensor:
    """conv2d_resample through torch's convolutions; the FIR steps use ``upfirdn2d(impl=fir_impl)``.

    Linear shift-invariant steps commute, so the filter is moved to the cheaper side of the convolution:
    an up-convolution runs as a stride-``up`` transposed convolution on the small input followed by the filter
    (instead of a convolution over the zero-stuffed image), a down-convolution as the filter followed by a
    stride-``down`` convolution (so only the kept outputs are computed).
    """
    kh, kw = w.shape[2], w.shape[3]
    px0, px1, py0, py1 = _resample_padding(f, up, down, pad)

    if up == 1 and down == 1:
        return _padded_conv2d(x, _conv_weight(w, flip_weight), [px0, px1, py0, py1], 1, groups)
    if up > 1 and down == 1:
        # Zero insertion followed by a full true convolution with w~ is exactly a transposed convolution
        # (torch's conv_transpose2d convolves, so the weight is flipped for the correlating case). Its output
        # equals the zero-stuffed image padded by k-1 on each side and convolved; the remaining padding, the
        # filter and its gain up^2 are one upfirdn2d call.
        def transposed(w: torch.Tensor) -> torch.Tensor:
            return _transpose_weight(w.flip([2, 3]) if flip_weight else w, groups).contiguous()

        wt = _frozen_derived(w, f"transposed-{flip_weight}-{groups}", transposed) if fir_impl == "native" else (
            transposed(w)
        )  # fmt: skip
        t = F.conv_transpose2d(x, wt, stride=up, groups=groups)
        q = [px0 - (kw - 1), px1 + up - kw, py0 - (kh - 1), py1 + up - kh]
        return upfirdn2d(t, f, padding=q, gain=up * up, flip_filter=flip_filter, impl=fir_impl)
    if up == 1 and down > 1:
        wc = _conv_weight(w, flip_weight)
        if kh == 1 and kw == 1:
            # A 1x1 kernel commutes with the whole resampling: filter and subsample first, convolve 1/down^2 of it.
            t = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=fir_impl)
            return F.conv2d(t, wc, groups=groups)
        t = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=fir_impl)
        return F.conv2d(t, wc, stride=down, groups=groups)
    # Both: the plain definition.
    t = upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up, flip_filter=flip_filter, impl=fir_impl)
    t = F.conv2d(t, _conv_weight(w, flip_weight), groups=groups)
    return upfirdn2d(t, f, down=down, flip_filter=flip_filter, impl=fir_impl)


def _check_conv_args(
    op: str, x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor], up: int, down: int, groups: int
) -> None:
    _backend.require_tensor(op, "x", x, (4,))
    _backend.require_tensor(op, "weight", w, (4,))
    _backend.require_same_device(op, "weight", w, "x", x)
    _check_factor(op, "up", up)
    _check_factor(op, "down", down)
    _check_factor(op, "groups", groups)
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(
            f"{op}: x has {x.shape[1]} channels but weight {list(w.shape)} with groups={groups} expects "
            f"{w.shape[1] * groups}"
        )
    if w.shape[0] % groups:
        raise ValueError(f"{op}: weight has {w.shape[0]} output channels, not divisible by groups={groups}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError(f"{op}: up/down-sampling needs a resample filter f")
    if f is not None:
        _backend.require_tensor(op, "f", f, (1, 2))
        _backend.require_same_device(op, "f", f, "x", x)


def conv2d_resample_reference(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrList = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Plain-torch conv2d_resample (reference FIR)."""
    _check_conv_args("conv2d_resample", x, w, f, up, down, groups)
    return _conv2d_resample(x, w, f, up, down, _parse_padding(padding), groups, flip_weight, flip_filter, "reference")


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrList = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """2-D convolution with optional 2x FIR up/downsampling (StyleGAN2's ``conv2d_resample``).

    Args:
        x: [N, I, H, W] input.
        w: [O, I / groups, kh, kw] weight.
        f: resampling filter (see :func:`synthcore.ops.setup_filter`); required when ``up`` or ``down`` > 1.
        up, down: integer resampling factors.
        padding: int, [px, py] or [px0, px1, py0, py1], in upsampled coordinates (negative crops).
        groups: grouped convolution.
        flip_weight: True: cross-correlation (torch's conv2d); False: true convolution.
        flip_filter: correlate with the filter instead of convolving.
        impl: implementation of the FIR steps ("native", "reference" or None); the convolution is torch's.
    """
    op = "conv2d_resample"
    _check_conv_args(op, x, w, f, up, down, groups)
    fir_impl = _backend.choose_impl(op, impl, x) if (up > 1 or down > 1) else "reference"
    return _conv2d_resample(x, w, f, up, down, _parse_padding(padding), groups, flip_weight, flip_filter, fir_impl)
