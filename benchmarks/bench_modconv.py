"""Benchmark modconv on the layers of the StyleGAN2 256 and 1024 generators: native vs both reference strategies.

Each synthesis layer (conv0 with up=2, conv1, ToRGB) of a generator config is timed in one run with:
  * reference "grouped": per-sample weights and one grouped convolution (the official fused path),
  * reference "scaled":  activations scaled by the styles, shared convolution, output scaled by d (non-fused),
  * native:              synthcore.ops.modconv(impl="native").
Epilogue as in the generator: const noise [H, W], bias, lrelu gain sqrt(2), clamp 256 (ToRGB: bias, clamp).
Directions: forward under no_grad (inference), and backward alone to input and styles (the identity
algorithms' cost; the weight is frozen), timed on a retained graph. Per layer: time and achieved GFLOP/s
(2 * N * O * I * k^2 * pixels the convolution runs on). Summary rows add the layers up per (config, batch,
direction) and give native's speedup over the faster reference strategy (the issue's bar).

    python benchmarks/bench_modconv.py [--config 256,1024] [--batch 1,4,16] [--quick] [--json out.json]

On CPU the default is the 256 config at batch 1 and 4 (add --full for batch 16 and the 1024 config).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

import _harness as H

CONFIGS = {256: 16384, 1024: 32768}  # resolution -> channel_base (channel_max 512)
STRATEGIES = ("grouped", "scaled")
FWD_TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}


@dataclass(frozen=True)
class Layer:
    name: str
    cin: int
    cout: int
    res_in: int
    k: int
    up: int

    @property
    def res_out(self) -> int:
        return self.res_in * self.up

    def flops(self, batch: int) -> float:
        # A transposed (up) convolution runs its k*k taps per input pixel, a plain one per output pixel.
        return 2.0 * batch * self.cout * self.cin * self.k * self.k * self.res_in * self.res_in


def generator_layers(res: int, channel_base: int, channel_max: int = 512) -> list[Layer]:
    def ch(r: int) -> int:
        return min(channel_base // r, channel_max)

    layers = [Layer("b4.conv1", ch(4), ch(4), 4, 3, 1), Layer("b4.torgb", ch(4), 3, 4, 1, 1)]
    r = 8
    while r <= res:
        layers += [
            Layer(f"b{r}.conv0", ch(r // 2), ch(r), r // 2, 3, 2),
            Layer(f"b{r}.conv1", ch(r), ch(r), r, 3, 1),
            Layer(f"b{r}.torgb", ch(r), 3, r, 1, 1),
        ]
        r *= 2
    return layers


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("bench_modconv")
    g.add_argument("--config", default=None, help="generator resolutions, comma-separated (256, 1024)")
    g.add_argument("--batch", default=None, help="batch sizes, comma-separated (default CPU: 1,4; GPU: 1,4,16)")
    g.add_argument("--direction", default="forward,backward", help="forward, backward or both (default: both)")


def _inputs(layer: Layer, batch: int, s: H.Settings, ops: Any) -> dict[str, Any]:
    g = torch.Generator(device="cpu").manual_seed(layer.cin * 7 + layer.res_in)
    dev, dt = s.device, s.dtype
    x = torch.randn(batch, layer.cin, layer.res_in, layer.res_in, generator=g).to(dev, dt)
    w = torch.randn(layer.cout, layer.cin, layer.k, layer.k, generator=g).to(dev)
    st = (torch.randn(batch, layer.cin, generator=g) * 0.3 + 1).to(dev)
    b = torch.randn(layer.cout, generator=g).to(dev, dt)
    if layer.k == 3:
        noise = (torch.randn(layer.res_out, layer.res_out, generator=g) * 0.1).to(dev, dt)
        kw = dict(up=layer.up, padding=1, resample_filter=ops.setup_filter([1, 3, 3, 1], device=dev),
                  demodulate=True, flip_weight=layer.up == 1, act="lrelu", clamp=256.0)  # fmt: skip
    else:
        noise = None
        st = st / layer.cin**0.5  # ToRGB's weight gain
        kw = dict(demodulate=False, clamp=256.0)
    return dict(x=x, w=w, s=st, noise=noise, b=b, kw=kw)


def _call(ops: Any, impl: str, a: dict[str, Any], x: torch.Tensor, st: torch.Tensor) -> torch.Tensor:
    if impl == "native":
        return ops.modconv(x, a["w"], st, a["noise"], a["b"], impl="native", **a["kw"])
    return ops.modconv_reference(x, a["w"], st, a["noise"], a["b"], strategy=impl, **a["kw"])


def _forward_fns(ops: Any, a: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    return {impl: (lambda impl=impl: _call(ops, impl, a, a["x"], a["s"])) for impl in (*STRATEGIES, "native")}


def _backward_fns(ops: Any, a: dict[str, Any]) -> tuple[dict[str, Callable[[], Any]], dict[str, Any]]:
    """Backward alone: one retained graph per impl, gradients to x and styles."""
    fns, outs = {}, {}
    gy = None
    for impl in (*STRATEGIES, "native"):
        x = a["x"].detach().requires_grad_(True)
        st = a["s"].detach().requires_grad_(True)
        y = _call(ops, impl, a, x, st)
        if gy is None:
            gy = torch.randn_like(y)

        def fn(y=y, x=x, st=st, gy=gy) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.autograd.grad(y, (x, st), gy, retain_graph=True)

        fns[impl] = fn
        outs[impl] = fn()
    return fns, outs


def _check(ref: Any, nat: Any, what: str, tol: float, norm: str = "max") -> float:
    """Native vs reference error relative to the reference's size, over all outputs; MismatchError above ``tol``.

    ``norm="max"``: largest |difference| / largest |reference| (forward outputs). ``norm="l2"``: ||difference|| /
    ||reference|| (gradients): where a pre-activation lies within rounding of lrelu's kink the two
    implementations may take different slopes (0.2 vs 1) for that element, both correct, and a style gradient,
    a sum over every pixel, collects several such flips; the L2 measure stays small while a real error would not.
    """
    refs = (ref,) if isinstance(ref, torch.Tensor) else tuple(ref)
    nats = (nat,) if isinstance(nat, torch.Tensor) else tuple(nat)
    worst = 0.0
    for r, n in zip(refs, nats):
        if r.shape != n.shape:
            raise H.MismatchError(f"{what}: shape {tuple(r.shape)} vs {tuple(n.shape)}")
        r, n = r.detach().double(), n.detach().double()
        if norm == "max":
            err = ((r - n).abs().max() / r.abs().max().clamp_min(1e-30)).item()
        else:
            err = ((r - n).norm() / r.norm().clamp_min(1e-30)).item()
        if not err <= tol:
            raise H.MismatchError(f"{what}: native differs from the reference by {err:.3g} ({norm}, tol {tol})")
        worst = max(worst, err)
    return worst


def _row(s: H.Settings, cfg: int, batch: int, direction: str, layer: Layer, stats: dict, err: float) -> dict:
    flops = layer.flops(batch)
    ms = {impl: stats[impl]["median_ms"] for impl in stats}
    best_ref = min(ms[k] for k in STRATEGIES)
    row = {
        "op": f"modconv {direction}",
        "case": f"G{cfg} b{batch} {layer.name}",
        "shape": f"{batch}x{layer.cin}x{layer.res_in}x{layer.res_in}->{layer.cout}x{layer.res_out}x{layer.res_out}",
        "device": s.device.type,
        "dtype": s.dtype_name,
        "config": cfg,
        "batch": batch,
        "direction": direction,
        "layer": layer.name,
        "gflop": flops / 1e9,
        "grouped_ms": ms["grouped"],
        "scaled_ms": ms["scaled"],
        "ref_ms": best_ref,
        "native_ms": ms["native"],
        "speedup": best_ref / ms["native"],
        "native_gflops": flops / ms["native"] / 1e6,
        "ref_gflops": flops / best_ref / 1e6,
        "max_rel_err": err,  # forward: max-relative; backward: relative L2
        "reference": stats["grouped"] if ms["grouped"] <= ms["scaled"] else stats["scaled"],
        "native": stats["native"],
        "note": "",
    }
    print(
        f"  G{cfg} b{batch} {direction:8s} {layer.name:11s} grouped {ms['grouped']:8.2f}  scaled {ms['scaled']:8.2f}  "
        f"native {ms['native']:8.2f} ms  ({row['native_gflops']:.0f} GFLOP/s)  {row['speedup']:.2f}x",
        file=sys.stderr,
        flush=True,
    )
    return row


def _summary(rows: list[dict], cfg: int, batch: int, direction: str) -> dict:
    sel = [r for r in rows if r["config"] == cfg and r["batch"] == batch and r["direction"] == direction]
    tot = {k: sum(r[f"{k}_ms"] for r in sel) for k in ("grouped", "scaled", "native")}
    best = min(tot["grouped"], tot["scaled"])
    gflop = sum(r["gflop"] for r in sel)
    return {
        "op": f"modconv {direction} (sum of layers)",
        "case": f"G{cfg} b{batch} all {len(sel)} layers",
        "shape": "",
        "device": sel[0]["device"],
        "dtype": sel[0]["dtype"],
        "config": cfg,
        "batch": batch,
        "direction": direction,
        "layer": "all",
        "gflop": gflop,
        "grouped_ms": tot["grouped"],
        "scaled_ms": tot["scaled"],
        "ref_ms": best,
        "native_ms": tot["native"],
        "speedup": best / tot["native"],
        "native_gflops": gflop / tot["native"] / 1e6,
        "ref_gflops": gflop / best / 1e6,
        "max_rel_err": max(r["max_rel_err"] for r in sel),
        "note": "faster reference: " + ("grouped" if tot["grouped"] <= tot["scaled"] else "scaled"),
    }


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = H.configure(args)
    ops = H.import_ops()
    gpu = s.device.type == "cuda"
    configs = [int(c) for c in args.config.split(",")] if args.config else ([256, 1024] if s.big_shapes else [256])
    batches = [int(b) for b in args.batch.split(",")] if args.batch else ([1, 4, 16] if gpu or s.full else [1, 4])
    if s.quick:
        batches = [min(batches)]
    directions = [d.strip() for d in args.direction.split(",") if d.strip()]
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    rows: list[dict[str, Any]] = []
    for cfg in configs:
        if cfg not in CONFIGS:
            raise SystemExit(f"--config: unknown generator resolution {cfg}; choose from {sorted(CONFIGS)}")
        layers = generator_layers(cfg, CONFIGS[cfg])
        if s.quick:
            layers = layers[:8]
        for batch in batches:
            for direction in directions:
                for layer in layers:
                    a = _inputs(layer, batch, s, ops)
                    if direction == "forward":
                        fns = _forward_fns(ops, a)
                        with torch.no_grad():
                            outs = {k: fn() for k, fn in fns.items()}
                            err = max(
                                _check(outs[k], outs["native"], f"{layer.name} vs {k}", FWD_TOL[s.dtype])
                                for k in STRATEGIES
                            )
                            del outs
                            stats = H.time_fns(fns, device=s.device, **s.timing)
                    else:
                        fns, outs = _backward_fns(ops, a)
                        err = max(
                            _check(
                                outs[k],
                                outs["native"],
                                f"{layer.name} grad vs {k}",
                                5e-3 if s.dtype == torch.float32 else 5e-2,
                                "l2",
                            )
                            for k in STRATEGIES
                        )
                        del outs
                        stats = H.time_fns(fns, device=s.device, **s.timing)
                    rows.append(_row(s, cfg, batch, direction, layer, stats, err))
                    del fns, a
                    H.free_memory(s)
                rows.append(_summary(rows, cfg, batch, direction))
                r = rows[-1]
                print(
                    f"G{cfg} b{batch} {direction}: grouped {r['grouped_ms']:.1f} ms, scaled {r['scaled_ms']:.1f} ms, "
                    f"native {r['native_ms']:.1f} ms -> {r['speedup']:.2f}x over the faster reference",
                    file=sys.stderr,
                    flush=True,
                )
    return rows


def main() -> int:
    return H.bench_main(run, __doc__, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
