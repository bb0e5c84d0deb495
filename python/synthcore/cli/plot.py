"""``synthcore plot``: plots of a run directory, ``<outdir>/plots/``, drawn with matplotlib: PNG by default
(for looking), ``--format svg`` or ``pdf`` for papers.

* every ``stats*.h5``: line charts of its statistics against the iteration (``stats_angles.png`` shows the
  minimum, mean and maximum inter-identity angle; it should rise over Langevin iterations); each chart's caption
  explains the statistics on it;
* ``samples.h5``: histograms of inter-identity and intra-identity cosine similarity of the embeddings (Euclidean
  distance for runs whose embedder compares by distance, like dlib's)
  (``similarity*.png``, numbers in ``similarity.json``). A collection without embeddings gets them computed
  (not stored) from ``--network`` and ``--embedder``.

Plotting only reads the run's data. It takes the writer lock when it is free (and is then recorded in
``run.jsonl``); while another command holds it, it still plots what is there, unrecorded.
"""

import math
import sys
from pathlib import Path

from synthcore.cli import toolkit


def add_parser(sub) -> None:
    p = toolkit.add_command(
        sub,
        "plot",
        help="plots of a run (PNG, SVG or PDF): statistics curves and inter/intra-identity similarity histograms",
        description="Plot a run directory's statistics (stats*.h5) and the similarity of its embeddings "
        "(samples.h5) with matplotlib: PNG files by default, SVG or PDF with --format.",
    )
    p.add_argument("--outdir", required=True, help="the run directory to plot (required)")
    p.add_argument("--plots", default=None, help="where to write the plot files (default: <outdir>/plots)")
    p.add_argument(
        "--format",
        choices=("png", "svg", "pdf"),
        default="png",
        help="file format of the plots: png for looking, svg or pdf (vector) for papers",
    )
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
    toolkit.add_device_option(p)
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the identity subsample when there are more than --max-identities"
    )
    p.add_argument(
        "--max-identities",
        type=int,
        default=20000,
        help="inter-identity pairs use at most this many identities (a seeded subsample beyond it)",
    )
    p.set_defaults(run=run)


def _compute_embeddings(args, samples: Path):
    import torch

    from synthcore.dataset import SampleCollection
    from synthcore.embedding import prepare
    from synthcore.nets.embedders import load_embedder
    from synthcore.nets.generators import load_generator
    from synthcore.progress import Progress

    dev = toolkit.resolve_device(args.device)
    with SampleCollection.open(samples) as coll:
        network = toolkit.samples_generator(coll.attrs, args.network, False)
        G = load_generator(network, device=dev).eval()
        E = load_embedder(toolkit.model_file("--embedder", args.embedder), device=dev)
        crop = toolkit.crop_of(args.crop)
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
    from synthcore.dataset import RunDir, RunDirLocked, SampleCollection
    from synthcore.dataset.plots import plot_run

    toolkit.check_at_least("--max-identities", args.max_identities, 2)
    toolkit.check_at_least("--batch", args.batch, 1)
    run_dir = RunDir(args.outdir)
    if not run_dir.path.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir.path}")
    plots = Path(args.plots) if args.plots else run_dir.plots_dir
    options = toolkit.options_of(args)
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
            written = plot_run(run_dir.path, plots, args.seed, embeddings, args.max_identities, args.format)
    except RunDirLocked as exc:
        print(f"note: {exc}; plotting what is there, unrecorded", file=sys.stderr)
        written = plot_run(run_dir.path, plots, args.seed, embeddings, args.max_identities, args.format)
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
                if s[k]["pairs"] and s[k].get("metric") == "euclidean":
                    print(
                        f"{k}-identity distance: mean {s[k]['mean']:.3f}, min {s[k]['min']:.3f}, "
                        f"max {s[k]['max']:.3f} over {s[k]['pairs']} pairs"
                    )
                elif s[k]["pairs"]:
                    deg = math.degrees(math.acos(max(-1.0, min(1.0, s[k]["max"] if k == "inter" else s[k]["min"]))))
                    what = "closest pair" if k == "inter" else "farthest pair"
                    print(
                        f"{k}-identity cosine: mean {s[k]['mean']:.3f}, min {s[k]['min']:.3f}, max {s[k]['max']:.3f} "
                        f"over {s[k]['pairs']} pairs ({what} {deg:.1f} deg)"
                    )
    return 0
