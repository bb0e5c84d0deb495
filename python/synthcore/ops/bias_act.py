"""bias_act: ``clamp(gain * act(x + b))`` with the bias broadcast along one dimension.

Semantics follow the StyleGAN2 op (../shared/testdata/stylegan2/README.md section 7.3): ``gain=None`` means the
activation's default gain and an explicit gain replaces it; ``alpha=None`` means the default (only lrelu uses
it); ``clamp=None`` means no clamp. The native op recomputes the activation from the saved input in backward
and supports first and second derivatives.
"""

import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from synthcore import _native
from synthcore.ops import _backend

__all__ = ["ACTIVATIONS", "bias_act", "bias_act_reference", "resolve_activation"]


class Activation(NamedTuple):
    code: int  # the native kernel's activation number (csrc/bias_act/bias_act_math.h)
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    has_2nd_grad: bool  # non-zero second derivative somewhere


ACTIVATIONS: Dict[str, Activation] = {
    "linear": Activation(0, lambda x, _: x, 0.0, 1.0, False),
    "relu": Activation(1, lambda x, _: torch.relu(x), 0.0, math.sqrt(2), False),
    "lrelu": Activation(2, lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), False),
    "tanh": Activation(3, lambda x, _: torch.tanh(x), 0.0, 1.0, True),
    "sigmoid": Activation(4, lambda x, _: torch.sigmoid(x), 0.0, 1.0, True),
    "elu": Activation(5, lambda x, _: F.elu(x), 0.0, 1.0, True),
    "selu": Activation(6, lambda x, _: F.selu(x), 0.0, 1.0, True),
    "softplus": Activation(7, lambda x, _: F.softplus(x), 0.0, 1.0, True),
    "swish": Activation(8, lambda x, _: torch.sigmoid(x) * x, 0.0, math.sqrt(2), True),
}
_BY_CODE = {a.code: a for a in ACTIVATIONS.values()}


def resolve_activation(
    op: str, act: str, alpha: Optional[float], gain: Optional[float], clamp: Optional[float]
) -> Tuple[Activation, float, float, Optional[float]]:
    """``act``'s table entry and the epilogue scalars with the defaults filled in and checked: alpha None is the
    activation's default slope, gain None its default gain, clamp None no clamp. The one place these defaults
    are applied (bias_act and modconv, both implementations)."""
    if act not in ACTIVATIONS:
        raise ValueError(f"{op}: unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if not (math.isfinite(alpha) and math.isfinite(gain)):
        raise ValueError(f"{op}: alpha and gain must be finite, got alpha={alpha}, gain={gain}")
    if clamp is not None:
        clamp = float(clamp)
        if not clamp >= 0:  # also refuses NaN
            raise ValueError(f"{op}: clamp must be None or >= 0, got {clamp}")
    return spec, alpha, gain, clamp


def _bias_shape(ndim: int, dim: int) -> list:
    return [-1 if i == dim else 1 for i in range(ndim)]


def bias_act_reference(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> torch.Tensor:
    """Plain-torch definition: add the bias, apply the activation, scale, clamp; one torch op per step."""
    spec, alpha, gain, clamp = resolve_activation("bias_act", act, alpha, gain, clamp)
    if b is not None:
        x = x + b.reshape(_bias_shape(x.ndim, dim))
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# --- native custom ops -------------------------------------------------------------------------------------
# Forward: y = clamp(gain * act(x + b)).  Derivative op: out = grad * (d/dx)^order y, recomputed from x, so no
# activation-sized intermediate is saved for backward.


def _run_native(x, b, grad, dim, act, alpha, gain, clamp, order):
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    x = x.contiguous()
    b = None if b is None else b.contiguous()
    grad = None if grad is None else grad.contiguous()
    _native.native_module().bias_act(
        _backend.to_native(x),
        None if b is None else _backend.to_native(b),
        None if grad is None else _backend.to_native(grad),
        _backend.to_native(out),
        dim,
        act,
        alpha,
        gain,
        clamp,
        order,
        _backend.num_threads(),
        _backend.cuda_stream(x),
    )
    return out


@torch.library.custom_op("synthcore::bias_act", mutates_args=())
def _bias_act_op(
    x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: int, alpha: float, gain: float, clamp: float
) -> torch.Tensor:
    return _run_native(x, b, None, dim, act, alpha, gain, clamp, 0)


@torch.library.custom_op("synthcore::bias_act_grad", mutates_args=())
def _bias_act_grad_op(
    grad: torch.Tensor,
    x: torch.Tensor,
    b: Optional[torch.Tensor],
    dim: int,
    act: int,
    alpha: float,
    gain: float,
    clamp: float,
    order: int,
) -> torch.Tensor:
    return _run_native(x, b, grad, dim, act, alpha, gain, clamp, order)


@_bias_act_op.register_fake
def _(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@_bias_act_grad_op.register_fake
def _(grad, x, b, dim, act, alpha, gain, clamp, order):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _sum_to_bias(g: torch.Tensor, dim: int) -> torch.Tensor:
    return g.sum([i for i in range(g.ndim) if i != dim])


def _fwd_setup(ctx, inputs, output):
    x, b, dim, act, alpha, gain, clamp = inputs
    ctx.save_for_backward(x, b)
    ctx.args = (dim, act, alpha, gain, clamp)


def _fwd_backward(ctx, dy):
    x, b = ctx.saved_tensors
    dim, act, alpha, gain, clamp = ctx.args
    dx = _bias_act_grad_op(dy, x, b, dim, act, alpha, gain, clamp, 1)
    db = _sum_to_bias(dx, dim) if b is not None and ctx.needs_input_grad[1] else None
    return dx, db, None, None, None, None, None


def _grad_setup(ctx, inputs, output):
    grad, x, b, dim, act, alpha, gain, clamp, order = inputs
    ctx.save_for_backward(grad, x, b)
    ctx.args = (dim, act, alpha, gain, clamp, order)


def _grad_backward(ctx, g_out):
    grad, x, b, dim, act, alpha, gain, clamp, order = ctx.saved_tensors + ctx.args
    # out = grad * y^(order)(x + b): linear in grad; its x-derivative needs one more order.
    d_grad = _bias_act_grad_op(g_out, x, b, dim, act, alpha, gain, clamp, order) if ctx.needs_input_grad[0] else None
    d_x = d_b = None
    if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and _BY_CODE[act].has_2nd_grad:
        if order >= 2:
            raise NotImplementedError("bias_act: derivatives beyond the second order are not supported")
        d_x = _bias_act_grad_op(g_out * grad, x, b, dim, act, alpha, gain, clamp, order + 1)
        d_b = _sum_to_bias(d_x, dim) if b is not None and ctx.needs_input_grad[2] else None
    return d_grad, d_x, d_b, None, None, None, None, None, None


_bias_act_op.register_autograd(_fwd_backward, setup_context=_fwd_setup)
_bias_act_grad_op.register_autograd(_grad_backward, setup_context=_grad_setup)


# --- public API --------------------------------------------------------------------------------------------


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """Fused bias, activation, gain and clamp: ``clamp(gain * act(x + b), -clamp, clamp)``.

    Args:
        x: floating-point tensor of any shape.
        b: bias of shape ``[x.shape[dim]]``, or None.
        dim: the dimension of ``x`` the bias runs along (negative counts from the end).
        act: one of linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish.
        alpha: lrelu's negative slope (default 0.2); ignored by the other activations.
        gain: output scale; None uses the activation's default (sqrt(2) for relu, lrelu, swish; else 1).
        clamp: clip the result to [-clamp, clamp]; None for no clamp.
        impl: "native", "reference", or None (native where built for x's device and dtype).
    """
    op = "bias_act"
    _backend.require_tensor(op, "x", x)
    spec, alpha, gain, clamp = resolve_activation(op, act, alpha, gain, clamp)
    if b is not None:
        _backend.require_tensor(op, "b", b, (1,))
        _backend.require_same_device(op, "b", b, "x", x)
        if x.ndim == 0:
            raise ValueError("bias_act: a bias needs x with at least one dimension")
        if not -x.ndim <= dim < x.ndim:
            raise ValueError(f"bias_act: dim {dim} is out of range for x of shape {list(x.shape)}")
        dim = dim % x.ndim
        if b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: b has {b.shape[0]} entries but x has {x.shape[dim]} along dim {dim}")
        if b.dtype != x.dtype:
            raise TypeError(f"bias_act: b has dtype {b.dtype} but x has {x.dtype}")
    if _backend.choose_impl(op, impl, x) == "reference":
        return bias_act_reference(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_op(x, b, dim if b is not None else 0, spec.code, alpha, gain, -1.0 if clamp is None else clamp)
