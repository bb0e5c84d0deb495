"""Benchmark one Langevin iteration and one Dispersion iteration: identities per second, batched vs per identity.

Everything an iteration costs is timed: the no-gradient embedding pass, the forward and backward passes through
generator, crop and embedder, the pairwise forces, the time step and the update. The networks are the StyleGAN2
256 configuration (z/w 512, 8 mapping layers, channel_base 16384, channel_max 512) and iResNet-50, both with random
weights (cost does not depend on the values), FFHQ-frame ``arcface`` crop to 112x112.

- ``batched``: synthcore, native ops, one backward per batch of ``--lang-batch`` rows: "one pass" holds the
  autograd graphs of all N identities, so the with-gradient forwards also give the keys (``hold_graphs``);
  "two passes" runs a no-gradient pass for the keys first (what runs when the graphs do not fit in memory);
- ``per-identity``: the published code's structure with reference (pure torch) ops: the no-gradient pass batched
  (all N at once; the published default ``--batch-size`` is 8), then one forward+backward per identity (batch 1)
  for Langevin; one identity's variations per batch for Dispersion;
- ``batched single-forward``: the opt-in Langevin variant that reuses the with-gradient embeddings (informational).

Before timing, the batched and per-identity iterations are checked to give the same latents (same maths).

    python benchmarks/bench_langevin.py [--lang-identities 8] [--lang-variations 4] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

import _harness as H


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("langevin options")
    g.add_argument("--lang-identities", type=int, default=8, help="Langevin identities per iteration (default: 8)")
    g.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="leave glibc's allocator as it is (by default it is tuned as the synthcore commands tune it, for both "
        "cases: see synthcore/allocator.py)",
    )
    g.add_argument(
        "--lang-variations", type=int, default=4, help="Dispersion variations per identity (default: 4; 2 identities)"
    )
    g.add_argument(
        "--lang-batch",
        type=int,
        default=None,
        help="rows per forward/backward of the batched runs (default: all identities; on CPU the pipeline still "
        "splits generator calls into its fastest chunk, 2 rows at 256, see FacePipeline.generator_batch)",
    )
    g.add_argument("--lang-arch", default="iresnet50", help="embedder architecture (default: iresnet50)")
    g.add_argument("--lang-res", type=int, default=256, help="generator resolution (default: 256)")


def build_networks(resolution: int, arch: str, device: torch.device):
    """The StyleGAN2 config of ``resolution`` (256: channel_base 16384) and an embedder, random weights."""
    from synthcore.nets.embedders import build_embedder
    from synthcore.nets.stylegan2 import Generator

    base = 16384 if resolution <= 256 else 32768
    G = Generator(
        z_dim=512, w_dim=512, img_resolution=resolution, mapping_kwargs={"num_layers": 8}, channel_base=base,
        channel_max=512, seed=0,
    )  # fmt: skip
    G = G.to(device).eval().requires_grad_(False)
    with torch.no_grad():  # a trained generator tracks the mean latent; give the random one the same
        z = torch.randn(512, 512, generator=torch.Generator().manual_seed(0)).to(device)
        G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(0))
    torch.manual_seed(0)
    E = build_embedder(arch).requires_grad_(False)
    for m in E.modules():  # spread the untrained BatchNorm statistics, as bench_embedder does
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    return G, E.to(device=device, memory_format=torch.channels_last)


def _rate_row(op: str, case: str, n: int, stats: dict[str, Any], s: H.Settings, shape: str) -> dict[str, Any]:
    ms = stats["median_ms"]
    row = {
        "op": op,
        "case": case,
        "shape": shape,
        "device": s.device.type,
        "dtype": "float32",
        "median_ms": ms,
        "identities_per_s": n / (ms / 1e3),
        "timing": stats,
    }
    print(f"  {op} {case}: {ms / 1e3:.2f} s, {row['identities_per_s']:.3f} identities/s", file=sys.stderr, flush=True)
    return row


def _check(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    scale = float(b.abs().max())
    err = float((a - b).abs().max())
    if not err <= 1e-3 * scale:
        raise H.MismatchError(f"{what}: batched and per-identity latents differ (max abs err {err:.3g})")
    return err


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = H.configure(args)
    from synthcore.allocator import tune_allocator

    # Measure the pipeline the way the commands run it (they tune the allocator at start); both cases share it.
    tuned = False if args.no_malloc_tuning else tune_allocator()
    print(f"allocator tuning: {'on' if tuned else 'off'}", file=sys.stderr)
    from synthcore.identity import FacePipeline
    from synthcore.identity.dispersion import DispersionConfig, dispersion_iteration, initial_variations
    from synthcore.identity.langevin import LangevinConfig, initial_latents, langevin_iteration

    n = min(args.lang_identities, 4) if s.quick else args.lang_identities
    a = min(args.lang_variations, 2) if s.quick else args.lang_variations
    timing = {"warmup": 1, "repeats": 2 if s.quick else 3, "min_runs": 2 if s.quick else 3, "min_time_s": 0.0}
    timing["max_time_s"] = 1e9  # iterations take seconds: the run count is fixed, not adapted
    G, E = build_networks(args.lang_res, args.lang_arch, s.device)
    native = FacePipeline(G, E, crop="arcface")
    reference = FacePipeline(G, E, crop="arcface", impl="reference")
    shape = f"{args.lang_res}px+{args.lang_arch}"
    rows: list[dict[str, Any]] = []

    # Langevin: N identities, one step.
    cfg = LangevinConfig(num_identities=n, seed=0)
    _, _, w = initial_latents(native, n, 0, cfg.truncation_psi)
    b = args.lang_batch or n
    keys = native.embed_batched(w, b)
    fns = {
        f"batched one pass (batch {b}, {n} graphs held)": lambda: langevin_iteration(
            native, w, 0, cfg, batch=b, hold_graphs=n
        )[0],
        f"batched two passes (batch {b})": lambda: langevin_iteration(native, w, 0, cfg, batch=b, hold_graphs=0)[0],
        "per-identity": lambda: langevin_iteration(reference, w, 0, cfg, batch=n, per_identity=True, impl="reference")[
            0
        ],
        # A steady-state step: the keys come from the previous step's with-gradient pass.
        f"single-forward (batch {b})": lambda: langevin_iteration(
            native, w, 1, LangevinConfig(num_identities=n, seed=0, single_forward=True), batch=b, keys=keys
        )[0],
    }
    names = list(fns)
    reference_w = fns["per-identity"]()
    err = max(_check(fns[k](), reference_w, "langevin") for k in names[:2])
    stats = H.time_fns(fns, device=s.device, **timing)
    lang_rows = [_rate_row("langevin iteration", case, n, stats[case], s, shape) for case in fns]
    base = lang_rows[2]["median_ms"]
    for r in lang_rows[:2]:
        r["speedup"], r["ref_ms"], r["native_ms"] = base / r["median_ms"], base, r["median_ms"]
    # A different discretisation: its ratio is shown, but kept out of the speed-up figures.
    lang_rows[3]["note"] = f"{base / lang_rows[3]['median_ms']:.2f}x the per-identity loop (other discretisation)"
    lang_rows[0]["max_abs_err"] = err
    rows += lang_rows

    # Dispersion: 2 identities x A variations, one step.
    nd = 2
    dcfg = DispersionConfig(num_variations=a, seed=0)
    w_ref = w[:nd]
    with torch.no_grad():
        e_ref = native.embed(w_ref)
    ids = torch.arange(nd)
    wv = initial_variations(w_ref, ids, dcfg)
    dfns = {
        "batched": lambda: dispersion_iteration(native, wv, 0, dcfg, e_ref, ids, batch=b)[0],
        "per-identity": lambda: dispersion_iteration(
            reference, wv, 0, dcfg, e_ref, ids, batch=nd * a, per_identity=True, impl="reference"
        )[0],
    }
    derr = _check(dfns["batched"](), dfns["per-identity"](), "dispersion")
    dstats = H.time_fns(dfns, device=s.device, **timing)
    disp_rows = [_rate_row(f"dispersion iteration (x{a} variations)", c, nd, dstats[c], s, shape) for c in dfns]
    base = disp_rows[1]["median_ms"]
    disp_rows[0].update(speedup=base / disp_rows[0]["median_ms"], ref_ms=base, native_ms=disp_rows[0]["median_ms"])
    disp_rows[0]["max_abs_err"] = derr
    rows += disp_rows
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    header = f"{'op':40s} {'case':28s} {'shape':18s} {'median s':>9s} {'ids/s':>8s} {'speed-up':>9s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") else r.get("note", "")
        print(
            f"{r['op']:40s} {r['case']:28s} {r['shape']:18s} {r['median_ms'] / 1e3:9.2f} "
            f"{r['identities_per_s']:8.3f} {sp:>9s}"
        )


def main(argv: list[str] | None = None) -> int:
    return H.bench_main(run, __doc__, add_arguments, argv, print_rows=print_rows)


if __name__ == "__main__":
    raise SystemExit(main())
