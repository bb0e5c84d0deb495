"""``synthcore demo``: the whole identity-dataset pipeline on built-in, randomly initialised networks.

No files are needed. The demo writes a small random StyleGAN2 generator and a random iResNet-18 into
``<outdir>/networks/`` and runs the real commands on them, in one run directory: ``references`` (Langevin),
``variations`` (Dispersion), ``render`` and ``plot``. The networks are untrained, so the images are not faces and
the "identities" mean nothing: the demo shows the machinery (repulsion in embedding space, variations, the run
directory, resume, images, statistics and plots), not a dataset. Real runs pass ``--network`` and ``--embedder``.
It also checks each native kernel against its pure-torch reference.
"""

import io
import json
import time
from pathlib import Path
from typing import List

from synthcore.imageio import write_atomic

NOTICE = (
    "NOTE: the demo's generator and face-recognition network are RANDOMLY INITIALISED (no weights are shipped or "
    "downloaded).\n      Its images are NOT faces and its identities mean nothing: it runs the pipeline end to end "
    "to show the machinery.\n      For a real dataset pass a trained generator and embedder: synthcore references "
    "--network G.pkl --embedder backbone.pth ..."
)


def add_parser(sub) -> None:
    from synthcore.cli.render import HelpFormatter

    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on built-in random networks (no files needed; the images are not faces)",
        description=__doc__.split("\n\n")[1],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--outdir", default="synthcore-demo", help="the run directory to write")
    p.add_argument("--identities", type=int, default=64, help="reference identities (Langevin)")
    p.add_argument("--variations", type=int, default=8, help="variations per identity (Dispersion)")
    p.add_argument("--langevin-iterations", type=int, default=16, help="Langevin steps")
    p.add_argument("--dispersion-iterations", type=int, default=2, help="Dispersion steps")
    p.add_argument("--resolution", type=int, default=64, help="generator resolution (a power of two >= 8)")
    p.add_argument("--batch", type=int, default=64, help="samples per forward/backward pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (auto: cuda if available)")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks and of every random draw")
    p.add_argument("--force", action="store_true", help="redo every stage of an existing demo directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def build_networks(outdir: Path, resolution: int, seed: int):
    """Write the demo's random generator and embedder files (reused if present); returns their paths."""
    import torch

    from synthcore.nets.embedders import build_embedder
    from synthcore.nets.generator_files import save_generator
    from synthcore.nets.stylegan2 import Generator

    folder = outdir / "networks"
    folder.mkdir(parents=True, exist_ok=True)
    gpath, epath = folder / "generator.pt", folder / "embedder.pth"
    if not gpath.is_file():
        G = Generator(
            z_dim=128, w_dim=128, img_resolution=resolution, mapping_kwargs={"num_layers": 2}, channel_base=2048,
            channel_max=128, seed=seed,
        )  # fmt: skip
        with torch.no_grad():  # a trained generator tracks its mean latent; give the random one the same
            z = torch.randn(1024, 128, generator=torch.Generator().manual_seed(seed))
            G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(0))
        save_generator(G.eval(), gpath, metadata={"note": "synthcore demo: random weights, not a face generator"})
    if not epath.is_file():
        torch.manual_seed(seed)
        E = build_embedder("iresnet18")
        # Untrained BatchNorm statistics make every unit near-identity; spread them like a trained network's.
        gen = torch.Generator().manual_seed(seed)
        for m in E.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
        buf = io.BytesIO()
        torch.save({k: v.contiguous() for k, v in E.backbone.state_dict().items()}, buf)
        write_atomic(epath, buf.getvalue())
    return gpath, epath


def kernel_check(device: str) -> List[str]:
    """Each native kernel against its pure-torch reference on small random inputs: lines to print."""
    import torch

    from synthcore import ops
    from synthcore._native import is_built

    if not is_built():
        return ["native kernels: NOT BUILT (the pure-torch references are used)"]
    from synthcore.cli.render import _device

    dev = _device(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 16, 16, generator=g).to(dev)
    f = ops.setup_filter([1, 3, 3, 1], device=dev)
    e = torch.randn(300, 64, generator=g).to(dev)
    w = torch.randn(300, 32, generator=g).to(dev)
    checks = {
        "upfirdn2d (2x up)": lambda impl: ops.upsample2d(x, f, impl=impl),
        "bias_act (lrelu, clamp)": lambda impl: ops.bias_act(x * 3, None, act="lrelu", clamp=1.5, impl=impl),
        "pairwise (angle forces)": lambda impl: ops.pairwise(e, r0=1.4, exclude_self=True, impl=impl).grad,
        "langevin_update": lambda impl: ops.langevin_update(w, w, None, dt=0.1, eta=0.1, seed=1, step=2, impl=impl),
    }
    lines = []
    for name, fn in checks.items():
        diff = float((fn("native") - fn("reference")).abs().max())
        lines.append(f"  {name:26s} max |native - reference| = {diff:.1e}  {'ok' if diff < 1e-4 else 'MISMATCH'}")
    return lines


def run(args) -> int:
    import torch

    from synthcore.cli.main import main as synthcore
    from synthcore.dataset import RunDir, read_stats

    if args.identities < 2 or args.variations < 1 or args.langevin_iterations < 1 or args.dispersion_iterations < 0:
        raise ValueError("the demo needs >= 2 identities, >= 1 variation and >= 1 Langevin iteration")
    if args.resolution < 8 or args.resolution & (args.resolution - 1):
        raise ValueError(f"--resolution must be a power of two >= 8, got {args.resolution}")
    out = Path(args.outdir)
    print(NOTICE, flush=True)
    t_all = time.perf_counter()
    gpath, epath = build_networks(out, args.resolution, args.seed)
    common = ["--outdir", str(out), "--device", args.device, "--batch", str(args.batch)]
    common += ["--quiet"] if args.quiet else []
    common += ["--force"] if args.force else []
    seed = ["--seed", str(args.seed)]
    nets = ["--network", str(gpath), "--embedder", str(epath)]
    steps = [
        (
            "references",
            ["references", *nets, *common, *seed, "--num-identities", str(args.identities), "--iterations",
             str(args.langevin_iterations), "--checkpoint-every", "5"],
        ),
        (
            "variations",
            ["variations", *common, *seed, "--num-variations", str(args.variations), "--iterations",
             str(args.dispersion_iterations)],
        ),
        ("render", ["render", *common]),
        ("plot", ["plot", "--outdir", str(out), *(["--quiet"] if args.quiet else [])]),
    ]  # fmt: skip
    timings = {}
    for name, argv in steps:
        print(f"\n$ synthcore {' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        rc = synthcore(argv)
        timings[name] = round(time.perf_counter() - t0, 2)
        if rc != 0:
            print(f"demo: step '{name}' failed (exit status {rc})")
            return rc
    print("\nnative kernels against the pure-torch references:")
    checks = kernel_check(args.device)
    print("\n".join(checks))

    stats = read_stats(out / "stats.h5", ["dist_min", "dist_avg"])
    first, last = float(stats["dist_min"][0]), float(stats["dist_min"][-1])
    report = {
        "notice": "random networks: the images are not faces",
        "identities": args.identities,
        "variations": args.variations,
        "langevin_min_angle_first_rad": first,
        "langevin_min_angle_last_rad": last,
        "langevin_mean_angle_first_rad": float(stats["dist_avg"][0]),
        "langevin_mean_angle_last_rad": float(stats["dist_avg"][-1]),
        "seconds": {**timings, "total": round(time.perf_counter() - t_all, 2)},
        "torch_threads": torch.get_num_threads(),
        "kernel_check": checks,
        "stages": sorted(RunDir(out).finished_stages()),
    }
    write_atomic(out / "report.json", json.dumps(report, indent=2).encode())
    print(
        f"\nLangevin raised the minimum angle between identities from {first:.3f} to {last:.3f} rad "
        f"(plot: {out / 'plots' / 'stats_angles.svg'})."
    )
    print(f"run directory: {out}/ (samples.h5, stats.h5, stats_variations.h5, images_arcface/, plots/, run.jsonl)")
    print(f"total {report['seconds']['total']:.0f} s; report: {out / 'report.json'}")
    print("\n" + NOTICE)
    bad = [c for c in checks if "MISMATCH" in c]
    return 1 if bad else 0
