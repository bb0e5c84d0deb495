"""``synthcore variations``: variations of every reference identity of a run (stage ``variations``).

Reads the ``reference`` samples of ``<outdir>/samples.h5``, runs Dispersion (or DisCo), and rewrites
``samples.h5`` atomically with the references followed by ``augmentation_<a>`` samples for each identity (w, raw
embedding, the reference's c; z is NaN for variations of random/reject references, which have a z column).
Statistics go to ``<outdir>/stats_variations.h5``. Checkpoints every ``--checkpoint-every`` steps into
``<outdir>/checkpoints/variations/``; a rerun after a kill resumes bit-exactly. A finished stage is not redone
unless ``--force``.
"""

import math
import sys
from pathlib import Path

from synthcore.cli.toolkit import UserError, add_command, finite_float

STAGE = "variations"
STATS_NAME = "stats_variations.h5"


def add_parser(sub) -> None:
    from synthcore.cli.identity_common import add_common_options, timestep_arg
    from synthcore.identity.dispersion import DispersionConfig

    d = DispersionConfig()
    p = add_command(
        sub,
        "variations",
        help="make variations of each reference identity (Dispersion or DisCo) in <outdir>/samples.h5",
        description="Spread A variations around each reference identity: they are pulled back to the reference "
        "embedding through generator and embedder while repelling each other in W (defaults: the published "
        "10k x 64 run). disco also starts them at random combinations of latent directions (pose, illumination, "
        "expressions) read from --directions.",
    )
    p.add_argument("--algorithm", choices=["dispersion", "disco"], default="dispersion", help="variation sampler")
    p.add_argument("--num-variations", type=int, default=d.num_variations, help="A: variations per identity")
    p.add_argument("--iterations", type=int, default=d.iterations, help="steps")
    add_common_options(p, batch=64, network_required=False)
    p.add_argument(
        "--ignore-hash", action="store_true", help="accept --network/--embedder files other than the recorded ones"
    )
    g = p.add_argument_group("dispersion")
    g.add_argument(
        "--embedding-force", type=finite_float, default=d.k_e, help="k_e: pull back to the reference embedding"
    )
    g.add_argument("--latent-repulsion", type=finite_float, default=d.k_w, help="k_w: repulsion among variations in W")
    g.add_argument(
        "--latent-radius",
        type=finite_float,
        default=None,
        help=f"r_w: W-space L2 radius of that repulsion (default: {d.r_w:g}, the published value for StyleGAN2's W; "
        "the generator family's where it has its own: 4 for the DCGAN)",
    )
    g.add_argument("--global-force", type=finite_float, default=d.k_g, help="k_g: harmonic pull towards w_avg")
    g.add_argument(
        "--noise",
        type=finite_float,
        default=d.eta,
        help=f"eta: random force scale, noise sqrt(dt)/mu eta xi (default: {d.eta:.4f} = 0.05 sqrt(0.05), the "
        "published runs' noise per step at dt 0.05)",
    )
    g.add_argument("--viscosity", type=finite_float, default=d.mu, help="mu: the step divides the forces by it")
    g.add_argument(
        "--timestep",
        type=timestep_arg,
        default=d.dt,
        help="a fixed time step, or adaptive (per identity: tau * mu * closest pair / largest force)",
    )
    g.add_argument("--tau", type=finite_float, default=d.tau, help="adaptive step fraction")
    g.add_argument(
        "--initial-noise", type=finite_float, default=d.sigma0, help="sigma0: initial spread around the reference"
    )
    g.add_argument(
        "--ict",
        type=finite_float,
        default=None,
        help="threshold of the prop_ict statistic (default: the embedder's same-person threshold: 1.4 rad for "
        "ArcFace-type embedders, Euclidean 0.6 for dlib-resnet-v1)",
    )
    g.add_argument("--checkpoint-every", type=int, default=5, help="checkpoint period in steps (0: never)")
    g = p.add_argument_group("disco")
    g.add_argument(
        "--directions",
        default=None,
        help="latent-directions file (synthcore.latent_directions HDF5, see docs/ARCHITECTURE.md); required for disco",
    )
    g.add_argument("--pose-scale", type=finite_float, default=1.0, help="scale of pose directions")
    g.add_argument("--illumination-scale", type=finite_float, default=1.0, help="scale of illumination directions")
    g.add_argument("--expression-scale", type=finite_float, default=1.0, help="scale of expression directions")
    p.set_defaults(run=run)


def dispersion_config(args, metric=None, family=None):
    """The Dispersion settings of ``args``; the identity distance and ict follow ``metric`` (the embedder's,
    ``synthcore.identity.metric``; ArcFace-type until the embedder is loaded), r_w the generator ``family``'s
    ``dispersion_defaults`` where it has one, else the published value."""
    from synthcore.identity.dispersion import DispersionConfig
    from synthcore.identity.metric import identity_metric

    m = identity_metric(None) if metric is None else metric
    own = getattr(family, "dispersion_defaults", {})
    r_w = args.latent_radius if args.latent_radius is not None else own.get("r_w", DispersionConfig.r_w)
    return DispersionConfig(
        metric=m.metric,
        num_variations=args.num_variations,
        iterations=args.iterations,
        k_e=args.embedding_force,
        k_w=args.latent_repulsion,
        r_w=r_w,
        k_g=args.global_force,
        eta=args.noise,
        mu=args.viscosity,
        dt=args.timestep,
        tau=args.tau,
        sigma0=args.initial_noise,
        ict=m.ict if args.ict is None else args.ict,
        disco=args.algorithm == "disco",
        pose_scale=args.pose_scale,
        illumination_scale=args.illumination_scale,
        expression_scale=args.expression_scale,
        seed=args.seed,
    )


def _read_references(coll):
    import numpy as np

    data = coll.read()
    ref = np.flatnonzero(data["label"] == "reference")
    if ref.size == 0:
        raise ValueError(f"{coll.path} holds no 'reference' samples (run synthcore references first)")
    if coll.w_space != "w":
        raise ValueError(f"{coll.path} stores per-layer latents (w_plus); variations need single W latents")
    return data, ref


def run(args) -> int:
    import numpy as np
    import torch

    from synthcore.cli.identity_common import check_common, load_pipeline, resolve_file, write_stage_stats
    from synthcore.cli.toolkit import impl_of, options_of
    from synthcore.dataset import RunDir, SampleCollection, StageFinished
    from synthcore.identity.directions import disco_offsets, read_directions
    from synthcore.identity.dispersion import run_dispersion, variation_labels

    check_common(args)
    if args.checkpoint_every < 0:
        raise UserError("--checkpoint-every must be >= 0")
    if (args.algorithm == "disco") != (args.directions is not None):
        raise UserError(
            "--algorithm disco needs --directions"
            if args.directions is None
            else "--directions needs --algorithm disco"
        )
    cfg = dispersion_config(args)
    run_dir = RunDir(args.outdir)
    if not run_dir.samples_path.is_file():
        raise UserError(f"no {run_dir.samples_path}: run synthcore references --outdir {args.outdir} first")
    try:
        with run_dir.session("variations", options=options_of(args), argv=getattr(args, "argv", None)):
            if not run_dir.is_finished("references"):
                raise UserError(f"the references stage of {run_dir.path} has not finished; finish it first")
            run_dir.begin_stage(STAGE, force=args.force)
            with SampleCollection.open(run_dir.samples_path) as coll:
                attrs, data, ref = coll.attrs, *_read_references(coll)
                columns = coll.columns
                options = coll.options
            network = resolve_file(
                "network", args.network, attrs["generator"], attrs["generator_sha256"], args.ignore_hash
            )
            embedder = resolve_file(
                "embedder", args.embedder, attrs["embedder"], attrs["embedder_sha256"], args.ignore_hash
            )
            pipe, G, dev = load_pipeline(args, network, embedder)
            cfg = dispersion_config(args, pipe.identity_metric, pipe.generator)  # distance, ict: the embedder's
            impl = impl_of(args)
            ids = torch.from_numpy(data["identity"][ref].astype(np.int64))
            w_ref = torch.from_numpy(data["w"][ref])
            if "embedding" in columns:
                e_ref = torch.from_numpy(data["embedding"][ref])
            else:
                print("samples.h5 has no embeddings: computing the references' embeddings", file=sys.stderr)
                e_ref = pipe.embed_batched(w_ref.to(dev), args.batch).cpu()
            directions = None
            if cfg.disco:
                directions = disco_offsets(read_directions(args.directions, w_dim=pipe.w_dim), cfg.scales)
            ckpt = run_dir.latest_checkpoint(STAGE)
            if ckpt is not None:
                print(f"resuming {args.algorithm} from step {ckpt.step} ({ckpt.path})", file=sys.stderr)
            stats_path = run_dir.path / STATS_NAME

            def checkpoint(step, state):
                run_dir.save_checkpoint(STAGE, step, state)
                write_stage_stats(stats_path, state["stats"], {"algorithm": args.algorithm})

            res = run_dispersion(
                pipe,
                cfg,
                w_ref,
                e_ref,
                identity_ids=ids,
                directions=directions,
                batch=args.batch,
                state=None if ckpt is None else ckpt.state,
                checkpoint=checkpoint,
                checkpoint_every=args.checkpoint_every,
                impl=impl,
                progress=not args.quiet,
            )
            settings = {"algorithm": args.algorithm, **cfg.to_dict()}
            if args.directions:
                settings["directions"] = str(Path(args.directions).resolve())
            # Rewrite samples.h5: the references as they were, then the variations (atomic: temp file + rename).
            out = SampleCollection.create(
                run_dir.samples_path,
                w_dim=pipe.w_dim,
                z_dim=data["z"].shape[1] if "z" in columns else None,
                c_dim=data["c"].shape[1] if "c" in columns else None,
                embedding_dim=res.embeddings.shape[1],
                noise_mode=args.noise_mode,
                generator=network,
                generator_sha256=attrs["generator_sha256"] if network == Path(attrs["generator"]) else None,
                embedder=embedder,
                embedder_sha256=attrs["embedder_sha256"] if embedder == Path(attrs["embedder"]) else None,
                options={**{k: v for k, v in options.items() if k != "variations"}, "variations": settings},
                overwrite=True,
            )
            try:
                kw = {"w": data["w"][ref], "embedding": e_ref.numpy()}
                for col in ("z", "c"):
                    if col in columns:
                        kw[col] = data[col][ref]
                out.append(data["identity"][ref], list(data["label"][ref]), **kw)
                rows = res.w.shape[0]
                kw = {"w": res.w.cpu(), "embedding": res.embeddings.cpu()}
                if "z" in columns:
                    kw["z"] = np.full((rows, data["z"].shape[1]), np.nan, dtype=np.float32)
                if "c" in columns:
                    pos = {int(i): k for k, i in enumerate(data["identity"][ref].tolist())}
                    kw["c"] = data["c"][ref][[pos[int(i)] for i in res.identity.tolist()]]
                out.append(res.identity.numpy(), variation_labels(res.variation), **kw)
            except BaseException:
                out.abort()
                raise
            out.close()
            write_stage_stats(stats_path, res.stats, settings)
            last = res.stats[-1]
            run_dir.finish_stage(
                STAGE,
                {"identities": len(ref), "variations": cfg.num_variations, "refd_avg_last": last["refd_avg"]},
            )
            run_dir.clear_checkpoints(STAGE)
    except StageFinished as exc:
        print(exc)
        return 0
    refd = last["refd_avg"]
    what, unit = ("angle", " rad") if cfg.metric == "angle" else ("distance", "")
    print(
        f"{run_dir.samples_path}: {len(ref)} identities x {cfg.num_variations} variations ({args.algorithm}); "
        f"mean {what} to the reference {refd:.3f}{unit}"
        + ("" if math.isnan(last["dist_avg"]) else f", mean intra-identity {what} {last['dist_avg']:.3f}{unit}")
    )
    return 0
