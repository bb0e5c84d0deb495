"""Benchmark bias_act: impl="reference" vs impl="native".

StyleGAN2 feature-map shapes (256-generator blocks r16/r64/r128/r256, channels min(16384 // r, 512)):
  * act='lrelu' (default alpha 0.2, gain sqrt(2)) forward, with and without clamp=256,
  * linear / tanh / sigmoid / swish forward on two shapes,
  * lrelu forward+backward (x and b require grad).
The clamp cases scale x so a good share of outputs actually hits the clamp.

    python benchmarks/bench_bias_act.py [--device cuda] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

import torch

import _harness as H

SHAPES: dict[str, tuple[int, int, int, int]] = {
    "G256 r16": (8, 512, 16, 16),
    "G256 r64": (8, 256, 64, 64),
    "G256 r128": (8, 128, 128, 128),
    "G256 r256": (4, 64, 256, 256),
}
OTHER_ACTS = ("linear", "tanh", "sigmoid", "swish")
CLAMP = 256.0
CLAMP_INPUT_SCALE = 200.0  # lrelu gain sqrt(2): |x| > ~181 clamps, i.e. roughly a third of the values


@dataclass(frozen=True)
class Spec:
    act: str
    case: str
    clamp: float | None = None
    grad: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return SHAPES[self.case]

    @property
    def label(self) -> str:
        name = f"bias_act {self.act}" + (f" clamp={self.clamp:g}" if self.clamp is not None else "")
        return f"{name} fwd+bwd" if self.grad else name


def specs(s: H.Settings) -> list[Spec]:
    if s.quick:
        small = "G256 r16"
        return [
            Spec("lrelu", small),
            Spec("lrelu", small, clamp=CLAMP),
            *(Spec(act, small) for act in OTHER_ACTS),
            Spec("lrelu", small, grad=True),
        ]
    out = [Spec("lrelu", case) for case in SHAPES]
    out += [Spec("lrelu", case, clamp=CLAMP) for case in SHAPES]
    out += [Spec(act, case) for act in OTHER_ACTS for case in ("G256 r64", "G256 r128")]
    out += [Spec("lrelu", case, grad=True) for case in SHAPES]
    out.append(Spec("lrelu", "G256 r64", clamp=CLAMP, grad=True))
    return out


def _op_fn(ops: Any, spec: Spec, impl: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda x, b: ops.bias_act(x, b, dim=1, act=spec.act, clamp=spec.clamp, impl=impl)


def _forward(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, b: torch.Tensor
) -> Callable[[], torch.Tensor]:
    return lambda: fn(x, b)


def _forward_backward(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    b: torch.Tensor,
    gy: torch.Tensor,
) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    # Own leaves per impl so reference and native never share .grad.
    xg = x.detach().requires_grad_(True)
    bg = b.detach().requires_grad_(True)

    def step() -> tuple[torch.Tensor, torch.Tensor]:
        xg.grad = None
        bg.grad = None
        fn(xg, bg).backward(gy)
        return xg.grad, bg.grad

    return step


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every case and return one row per case (see _harness.run_case)."""
    s = H.configure(args)
    ops = H.import_ops()
    torch.manual_seed(0)

    rows = []
    for spec in specs(s):
        ref = _op_fn(ops, spec, "reference")
        nat = _op_fn(ops, spec, "native")
        scale = CLAMP_INPUT_SCALE if spec.clamp is not None else 1.0
        x = torch.randn(spec.shape, device=s.device, dtype=torch.float32).mul_(scale).to(s.dtype)
        b = torch.randn(spec.shape[1], device=s.device, dtype=s.dtype)
        if spec.grad:
            gy = torch.randn_like(x)
            ref_fn: Callable[[], Any] = _forward_backward(ref, x, b, gy)
            nat_fn: Callable[[], Any] = _forward_backward(nat, x, b, gy)
        else:
            ref_fn, nat_fn = _forward(ref, x, b), _forward(nat, x, b)
        rows.append(
            H.run_case(
                s,
                op=spec.label,
                shape=spec.shape,
                case=spec.case,
                ref_fn=ref_fn,
                native_fn=nat_fn,
                grad=spec.grad,
            )
        )
        del x, b, ref_fn, nat_fn
        H.free_memory(s)
    return rows


def main() -> int:
    return H.bench_main(run, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
