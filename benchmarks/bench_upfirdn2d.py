"""Benchmark upfirdn2d / upsample2d / downsample2d / filter2d: impl="reference" vs impl="native".

Shapes are the ones the StyleGAN2 config-f generators produce (ch(r) = min(channel_base // r, 512),
channel_base 16384 for the 256 generator, 32768 for the 1024 generator), filter setup_filter([1,3,3,1]):
  * upsample2d of the RGB skip image [N, 3, r/2, r/2] (every synthesis block),
  * upsample2d / filter2d / raw upfirdn2d(up=2, padding=[2,1,2,1]) on feature maps [N, ch(r), r/2, r/2],
  * downsample2d on [N, ch(r), r, r] (discriminator direction),
  * forward+backward of upsample2d and downsample2d on one 256-generator shape each,
  * the filter that follows each up-convolution in modconv (upfirdn2d pad=[-1,0,-1,0], gain 4, on the
    [N, ch(r), r+1, r+1] transposed-convolution output) at batch 2, NCHW and channels_last (the layout the
    generator's blocks from 64x64 up run in on CPU; the reference gets the same channels_last tensor).
Batch 4, batch 8 for the headline cases. The 1024-generator r=512/1024 feature maps run on CPU only
with --full (they dominate the run time there).

    python benchmarks/bench_upfirdn2d.py [--device cuda] [--quick] [--full] [--json out.json]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

import torch

import _harness as H

G256_BASE = 16384
G1024_BASE = 32768
UPFIRDN_PAD = [2, 1, 2, 1]  # what upsample2d uses for a 4-tap filter and up=2
UPCONV_FIR_PAD = [-1, 0, -1, 0]  # modconv's filter after a 3x3 stride-2 transposed convolution, padding 1


def channels(res: int, channel_base: int) -> int:
    """Feature channels of the StyleGAN2 config-f block at resolution ``res``."""
    return min(channel_base // res, 512)


@dataclass(frozen=True)
class Spec:
    op: str  # upsample2d | downsample2d | filter2d | upfirdn2d
    shape: tuple[int, int, int, int]
    case: str  # which generator block the shape comes from
    grad: bool = False
    channels_last: bool = False


def _feature_specs(gen: str, base: int, res: int, batch: int, ops: tuple[str, ...]) -> list[Spec]:
    ch = channels(res, base)
    half = (batch, ch, res // 2, res // 2)
    out = []
    for op in ops:
        shape = (batch, ch, res, res) if op == "downsample2d" else half
        out.append(Spec(op, shape, f"{gen} r{res}"))
    return out


def specs(s: H.Settings) -> list[Spec]:
    """The case list; --quick keeps one small shape per op, CPU skips the biggest unless --full."""
    if s.quick:
        return [
            Spec("upsample2d", (4, 3, 32, 32), "rgb r64"),
            *_feature_specs("G256", G256_BASE, 64, 4, ("upsample2d", "filter2d", "upfirdn2d", "downsample2d")),
            Spec("upsample2d", (4, 256, 32, 32), "G256 r64", grad=True),
            Spec("downsample2d", (4, 256, 64, 64), "G256 r64", grad=True),
        ]

    out: list[Spec] = []
    # (a) RGB skip upsample: 3 channels at every resolution, identical for both generators below 512.
    for res in (8, 16, 32, 64, 128, 256, 512, 1024):
        out.append(Spec("upsample2d", (4, 3, res // 2, res // 2), f"rgb r{res}"))
    out.append(Spec("upsample2d", (8, 3, 128, 128), "rgb r256"))

    # (b) feature maps.
    all_ops = ("upsample2d", "filter2d", "downsample2d")
    # Low resolutions (ch 512 at r <= 32): where fixed per-row costs dominate; the weak end for native.
    for res in (8, 16, 32, 64, 128, 256):
        out += _feature_specs("G256", G256_BASE, res, 4, all_ops)
    out += _feature_specs("G256", G256_BASE, 128, 8, (*all_ops, "upfirdn2d"))  # headline, batch 8
    out += _feature_specs("G256", G256_BASE, 128, 4, ("upfirdn2d",))
    for res in (128, 256):
        out += _feature_specs("G1024", G1024_BASE, res, 4, all_ops)
    out += _feature_specs("G1024", G1024_BASE, 256, 4, ("upfirdn2d",))
    if s.big_shapes:
        for res in (512, 1024):
            out += _feature_specs("G1024", G1024_BASE, res, 4, all_ops)

    # (c) forward + backward.
    out.append(Spec("upsample2d", (4, 128, 64, 64), "G256 r128", grad=True))
    out.append(Spec("downsample2d", (4, 128, 128, 128), "G256 r128", grad=True))

    # (d) the filter after modconv's up-convolution, both layouts (channels_last is a CPU layout).
    layouts = (False, True) if s.device.type == "cpu" else (False,)
    for res in (64, 128, 256):
        shape = (2, channels(res, G256_BASE), res + 1, res + 1)
        for cl in layouts:
            out.append(Spec("upconv_fir", shape, f"G256 r{res}" + (" channels_last" if cl else ""), channels_last=cl))
    for cl in layouts:
        out.append(Spec("upconv_fir", (2, 64, 257, 257), "G256 r256" + (" channels_last" if cl else ""), True, cl))
    return out


def _op_fn(ops: Any, op: str, f: torch.Tensor, impl: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if op == "upsample2d":
        return lambda x: ops.upsample2d(x, f, up=2, impl=impl)
    if op == "downsample2d":
        return lambda x: ops.downsample2d(x, f, down=2, impl=impl)
    if op == "filter2d":
        return lambda x: ops.filter2d(x, f, impl=impl)
    if op == "upfirdn2d":
        return lambda x: ops.upfirdn2d(x, f, up=2, padding=UPFIRDN_PAD, impl=impl)
    if op == "upconv_fir":
        return lambda x: ops.upfirdn2d(x, f, padding=UPCONV_FIR_PAD, gain=4, impl=impl)
    raise ValueError(f"unknown op {op!r}")


def _op_label(spec: Spec) -> str:
    pad = ",".join(str(p) for p in UPFIRDN_PAD)
    name = f"upfirdn2d up=2 pad=[{pad}]" if spec.op == "upfirdn2d" else spec.op
    if spec.op == "upconv_fir":
        name = "upfirdn2d pad=[{}] gain=4 (after up-conv)".format(",".join(str(p) for p in UPCONV_FIR_PAD))
    return f"{name} fwd+bwd" if spec.grad else name


def _forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], torch.Tensor]:
    return lambda: fn(x)


def _forward_backward(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, gy: torch.Tensor
) -> Callable[[], torch.Tensor]:
    # Own leaf per impl so the two never share .grad; resetting grad avoids timing the accumulation.
    xg = x.detach().requires_grad_(True)

    def step() -> torch.Tensor:
        xg.grad = None
        fn(xg).backward(gy)
        return xg.grad

    return step


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every case and return one row per case (see _harness.run_case)."""
    s = H.configure(args)
    ops = H.import_ops()
    torch.manual_seed(0)
    f = ops.setup_filter([1, 3, 3, 1], device=s.device)

    rows = []
    for spec in specs(s):
        ref = _op_fn(ops, spec.op, f, "reference")
        nat = _op_fn(ops, spec.op, f, "native")
        x = torch.randn(spec.shape, device=s.device, dtype=s.dtype)
        if spec.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if spec.grad:
            with torch.no_grad():
                gy = torch.randn_like(ref(x))
            ref_fn, nat_fn = _forward_backward(ref, x, gy), _forward_backward(nat, x, gy)
        else:
            ref_fn, nat_fn = _forward(ref, x), _forward(nat, x)
        rows.append(
            H.run_case(
                s,
                op=_op_label(spec),
                shape=spec.shape,
                case=spec.case,
                ref_fn=ref_fn,
                native_fn=nat_fn,
                grad=spec.grad,
            )
        )
        del x, ref_fn, nat_fn
        H.free_memory(s)
    return rows


def main() -> int:
    return H.bench_main(run, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
