"""Benchmark dlib's face-recognition ResNet: synthcore's port against dlib's own library, per image.

Batch 16 of 150x150 chips (the three reference chips, then random ones). Cases:

* synthcore forward: uint8 chips -> [-1, 1] tensor -> ``DlibResNet`` under ``torch.inference_mode``;
* synthcore forward+backward: gradient of a scalar of the descriptors with respect to the input images (what
  Langevin needs; parameters frozen);
* dlib forward: ``face_recognition_model_v1.compute_face_descriptor(list of chips)`` (dlib batches them; dlib
  has no backward in Python).

Both implementations are first checked to give the same descriptors (max abs difference <= 1e-5). Wall time
and process CPU time are reported, since the two libraries may use different numbers of threads.

dlib's library is only a benchmark tool (``pip install dlib-bin``), never a synthcore dependency.

    python benchmarks/bench_dlib_resnet.py [--batch 16] [--json benchmarks/results/dlib-resnet-cpu-DATE.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import _harness as H

REFERENCE_CHIPS = ("astronaut", "noise_seed0", "gradient")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dlib ResNet options")
    g.add_argument("--batch", type=int, default=16, help="chips per call (default: 16)")
    g.add_argument("--model", default="dlib-resnet-v1", help="model name or .dat path (default: dlib-resnet-v1)")


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise SystemExit(
            "this benchmark compares against dlib's own library, which is not installed: pip install dlib-bin "
            "(a benchmark-only tool, not a synthcore dependency)"
        ) from None
    return dlib


def _chips(batch: int) -> np.ndarray:
    """[batch, 150, 150, 3] uint8: the shared reference chips when present, then seeded random chips."""
    from PIL import Image

    folder = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "realmodels"
    chips = [
        np.asarray(Image.open(folder / f"chip_{n}.png").convert("RGB"))
        for n in REFERENCE_CHIPS
        if (folder / f"chip_{n}.png").is_file()
    ]
    rng = np.random.default_rng(0)
    while len(chips) < batch:
        chips.append(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))
    return np.stack(chips[:batch])


def _cpu_timed(fn: Callable[[], Any], runs: int) -> float:
    """Median process CPU milliseconds per call (all threads)."""
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return float(np.median(times))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = H.configure(args)
    if s.device.type != "cpu":
        raise SystemExit("dlib's Python build runs on the CPU; this benchmark is CPU-only")
    dlib = _import_dlib()
    from synthcore.nets.dlib import dlib_model_file
    from synthcore.nets.embedders import load_embedder

    batch = min(args.batch, 4) if s.quick else args.batch
    chips = _chips(batch)
    path = dlib_model_file(args.model)
    net = load_embedder(args.model)
    theirs = dlib.face_recognition_model_v1(str(path))
    chip_list = [np.ascontiguousarray(c) for c in chips]

    def to_input() -> torch.Tensor:
        return torch.from_numpy(chips).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)

    def ours_forward() -> torch.Tensor:
        with torch.inference_mode():
            return net(to_input())

    def ours_forward_backward() -> torch.Tensor:
        x = to_input().requires_grad_(True)
        d = net(x)
        (d * d.detach().mean(0)).sum().backward()
        return x.grad

    def dlib_forward() -> Any:
        return theirs.compute_face_descriptor(chip_list)

    ref = np.array([np.array(d) for d in dlib_forward()])
    err = float(np.abs(ours_forward().double().numpy() - ref).max())
    if err > 1e-5:
        raise H.MismatchError(f"synthcore and dlib descriptors differ by {err:.2e} (max abs)")
    print(f"  descriptors agree: max abs difference {err:.1e}", file=sys.stderr)

    fns = {"synthcore forward": ours_forward, "dlib forward": dlib_forward}
    stats = H.time_fns(fns, device=s.device, **s.timing)
    stats["synthcore forward+backward"] = H.time_fn(ours_forward_backward, device=s.device, **s.timing)
    cpu_runs = 2 if s.quick else 5
    rows = []
    for name, fn in (*fns.items(), ("synthcore forward+backward", ours_forward_backward)):
        ms = stats[name]["median_ms"]
        cpu_ms = _cpu_timed(fn, cpu_runs)
        row = {
            "op": f"dlib-resnet-v1 {name}",
            "shape": H.fmt_shape((batch, 3, 150, 150)),
            "case": name,
            "device": "cpu",
            "dtype": "float32",
            "threads": torch.get_num_threads(),
            "median_ms": ms,
            "ms_per_image": ms / batch,
            "cpu_ms_per_image": cpu_ms / batch,
            "images_per_s": batch / (ms / 1e3),
            "max_abs_vs_dlib": err,
            "timing": stats[name],
        }
        print(
            f"  {name}: {ms:.1f} ms/batch, {ms / batch:.2f} ms/image, CPU {cpu_ms / batch:.2f} ms/image",
            file=sys.stderr,
        )
        rows.append(row)
    ours, theirs_row = rows[0]["ms_per_image"], rows[1]["ms_per_image"]
    rows[0]["speedup_vs_dlib"] = theirs_row / ours
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    header = f"{'case':30s} {'shape':14s} {'ms/image':>9s} {'CPU ms/image':>13s} {'images/s':>9s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:30s} {r['shape']:14s} {r['ms_per_image']:9.2f} {r['cpu_ms_per_image']:13.2f} "
            f"{r['images_per_s']:9.1f}"
        )
    if "speedup_vs_dlib" in rows[0]:
        print(f"synthcore forward vs dlib forward (wall, per image): {rows[0]['speedup_vs_dlib']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    return H.bench_main(run, __doc__, add_arguments, argv, print_rows=print_rows)


if __name__ == "__main__":
    raise SystemExit(main())
