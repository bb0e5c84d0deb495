"""modconv: StyleGAN2's modulated convolution with its epilogue.

Semantics follow the official StyleGAN2-ADA layers (../shared/testdata/stylegan2/README.md sections 7.3-7.5):

- ``modconv``: per sample n, ``w_n[o, i] = weight[o, i] * styles[n, i]``; with ``demodulate``,
  ``d[n, o] = rsqrt(sum_{i,ky,kx} w_n[o, i]^2 + 1e-8)`` scales output channel o; ``conv2d_resample``
  (:mod:`synthcore.ops.conv2d_resample`); ``+ noise``;
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
from typing import List, Optional, Sequence, Tuple

import torch

from synthcore import _native
from synthcore.ops import _backend
from synthcore.ops.bias_act import _BY_CODE as _ACT_BY_CODE
from synthcore.ops.bias_act import _bias_act_grad_op, bias_act_reference, resolve_activation
from synthcore.ops.conv2d_resample import (
    IntOrList,
    _check_conv_args,
    _conv2d_resample,
    _frozen_derived,
    _output_hw,
    conv2d_resample,
    conv2d_resample_reference,
)
from synthcore.ops.upfirdn2d import _parse_padding

# conv2d_resample lives in its own module; it stays importable from here for existing callers.
__all__ = ["conv2d_resample", "conv2d_resample_reference", "modconv", "modconv_reference", "demod_coefficients"]

DEMOD_EPS = 1e-8


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
    resolve_activation(op, act, None, None, None)  # an unknown name is refused before anything runs
    _check_conv_args(op, x, weight, resample_filter, up, down, 1)
    _backend.require_tensor(op, "styles", styles, (2,))
    _backend.require_same_device(op, "styles", styles, "x", x)
    if styles.shape != (x.shape[0], x.shape[1]):
        raise ValueError(f"modconv: styles must be [N, I] = {[x.shape[0], x.shape[1]]}, got {list(styles.shape)}")
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


def _scale_grad_setup(ctx, inputs, output):
    g, x, s = inputs
    ctx.save_for_backward(g, x, s)


def _scale_grad_backward(ctx, ggx, ggs):
    """Double backward of the style scaling. ``gx = g * s`` and ``gs = sum_p g * x`` are bilinear, so each
    input's gradient pairs the incoming gradients with the other factor. Written with the two differentiable
    ops themselves, so every further order works as well."""
    g, x, s = ctx.saved_tensors
    need_g, need_x, need_s = ctx.needs_input_grad
    d_g = d_x = d_s = None
    if need_g:
        terms = ([] if ggx is None else [_scale_op(ggx, s)]) + ([] if ggs is None else [_scale_op(x, ggs)])
        d_g = sum(terms[1:], terms[0]) if terms else None
    if need_x and ggs is not None:
        d_x = _scale_op(g, ggs)
    if need_s and ggx is not None:
        d_s = _scale_grad_op(ggx, g, s)[1].to(s.dtype)
    return d_g, d_x, d_s


_scale_grad_op.register_autograd(_scale_grad_backward, setup_context=_scale_grad_setup)


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


def _epilogue_grad_setup(ctx, inputs, output):
    gy, t, d, noise, bias, act, alpha, gain, clamp = inputs
    ctx.save_for_backward(gy, t, d, noise, bias)
    ctx.args = (act, alpha, gain, clamp)


def _epilogue_grad_backward(ctx, ggt, ggd, ggsum):
    """Double backward of the epilogue (second derivatives, e.g. path-length regularisation).

    With ``z = d t + noise + bias`` and ``gz = gy * y'(z)`` the forward of this op is ``gt = gz d``,
    ``gd = sum_p gz t``, ``gsum = sum_p gz``. The gradient reaching ``gz`` is ``h = ggt d + ggd t + ggsum``;
    so ``d gy = h y'(z)``, and through ``z``, ``q = h gy y''(z)`` goes to t (times d), d (summed with t), noise
    and bias; the explicit factors give ``ggd gz`` to t and ``sum_p ggt gz`` to d. The activation derivatives
    are the native bias_act derivative op on z (one extra pass; second derivatives are rare enough not to
    deserve a fused kernel of their own)."""
    gy, t, d, noise, bias = ctx.saved_tensors
    act, alpha, gain, clamp = ctx.args
    need_gy, need_t, need_d, need_noise, need_bias = ctx.needs_input_grad[:5]
    n, c, hh, ww = t.shape

    def per_plane(v: torch.Tensor) -> torch.Tensor:  # [N, C] -> broadcast over the pixels, in t's dtype
        return v.to(t.dtype)[:, :, None, None]

    z = t if d is None else t * per_plane(d)
    if noise is not None:
        z = z + noise.reshape(noise.shape[0], 1, hh, ww)
    if bias is not None:
        z = z + bias[None, :, None, None]
    h = None
    for term in (
        None if ggt is None else (ggt if d is None else ggt * per_plane(d)),
        None if ggd is None else per_plane(ggd) * t,
        None if ggsum is None else per_plane(ggsum).expand_as(t),
    ):
        if term is not None:
            h = term if h is None else h + term
    if h is None:
        return (None,) * 9

    def derivative(m: torch.Tensor, order: int) -> torch.Tensor:  # m * (d/dz)^order y, natively
        return _bias_act_grad_op(m, z, None, 0, act, alpha, gain, clamp, order)

    d_gy = derivative(h, 1) if need_gy else None
    q = None
    if (need_t or need_d or need_noise or need_bias) and _ACT_BY_CODE[act].has_2nd_grad:
        q = derivative(h * gy, 2)
    gz = derivative(gy, 1) if (need_t and ggd is not None) or (need_d and ggt is not None) else None
    d_t = d_d = d_noise = d_bias = None
    if need_t:
        parts = ([] if q is None else [q if d is None else q * per_plane(d)]) + (
            [] if ggd is None else [per_plane(ggd) * gz]
        )
        d_t = sum(parts[1:], parts[0]) if parts else None
    acc = d.dtype if d is not None else t.dtype
    if need_d:
        parts = ([] if q is None else [(q * t).to(acc).sum((2, 3))]) + (
            [] if ggt is None else [(ggt * gz).to(acc).sum((2, 3))]
        )
        d_d = sum(parts[1:], parts[0]) if parts else None
    if need_noise and q is not None:
        d_noise = q.sum(1).reshape(n, hh * ww)
        if noise.shape[0] == 1:
            d_noise = d_noise.sum(0, keepdim=True)
        d_noise = d_noise.to(noise.dtype)
    if need_bias and q is not None:
        d_bias = q.sum((0, 2, 3)).to(bias.dtype)
    return d_gy, d_t, d_d, d_noise, d_bias, None, None, None, None


_epilogue_grad_op.register_autograd(_epilogue_grad_backward, setup_context=_epilogue_grad_setup)


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
    spec, alpha, gain, clamp = resolve_activation("modconv", act, alpha, gain, clamp)
    clamp = -1.0 if clamp is None else clamp  # the kernels' "no clamp"
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
