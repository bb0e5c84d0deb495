"""``synthcore plot``: SVG plots of a run directory, ``<outdir>/plots/``.

* every ``stats*.h5``: line charts of its statistics against the iteration (``stats_angles.svg`` shows the
  minimum, mean and maximum inter-identity angle; it should rise over Langevin iterations);
* ``samples.h5``: histograms of inter-identity and intra-identity cosine similarity of the embeddings
  (``similarity*.svg``, numbers in ``similarity.json``). A collection without embeddings gets them computed
  (not stored) from ``--network`` and ``--embedder``.

Plotting only reads the run's data. It takes the writer lock when it is free (and is then recorded in
``run.jsonl``); while another command holds it, it still plots what is there, unrecorded.
"""

import math
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from synthcore.cli.render import HelpFormatter

    p = sub.add_parser(
        "plot",
        help="SVG plots of a run: statistics curves and inter/intra-identity similarity histograms",
        description="Plot a run directory's statistics (stats*.h5) and the similarity of its embeddings "
        "(samples.h5) as SVG files.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--outdir", required=True, help="the run directory to plot (required)")
    p.add_argument("--plots", default=None, help="where to write the SVG files (default: <outdir>/plots)")
    p.add_argument(
        "--network",
        default=None,
        help="generator, only to compute embeddings when samples.h5 has none (default: the recorded one)",
    )
    p.add_argument(
        "--embedder", default=None, help="face-recognition checkpoint, only to compute embeddings samples.h5 lacks"
    )
    p.add_argument("--crop", default="arcface", help="crop preset used with --embedder")
    p.add_argument("--batch", type=int, default=16, help="samples per forward pass when computing embeddings")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (auto: cuda if available)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the identity subsample when there are more than --max-identities"
    )
    p.add_argument(
        "--max-identities",
        type=int,
        default=20000,
        help="inter-identity pairs use at most this many identities (a seeded subsample beyond it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(run=run)


def _compute_embeddings(args, samples: Path):
    import torch

    from synthcore.cli.render import _device, resolve_network
    from synthcore.dataset import SampleCollection
    from synthcore.embedding import prepare
    from synthcore.nets.embedders import load_embedder
    from synthcore.nets.generator_files import load_generator
    from synthcore.progress import Progress

    dev = _device(args.device)
    with SampleCollection.open(samples) as coll:
        G = load_generator(resolve_network(coll.attrs, args.network, False), device=dev).eval()
        E = load_embedder(args.embedder, device=dev)
        crop = None if args.crop == "none" else args.crop
        out = []
        space = coll.w_space
        with torch.no_grad(), Progress(len(coll), "embed", enabled=not args.quiet) as bar:
            for _, block in coll.iter_batches(args.batch, [space]):
                lat = torch.from_numpy(block[space]).to(dev)
                ws = lat.unsqueeze(1).expand(-1, G.num_ws, -1) if space == "w" else lat
                mode = coll.noise_mode if coll.noise_mode != "seeded" else "const"
                out.append(E(prepare(G.synthesis(ws, noise_mode=mode), E.input_size, crop)).float().cpu())
                bar.update(lat.shape[0])
    return torch.cat(out).numpy()


def run(args) -> int:
    from synthcore.cli.identity_common import options_of
    from synthcore.dataset import RunDir, RunDirLocked, SampleCollection
    from synthcore.dataset.plots import plot_run

    if args.max_identities < 2:
        raise ValueError("--max-identities must be at least 2")
    run_dir = RunDir(args.outdir)
    if not run_dir.path.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir.path}")
    plots = Path(args.plots) if args.plots else run_dir.plots_dir
    options = options_of(args)
    embeddings = None
    samples = run_dir.samples_path
    if samples.is_file():
        with SampleCollection.open(samples) as coll:
            lacking = "embedding" not in coll.columns
        if lacking and args.embedder:
            embeddings = _compute_embeddings(args, samples)
        elif lacking and not args.quiet:
            print("samples.h5 has no embeddings: no similarity histograms (give --embedder to compute them)")
    try:
        with run_dir.session("plot", options=options, argv=getattr(args, "argv", None)):
            run_dir.record_start()
            written = plot_run(run_dir.path, plots, args.seed, embeddings, args.max_identities)
    except RunDirLocked as exc:
        print(f"note: {exc}; plotting what is there, unrecorded", file=sys.stderr)
        written = plot_run(run_dir.path, plots, args.seed, embeddings, args.max_identities)
    if not written:
        raise ValueError(f"nothing to plot in {run_dir.path} (no stats*.h5, no samples.h5 with embeddings)")
    if not args.quiet:
        for p in written:
            print(p)
        sim = plots / "similarity.json"
        if sim.is_file():
            import json

            s = json.loads(sim.read_text())
            for k in ("inter", "intra"):
                if s[k]["pairs"]:
                    deg = math.degrees(math.acos(max(-1.0, min(1.0, s[k]["max"] if k == "inter" else s[k]["min"]))))
                    what = "closest pair" if k == "inter" else "farthest pair"
                    print(
                        f"{k}-identity cosine: mean {s[k]['mean']:.3f}, min {s[k]['min']:.3f}, max {s[k]['max']:.3f} "
                        f"over {s[k]['pairs']} pairs ({what} {deg:.1f} deg)"
                    )
    return 0
