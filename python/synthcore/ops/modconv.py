"""modconv: StyleGAN2's modulated convolution with its epilogue, and conv2d_resample.

Semantics follow the official StyleGAN2-ADA layers (../shared/testdata/stylegan2/README.md sections 7.3-7.5):

- ``conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter)``: a convolution combined with
  2x FIR up/downsampling. Defined as: upsample by zero insertion and filter (gain up^2), "valid" convolution
  (cross-correlation when ``flip_weight``, else true convolution), then filter and keep every down-th sample;
  ``padding`` is in upsampled coordinates.
- ``modconv``: per sample n, ``w_n[o, i] = weight[o, i] * styles[n, i]``; with ``demodulate``,
  ``d[n, o] = rsqrt(sum_{i,ky,kx} w_n[o, i]^2 + 1e-8)`` scales output channel o; conv2d_resample; ``+ noise``;
  then ``bias_act(bias, act, alpha, gain, clamp)``. With float16 input and ``demodulate``, weight and styles are
  first normalised by their maxima (a no-op mathematically, it keeps float16 in range).

Implementations:
- ``modconv_reference(strategy="grouped")``: per-sample weights and one grouped convolution (the official
  "fused" path); ``strategy="scaled"``: scale activations by the styles, one shared convolution, scale the
  output by ``d`` (the official non-fused path). Both use the reference FIR and bias_act, plain torch only.
- native: never builds per-sample weights. ``d`` comes from ``styles^2 @ (sum_k weight^2)^T`` (an [N, I] x [I, O]
  product instead of an [N, O, I, k, k] tensor); the style scaling has a native backward that produces the input
  and style gradients in one pass; the convolution is torch's (oneDNN / cuDNN) on the shared weight, up-convolutions
  as a stride-2 transposed convolution followed by the native FIR, down-convolutions as the native FIR followed by a
  stride-2 convolution; and noise, ``d``, bias, activation, gain and clamp are one native epilogue pass whose
  backward is one pass too (recomputing the pre-activation from the saved convolution output).
  On CPU a channels_last input stays channels_last through every step (the kernels have channels-last
  variants; oneDNN's convolutions run up to 2x faster in that layout at 64-128 channels); elsewhere, and for
  any other layout, the steps run contiguous NCHW.
"""

import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from synthcore import _native
from synthcore.ops import _backend
from synthcore.ops.bias_act import ACTIVATIONS, bias_act_reference
from synthcore.ops.upfirdn2d import _filter_size, _parse_padding, upfirdn2d

IntOrList = Union[int, Sequence[int]]

__all__ = ["conv2d_resample", "conv2d_resample_reference", "modconv", "modconv_reference", "demod_coefficients"]

DEMOD_EPS = 1e-8


# --- conv2d_resample ---------------------------------------------------------------------------------------


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
    """The user's padding plus what keeps the filter centred (the official convention)."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = pad
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return [px0, px1, py0, py1]


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


# --- modulated convolution: shared pieces ------------------------------------------------------------------


def _fp16_prenormalise(weight: torch.Tensor, styles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The official float16 safeguard: scale the weight per output channel and the styles per sample by their
    maxima. Demodulation cancels both scales (up to the 1e-8), so only the range changes."""
    i, kh, kw = weight.shape[1:]
    weight = weight * (1 / math.sqrt(i * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
    styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    return weight, styles


def demod_coefficients(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``d[n, o] = rsqrt(sum_{i,k} (weight[o, i, k] * styles[n, i])^2 + 1e-8)`` as an [N, I] x [I, O] product:
    ``sum_k weight^2`` is per (o, i), so the per-sample weights never exist. Computed in float32 (or float64)."""
    acc = torch.float64 if weight.dtype == torch.float64 else torch.float32
    wsq = _frozen_derived(weight, "demod-sums", lambda w: w.to(acc).square().sum([2, 3]))  # [O, I]
    return (styles.to(acc).square() @ wsq.t() + DEMOD_EPS).rsqrt()


def _noise_for(noise: Optional[torch.Tensor], y_shape: Sequence[int]) -> Optional[torch.Tensor]:
    if noise is None:
        return None
    n, _, h, w = y_shape
    if list(noise.shape) not in ([h, w], [1, h, w], [n, 1, h, w], [1, 1, h, w]):
        raise ValueError(
            f"modconv: noise has shape {list(noise.shape)}; for an output of shape {list(y_shape)} it must be "
            f"[{h}, {w}], [1, 1, {h}, {w}] or [{n}, 1, {h}, {w}]"
        )
    return noise


def _check_modconv_args(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    up: int,
    down: int,
    pad: List[int],
    resample_filter: Optional[torch.Tensor],
    act: str,
) -> Tuple[int, int]:
    op = "modconv"
    _check_conv_args(op, x, weight, resample_filter, up, down, 1)
    _backend.require_tensor(op, "styles", styles, (2,))
    _backend.require_same_device(op, "styles", styles, "x", x)
    if styles.shape != (x.shape[0], x.shape[1]):
        raise ValueError(f"modconv: styles must be [N, I] = {[x.shape[0], x.shape[1]]}, got {list(styles.shape)}")
    if act not in ACTIVATIONS:
        raise ValueError(f"modconv: unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
    if bias is not None:
        _backend.require_tensor(op, "bias", bias, (1,))
        _backend.require_same_device(op, "bias", bias, "x", x)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"modconv: bias has {bias.shape[0]} entries but weight has {weight.shape[0]} outputs")
    if noise is not None:
        _backend.require_tensor(op, "noise", noise)
        _backend.require_same_device(op, "noise", noise, "x", x)
    oh, ow = _output_hw((x.shape[2], x.shape[3]), (weight.shape[2], weight.shape[3]), resample_filter, up, down, pad)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"modconv: input {list(x.shape[2:])} with kernel {list(weight.shape[2:])}, padding {pad}, up={up}, "
            f"down={down} gives an empty output"
        )
    _noise_for(noise, (x.shape[0], weight.shape[0], oh, ow))
    return oh, ow


# --- reference ---------------------------------------------------------------------------------------------


def modconv_reference(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrList = 0,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    strategy: str = "scaled",
) -> torch.Tensor:
    """Plain-torch modulated convolution + epilogue, by either of the official strategies.

    ``strategy="grouped"`` builds the per-sample weights ``[N, O, I, k, k]`` and runs one grouped convolution;
    ``"scaled"`` scales the activations by the styles, convolves with the shared weight and scales the output
    by the demodulation coefficients (computed, as the official code does, from the per-sample weights).
    """
    pad = _parse_padding(padding)
    _check_modconv_args(x, weight, styles, noise, bias, up, down, pad, resample_filter, act)
    if strategy not in ("grouped", "scaled"):
        raise ValueError(f"modconv: strategy must be 'grouped' or 'scaled', got {strategy!r}")
    n, i = styles.shape
    o = weight.shape[0]
    if x.dtype == torch.float16 and demodulate:
        weight, styles = _fp16_prenormalise(weight, styles)
    wn = weight[None] * styles.reshape(n, 1, i, 1, 1)  # [N, O, I, kh, kw]
    d = (wn.square().sum([2, 3, 4]) + DEMOD_EPS).rsqrt() if demodulate else None  # [N, O]
    if strategy == "grouped":
        if d is not None:
            wn = wn * d.reshape(n, o, 1, 1, 1)
        wn = wn.reshape(n * o, i, *weight.shape[2:]).to(x.dtype)
        y = _conv2d_resample(
            x.reshape(1, n * i, *x.shape[2:]), wn, resample_filter, up, down, pad, n, flip_weight, False, "reference"
        )
        y = y.reshape(n, o, *y.shape[2:])
        if noise is not None:
            y = y + noise.to(y.dtype)
    else:
        xs = x * styles.to(x.dtype).reshape(n, i, 1, 1)
        y = _conv2d_resample(xs, weight.to(x.dtype), resample_filter, up, down, pad, 1, flip_weight, False, "reference")
        if d is not None:
            y = y * d.to(y.dtype).reshape(n, o, 1, 1)
        if noise is not None:
            y = y + noise.to(y.dtype)
    return bias_act_reference(y, bias, 1, act, alpha, gain, clamp)


# --- public API --------------------------------------------------------------------------------------------


def modconv(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrList = 0,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Modulated convolution with fused epilogue (StyleGAN2's ``modulated_conv2d`` followed by ``bias_act``).

    Args:
        x: [N, I, H, W] input.
        weight: [O, I, kh, kw] shared weight.
        styles: [N, I] per-sample input-channel scales.
        noise: added after demodulation, before the bias: [H', W'], [1, 1, H', W'] or [N, 1, H', W'] for an
            [N, O, H', W'] output (already multiplied by its strength), or None.
        bias: [O] or None.
        up, down: 1 or 2 (with ``resample_filter``); padding as in :func:`conv2d_resample`.
        demodulate: normalise each (sample, output channel) weight to unit norm.
        flip_weight: cross-correlation (True) or true convolution (False; StyleGAN2 uses it for up=2).
        act, alpha, gain, clamp: the epilogue, as :func:`synthcore.ops.bias_act` (gain None: the activation's
            default, e.g. sqrt(2) for lrelu; clamp None: none).
        impl: "native", "reference" (the "scaled" strategy of :func:`modconv_reference`) or None.

    Returns:
        [N, O, H', W'] in x's dtype. Differentiable with respect to x, weight, styles, noise and bias.
    """
    _backend.require_tensor("modconv", "x", x, (4,))
    if _backend.choose_impl("modconv", impl, x) == "reference":
        return modconv_reference(
            x, weight, styles, noise, bias, up, down, padding, resample_filter, demodulate, flip_weight,
            act, alpha, gain, clamp, strategy="scaled",
        )  # fmt: skip
    pad = _parse_padding(padding)
    _check_modconv_args(x, weight, styles, noise, bias, up, down, pad, resample_filter, act)
    return _modconv_native(
        x, weight, styles, noise, bias, up, down, pad, resample_filter, demodulate, flip_weight, act, alpha, gain, clamp
    )


# --- native custom ops -------------------------------------------------------------------------------------
# Two fused elementwise halves around torch's convolution:
#   modconv_scale:     xs = x * s[n, c]; backward gives gx and gs in one native pass.
#   modconv_epilogue:  y = clamp(gain * act(d[n, c] * t + noise + bias[c])); backward recomputes the
#                      pre-activation from the saved t and gives gt = gz * d, sum(gz * t) and sum(gz) per plane
#                      in one native pass. Without autograd the epilogue runs in place on t.


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _opt(t: Optional[torch.Tensor]):
    return None if t is None else _backend.to_native(t)


@torch.library.custom_op("synthcore::modconv_scale", mutates_args=())
def _scale_op(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return x * s.to(x.dtype)[:, :, None, None]


@_scale_op.register_fake
def _(x, s):
    return torch.empty_like(x)


def _dense(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` in the dense layout the native kernels run ``like`` in (channels_last on CPU, else NCHW)."""
    return t.contiguous(memory_format=_backend.activation_format(like))


@torch.library.custom_op("synthcore::modconv_scale_grad", mutates_args=())
def _scale_grad_op(g: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    x = _dense(x, x)
    g = _dense(g, x)
    gx = torch.empty_like(x)
    gs = torch.empty(s.shape, dtype=_acc_dtype(x.dtype), device=x.device)
    _native.native_module().modconv_scale_grad(
        _backend.to_native(g), _backend.to_native(x), _backend.to_native(s.to(gs.dtype).contiguous()),
        _backend.to_native(gx), _backend.to_native(gs), _backend.num_threads(), _backend.cuda_stream(x),
    )  # fmt: skip
    return gx, gs


@_scale_grad_op.register_fake
def _(g, x, s):
    gx = torch.empty_like(x, memory_format=_backend.activation_format(x))
    return gx, s.new_empty(s.shape, dtype=_acc_dtype(x.dtype))


def _scale_setup(ctx, inputs, output):
    x, s = inputs
    ctx.save_for_backward(x, s)


def _scale_backward(ctx, g):
    x, s = ctx.saved_tensors
    if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
        return None, None
    gx, gs = _scale_grad_op(g, x, s)
    return (gx if ctx.needs_input_grad[0] else None), (gs.to(s.dtype) if ctx.needs_input_grad[1] else None)


_scale_op.register_autograd(_scale_backward, setup_context=_scale_setup)


def _run_epilogue(t, d, noise, bias, out, act, alpha, gain, clamp):
    _native.native_module().modconv_epilogue(
        _backend.to_native(t), _opt(d), _opt(noise), _opt(bias), _backend.to_native(out), act, alpha, gain, clamp,
        _backend.num_threads(), _backend.cuda_stream(t),
    )  # fmt: skip


@torch.library.custom_op("synthcore::modconv_epilogue", mutates_args=())
def _epilogue_op(
    t: torch.Tensor,
    d: Optional[torch.Tensor],
    noise: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    act: int,
    alpha: float,
    gain: float,
    clamp: float,
) -> torch.Tensor:
    out = torch.empty_like(t)
    _run_epilogue(t, d, noise, bias, out, act, alpha, gain, clamp)
    return out


@_epilogue_op.register_fake
def _(t, d, noise, bias, act, alpha, gain, clamp):
    return torch.empty_like(t)


@torch.library.custom_op("synthcore::modconv_epilogue_", mutates_args=("t",))
def _epilogue_inplace_op(
    t: torch.Tensor,
    d: Optional[torch.Tensor],
    noise: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    act: int,
    alpha: float,
    gain: float,
    clamp: float,
) -> None:
    _run_epilogue(t, d, noise, bias, t, act, alpha, gain, clamp)


@_epilogue_inplace_op.register_fake
def _(t, d, noise, bias, act, alpha, gain, clamp):
    return None


@torch.library.custom_op("synthcore::modconv_epilogue_grad", mutates_args=())
def _epilogue_grad_op(
    gy: torch.Tensor,
    t: torch.Tensor,
    d: Optional[torch.Tensor],
    noise: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    act: int,
    alpha: float,
    gain: float,
    clamp: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gy = _dense(gy, t)
    gt = torch.empty_like(t)
    gd = torch.empty(t.shape[:2], dtype=_acc_dtype(t.dtype), device=t.device)
    gsum = torch.empty_like(gd)
    _native.native_module().modconv_epilogue_grad(
        _backend.to_native(gy), _backend.to_native(t), _opt(d), _opt(noise), _opt(bias), _backend.to_native(gt),
        _backend.to_native(gd), _backend.to_native(gsum), act, alpha, gain, clamp, _backend.num_threads(),
        _backend.cuda_stream(t),
    )  # fmt: skip
    return gt, gd, gsum


@_epilogue_grad_op.register_fake
def _(gy, t, d, noise, bias, act, alpha, gain, clamp):
    gd = t.new_empty(t.shape[:2], dtype=_acc_dtype(t.dtype))
    return torch.empty_like(t), gd, torch.empty_like(gd)


def _epilogue_setup(ctx, inputs, output):
    t, d, noise, bias, act, alpha, gain, clamp = inputs
    ctx.save_for_backward(t, d, noise, bias)
    ctx.args = (act, alpha, gain, clamp)


def _epilogue_backward(ctx, gy):
    t, d, noise, bias = ctx.saved_tensors
    gt, gd, gsum = _epilogue_grad_op(gy, t, d, noise, bias, *ctx.args)
    need_t, need_d, need_noise, need_bias = ctx.needs_input_grad[:4]
    g_noise = None
    if need_noise:
        gz = gt if d is None else gt / d.to(gt.dtype)[:, :, None, None]  # undo the d factor: noise enters before it
        g_noise = gz.sum(1).reshape(t.shape[0], -1)
        if noise.shape[0] == 1:
            g_noise = g_noise.sum(0, keepdim=True)
        g_noise = g_noise.to(noise.dtype)
    return (
        gt if need_t else None,
        gd.to(d.dtype) if need_d else None,
        g_noise,
        gsum.sum(0).to(bias.dtype) if need_bias else None,
        None, None, None, None,
    )  # fmt: skip


_epilogue_op.register_autograd(_epilogue_backward, setup_context=_epilogue_setup)


class _WeightTimesRowsT(torch.autograd.Function):
    """``we @ xm^T`` ([N, O, I] x [N, HW, I] -> [N, O, HW]) with each backward product in its fast orientation:
    the gradient of ``xm`` comes out [N, HW, I] (channels_last, no transposing copy of a large activation) and
    that of ``we`` as ``g @ xm`` (the long HW reduction over contiguous rows)."""

    @staticmethod
    def forward(ctx, we: torch.Tensor, xm: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(we, xm)
        return torch.bmm(we, xm.transpose(1, 2))

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        we, xm = ctx.saved_tensors
        g_we = torch.bmm(g, xm) if ctx.needs_input_grad[0] else None
        g_xm = torch.bmm(g.transpose(1, 2), we) if ctx.needs_input_grad[1] else None
        return g_we, g_xm


def _modconv_native(x, weight, styles, noise, bias, up, down, pad, f, demodulate, flip_weight, act, alpha, gain, clamp):
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    clamp = -1.0 if clamp is None else float(clamp)
    if not (math.isfinite(alpha) and math.isfinite(gain)):
        raise ValueError(f"modconv: alpha and gain must be finite, got alpha={alpha}, gain={gain}")
    if math.isnan(clamp):
        raise ValueError("modconv: clamp must not be NaN")
    if x.dtype == torch.float16 and demodulate:
        weight, styles = _fp16_prenormalise(weight, styles)
    need_grad = torch.is_grad_enabled() and any(
        v is not None and v.requires_grad for v in (x, weight, styles, noise, bias)
    )
    acc = _acc_dtype(x.dtype)
    d = demod_coefficients(weight, styles).to(acc) if demodulate else None  # acc: x's, whatever the weight's
    s = styles.to(acc)
    o, i, kh, kw = weight.shape
    if kh == kw == 1 and up == down == 1 and not any(pad) and o * 8 <= x.shape[2] * x.shape[3]:
        # A 1x1 layer with few outputs (ToRGB: 3): the modulated weight [N, O, I] is far smaller than the
        # activation, so scaling it costs nothing and saves the pass over x; one batched product per sample.
        we = (weight[:, :, 0, 0].to(acc)[None] * s[:, None, :]).to(x.dtype)
        if _backend.activation_format(x) == torch.channels_last:
            xm = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, i)  # channels_last x is an [N, HW, I] matrix
            t = _WeightTimesRowsT.apply(we, xm).reshape(x.shape[0], o, *x.shape[2:])
        else:
            t = torch.bmm(we, x.reshape(x.shape[0], i, -1)).reshape(x.shape[0], o, *x.shape[2:])
    elif not need_grad and x.shape[0] == 1 and o * kh * kw < x.shape[2] * x.shape[3]:
        # One sample, no autograd, weight smaller than the activation: fold styles and d into a weight-sized
        # temporary (the shared weight's size, not a batch of them) and skip the pass over x.
        we = weight.to(acc) * s[0][None, :, None, None]
        if d is not None:
            we = we * d[0][:, None, None, None]
            d = None
        t = _conv2d_resample(x, we.to(x.dtype), f, up, down, pad, 1, flip_weight, False, "native")
    else:
        xs = _scale_op(_dense(x, x), s) if need_grad else x * s.to(x.dtype)[:, :, None, None]
        t = _conv2d_resample(xs, weight.to(x.dtype), f, up, down, pad, 1, flip_weight, False, "native")
    t = _dense(t, t)
    n, _, h, w = t.shape
    nz = None
    if noise is not None:
        nz = noise.to(x.dtype).reshape(-1, h * w)
        nz = nz.contiguous()
    b = None if bias is None else bias.to(x.dtype).contiguous()
    if need_grad:
        return _epilogue_op(t, d, nz, b, spec.code, alpha, gain, clamp)
    _epilogue_inplace_op(t, d, nz, b, spec.code, alpha, gain, clamp)
    return t
