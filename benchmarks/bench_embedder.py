"""Benchmark the face-recognition embedder: images/s of forward and forward+backward at 112x112.

iResNet-50 (insightface layout) by default, batch 32, weights frozen as in synthcore's use (identity losses
back-propagate to the images, never to the recognition network): forward runs under ``torch.inference_mode``,
forward+backward computes the gradient of a scalar of the embeddings with respect to the input images. Both
memory layouts are timed (contiguous NCHW and channels_last), after checking that they agree.

    python benchmarks/bench_embedder.py [--batch 32] [--arch iresnet50] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

import _harness as H

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("embedder options")
    g.add_argument("--batch", type=int, default=32, help="images per call (default: 32)")
    g.add_argument("--arch", default="iresnet50", help="architecture (default: iresnet50)")
    g.add_argument("--formats", default="contiguous,channels_last", help="memory formats to time")


def _build(arch: str, device: torch.device, fmt: torch.memory_format) -> Any:
    from synthcore.nets.embedders import build_embedder

    torch.manual_seed(0)
    e = build_embedder(arch).requires_grad_(False)
    # Untrained BatchNorm statistics (mean 0, var 1) would make every unit near-identity; spread them so the
    # activations look like a trained network's. Timing does not depend on the values, the check below does.
    for m in e.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    return e.to(device=device, memory_format=fmt)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = H.configure(args)
    batch = min(args.batch, 4) if s.quick else args.batch
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise SystemExit(f"unknown memory format(s) {unknown}; choose from {list(FORMATS)}")
    x = torch.rand(batch, 3, 112, 112, device=s.device) * 2 - 1
    rows, first_out = [], None
    for name in formats:
        fmt = FORMATS[name]
        e = _build(args.arch, s.device, fmt)
        xf = x.contiguous(memory_format=fmt)
        with torch.inference_mode():
            out = e(xf)
        if first_out is None:
            first_out = out
        else:  # another layout must compute the same thing
            err = ((out - first_out).abs().max() / first_out.abs().max()).item()
            if err > 1e-4:
                raise H.MismatchError(f"{name} output differs from {formats[0]}: relative error {err:.2e}")

        def forward(e=e, xf=xf):
            with torch.inference_mode():
                return e(xf)

        def forward_backward(e=e, xf=xf):
            xg = xf.detach().requires_grad_(True)
            emb = torch.nn.functional.normalize(e(xg), dim=1)
            (emb @ emb.mean(0)).sum().backward()
            return xg.grad

        for case, fn in (("forward", forward), ("forward+backward", forward_backward)):
            stats = H.time_fn(fn, device=s.device, **s.timing)
            ms = stats["median_ms"]
            row = {
                "op": f"{args.arch} {case}",
                "shape": H.fmt_shape((batch, 3, 112, 112)),
                "case": name,
                "device": s.device.type,
                "dtype": "float32",
                "median_ms": ms,
                "images_per_s": batch / (ms / 1e3),
                "timing": stats,
            }
            rate = row["images_per_s"]
            print(f"  {row['op']} [{row['shape']}] {name}: {ms:.1f} ms, {rate:.1f} img/s", file=sys.stderr)
            rows.append(row)
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    header = f"{'case':28s} {'layout':14s} {'shape':14s} {'median ms':>10s} {'images/s':>9s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['op']:28s} {r['case']:14s} {r['shape']:14s} {r['median_ms']:10.1f} {r['images_per_s']:9.1f}")


def main(argv: list[str] | None = None) -> int:
    return H.bench_main(run, __doc__, add_arguments, argv, print_rows=print_rows)


if __name__ == "__main__":
    raise SystemExit(main())
