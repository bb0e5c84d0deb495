"""Benchmark pairwise soft-sphere repulsion at d=512: native (tiled, fused epilogue, symmetric) vs the row-chunked
pure-torch version (the "reference ms" column, the baseline the issue names) and the plain N x N reference
(only where its matrix fits), in one run, with the machine's sgemm rate measured in the same run.

Regimes (metric angle, r0 = 1.4 rad, k = 1, exclude_self):
  start:  rows share a mean direction (mean pairwise cosine about 0.3): most pairs are inside r0;
  spread: independent Gaussian rows (nearly orthogonal, as after a Langevin run): almost no pair is inside r0.

Flops: the chunked version executes 4 N^2 d (two products: similarities, forces). Native executes, with T the
tile side and B = ceil(N / T) blocks, 2 T^2 d (B(B+1)/2) for the similarities (tiles on or above the diagonal
only) plus, for dense tiles, 2 T^2 d (B(B-1) + B) for the forces (both sides of each off-diagonal tile); tiles
with no pair inside skip the force products. GFLOP/s below are executed flops / time; "sgemm" is the best of
torch.mm and numpy.matmul measured in this run.

    python benchmarks/bench_pairwise.py [--full] [--n100k] [--json out.json]   (--full adds N = 64k; --n100k
    adds a native-only N = 100k run for time and peak memory)
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

import _harness as H

DIM = 512
R0 = 1.4
TILE = 2048
NXN_MAX = 4096  # the N x N reference keeps several N x N float32 matrices alive


def _peak_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM, the peak resident set
    except OSError:
        pass


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sgemm_rates(threads: int) -> dict[str, float]:
    """GFLOP/s of torch.mm and numpy.matmul on the kernel's tile shape and on a square product."""
    torch.set_num_threads(threads)
    rates = {}
    a, b = torch.randn(TILE, DIM), torch.randn(DIM, TILE)
    sq = torch.randn(2048, 2048)
    cases = {
        "torch.mm 2048x512x2048": (lambda: torch.mm(a, b), 2 * TILE * DIM * TILE),
        "torch.mm 2048^3": (lambda: torch.mm(sq, sq), 2 * 2048**3),
    }
    an, bn, sqn = a.numpy(), b.numpy(), sq.numpy()
    cases["numpy.matmul 2048x512x2048"] = (lambda: an @ bn, 2 * TILE * DIM * TILE)
    cases["numpy.matmul 2048^3"] = (lambda: sqn @ sqn, 2 * 2048**3)
    for name, (fn, flops) in cases.items():
        fn()
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        rates[name] = flops / best / 1e9
    return rates


def make_rows(regime: str, n: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, DIM, generator=gen)
    if regime == "start":
        base = torch.randn(DIM, generator=gen)
        x += 0.65 * math.sqrt(DIM) * base / base.norm()
    return x


def native_flops(n: int, dense: bool) -> float:
    b = math.ceil(n / TILE)
    t = min(TILE, n)
    sim = 2.0 * t * t * DIM * b * (b + 1) / 2
    force = 2.0 * t * t * DIM * (b * (b - 1) + b) if dense else 0.0
    return sim + force


def _time(fn, repeats: int) -> tuple[float, Any]:
    out = fn()  # warm-up (and the result, for the agreement check)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3, out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = H.configure(args)
    if s.device.type != "cpu":
        raise SystemExit("bench_pairwise measures the CPU kernels; the CUDA path has no benchmark yet")
    ops = H.import_ops()
    from synthcore.ops.pairwise import pairwise_chunked, pairwise_reference

    args.only_n100k = getattr(args, "only_n100k", False)
    rates = sgemm_rates(args.threads)
    best = max(rates.values())
    print("sgemm in this run: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()) + " GFLOP/s")
    sizes = [] if args.only_n100k else ([1024, 2048] if s.quick else [1024, 4096, 16384] + ([65536] if s.full else []))
    kw = dict(metric="angle", r0=R0, exclude_self=True)
    rows = []
    for regime in ("start", "spread"):
        for n in sizes:
            gen = torch.Generator().manual_seed(n)
            X = make_rows(regime, n, gen)
            reps = 1 if n >= 65536 else (2 if n >= 16384 else 4)
            base = _rss_mb("VmRSS")
            _peak_reset()
            nat_ms, nat = _time(lambda X=X: ops.pairwise(X, None, **kw, tile=TILE, impl="native"), reps)
            nat_peak = _rss_mb("VmHWM") - base
            _peak_reset()
            ch_ms, ch = _time(lambda X=X: pairwise_chunked(X, None, **kw, chunk=1024), reps)
            ch_peak = _rss_mb("VmHWM") - base
            nxn_ms = None
            if n <= NXN_MAX:
                nxn_ms, _ = _time(lambda X=X: pairwise_reference(X, None, **kw), reps)
            err = float((nat.grad - ch.grad).abs().max() / ch.grad.abs().max().clamp_min(1e-30))
            inside = float(ch.count_within.sum()) / max(1.0, float(ch.num_valid.sum()))
            dense = inside > 0.02
            nat_gflops = native_flops(n, dense) / (nat_ms / 1e3) / 1e9
            ch_gflops = 4.0 * n * n * DIM / (ch_ms / 1e3) / 1e9
            row = {
                "op": f"pairwise {regime}",
                "shape": f"{n}x{DIM}",
                "case": f"inside {inside:.1%}",
                "device": "cpu",
                "dtype": "float32",
                "ref_ms": ch_ms,
                "native_ms": nat_ms,
                "speedup": ch_ms / nat_ms,
                "nxn_ms": nxn_ms,
                "native_gflops": nat_gflops,
                "chunked_gflops": ch_gflops,
                "native_vs_best_sgemm": nat_gflops / best,
                "native_peak_mb": nat_peak,
                "chunked_peak_mb": ch_peak,
                "grad_rel_err_vs_chunked": err,
                "sgemm_gflops": rates,
            }
            rows.append(row)
            nxn = "-" if nxn_ms is None else f"{nxn_ms:.0f}"
            print(
                f"  {regime:6s} N={n:6d}: chunked {ch_ms:9.1f} ms ({ch_gflops:5.0f} GFLOP/s, peak {ch_peak:6.0f} MB)"
                f" | native {nat_ms:9.1f} ms ({nat_gflops:5.0f} GFLOP/s = {nat_gflops / best:4.0%} of sgemm, "
                f"peak {nat_peak:6.0f} MB) | NxN {nxn} ms | x{ch_ms / nat_ms:.2f} | grad rel err {err:.1e}",
                flush=True,
            )
            del X, nat, ch
    if getattr(args, "n100k", False) or args.only_n100k:
        # The 100k case: native only (the chunked version needs ~30 minutes), peak memory is the point.
        n = 100_000
        X = make_rows("spread", n, torch.Generator().manual_seed(n))
        base = _rss_mb("VmRSS")
        _peak_reset()
        t0 = time.perf_counter()
        res = ops.pairwise(X, None, **kw, tile=TILE, impl="native")
        ms = (time.perf_counter() - t0) * 1e3
        peak = _rss_mb("VmHWM") - base
        print(
            f"  spread N=100000: native {ms / 1e3:.1f} s, peak {peak:.0f} MB above the {base:.0f} MB baseline "
            f"(input {X.numel() * 4 / 2**20:.0f} MB); rows without neighbours: {int((res.num_valid == 0).sum())}"
        )
        rows.append(
            {
                "op": "pairwise spread",
                "shape": f"{n}x{DIM}",
                "case": "native only",
                "device": "cpu",
                "dtype": "float32",
                "ref_ms": None,
                "native_ms": ms,
                "speedup": None,
                "native_peak_mb": peak,
                "baseline_rss_mb": base,
            }
        )
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n100k", action="store_true", help="also run N = 100,000 (native only: time, peak memory)")
    parser.add_argument("--only-n100k", action="store_true", help="run only the N = 100,000 case")


def main() -> int:
    return H.bench_main(run, __doc__, add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
