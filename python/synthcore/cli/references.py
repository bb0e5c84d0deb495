"""``synthcore references``: sample the reference identities of a run (stage ``references``).

Writes ``<outdir>/samples.h5`` (one ``reference`` sample per identity: w, raw embedding, and z for random /
reject, c for a conditional generator) and ``<outdir>/stats.h5`` (per-iteration statistics of Langevin; per
accepted identity for reject). Langevin checkpoints every ``--checkpoint-every`` steps into
``<outdir>/checkpoints/references/`` and a rerun after a kill resumes from the newest complete checkpoint, giving
exactly the result of an uninterrupted run. A finished stage is not redone unless ``--force``.
"""

import sys

from synthcore.cli.toolkit import UserError, add_command, finite_float, model_file

STAGE = "references"


def add_parser(sub) -> None:
    from synthcore.cli.identity_common import add_common_options, timestep_arg

    p = add_command(
        sub,
        "references",
        help="sample reference identities (Langevin, random or reject) into <outdir>/samples.h5",
        description="Sample the reference identities of a synthetic face dataset. langevin: identities repel "
        "each other in face-recognition space (soft-sphere potential on embedding angles) while a harmonic force "
        "holds their W latents near the generator's mean (defaults: the published 10k-identity run). random: "
        "independent samples. reject: a candidate is kept if it is at least --ict radians from every kept one.",
    )
    p.add_argument("--algorithm", choices=["langevin", "random", "reject"], default="langevin", help="sampler")
    p.add_argument("--num-identities", type=int, default=100, help="number of identities")
    p.add_argument("--truncation-psi", type=finite_float, default=0.7, help="truncation of the initial latents")
    add_common_options(p, batch=16, network_required=True)
    g = p.add_argument_group("langevin")
    g.add_argument("--iterations", type=int, default=100, help="Langevin steps")
    g.add_argument(
        "--repulsion-radius",
        type=finite_float,
        default=None,
        help="r0: identities closer than this repel (default: the embedder's same-person threshold: 1.4 rad for "
        "ArcFace-type embedders, Euclidean 0.6 for dlib-resnet-v1)",
    )
    g.add_argument("--repulsion-strength", type=finite_float, default=1.0, help="k: stiffness of the repulsion")
    g.add_argument(
        "--timestep",
        type=timestep_arg,
        default=None,
        help="a fixed time step, or adaptive: tau * mu * (closest latent pair) / (largest force) (default: adaptive)",
    )
    g.add_argument(
        "--tau",
        type=finite_float,
        default=None,
        help="adaptive step: largest move / closest latent pair (default: 0.3, the published value; the generator "
        "family's where it has its own: 0.05 for the DCGAN)",
    )
    g.add_argument("--viscosity", type=finite_float, default=1.0, help="mu: the step divides the forces by it")
    g.add_argument(
        "--noise", type=finite_float, default=0.01, help="eta: random force scale (noise sqrt(dt)/mu eta xi)"
    )
    g.add_argument(
        "--latent-force", type=finite_float, default=0.1, help="k_l: harmonic pull of W latents towards w_avg"
    )
    g.add_argument(
        "--repel-embeddings",
        default=None,
        help="HDF5 (synthcore embed output, or a samples.h5) or .npy of fixed embeddings, e.g. of real faces, "
        "that the identities are pushed away from (default: none)",
    )
    g.add_argument(
        "--repel-radius",
        type=finite_float,
        default=None,
        help="radius of that repulsion (default: --repulsion-radius)",
    )
    g.add_argument(
        "--single-forward",
        action="store_true",
        help="reuse each step's with-gradient embeddings as the next step's keys: one forward pass less per "
        "identity and step, but a different discretisation (the others are seen one step late)",
    )
    g.add_argument(
        "--hold-graphs",
        type=int,
        default=None,
        help="identities whose autograd graphs may be held in memory at once (default: --batch); when all of them "
        "fit, a step needs one forward pass per identity instead of two, with the same result",
    )
    g.add_argument("--checkpoint-every", type=int, default=10, help="checkpoint period in steps (0: never)")
    g = p.add_argument_group("langevin and reject")
    g.add_argument(
        "--ict",
        type=finite_float,
        default=None,
        help="inter-class threshold: reject's minimum distance; prop_ict statistic (default: the embedder's "
        "same-person threshold: 1.4 rad for ArcFace-type embedders, Euclidean 0.6 for dlib-resnet-v1)",
    )
    g = p.add_argument_group("reject")
    g.add_argument(
        "--max-candidates",
        type=int,
        default=None,
        help="give up after this many candidates (default: 1000 per identity)",
    )
    p.set_defaults(run=run)


def _check(args) -> None:
    from synthcore.cli.identity_common import check_common

    check_common(args)
    if args.num_identities < 1:
        raise UserError(f"--num-identities must be at least 1, got {args.num_identities}")
    if args.algorithm == "langevin" and args.num_identities < 2:
        raise UserError("--algorithm langevin needs at least 2 identities")
    if args.checkpoint_every < 0:
        raise UserError("--checkpoint-every must be >= 0")
    if args.hold_graphs is not None and args.hold_graphs < 0:
        raise UserError("--hold-graphs must be >= 0")
    if args.repel_embeddings is not None and args.algorithm != "langevin":
        raise UserError("--repel-embeddings works with --algorithm langevin only")


def _written_by_this_stage(path) -> bool:
    """Whether samples.h5 holds only what an unfinished references stage wrote (killed before it was marked
    finished), so redoing the stage may replace it."""
    from synthcore.dataset import SampleCollection

    try:
        with SampleCollection.open(path) as coll:
            return set(coll.options) == {"references"}
    except (OSError, ValueError):
        return False


def langevin_config(args, metric=None, family=None):
    """The Langevin settings of ``args``; r0 and ict default to ``metric``'s (the embedder's identity metric,
    ``synthcore.identity.metric``; ArcFace-type until the embedder is loaded), tau to the generator ``family``'s
    ``langevin_defaults`` where it has one, else the published value."""
    from synthcore.identity import LangevinConfig
    from synthcore.identity.metric import identity_metric

    m = identity_metric(None) if metric is None else metric
    own = getattr(family, "langevin_defaults", {})
    tau = args.tau if args.tau is not None else own.get("tau", LangevinConfig.tau)
    return LangevinConfig(
        metric=m.metric,
        num_identities=args.num_identities,
        iterations=args.iterations,
        k=args.repulsion_strength,
        r0=m.r0 if args.repulsion_radius is None else args.repulsion_radius,
        dt=args.timestep,
        tau=tau,
        mu=args.viscosity,
        eta=args.noise,
        k_l=args.latent_force,
        truncation_psi=args.truncation_psi,
        ict=m.ict if args.ict is None else args.ict,
        external_r0=args.repel_radius,
        single_forward=args.single_forward,
        seed=args.seed,
    )


def run(args) -> int:
    import torch

    from synthcore.cli.identity_common import load_pipeline, read_embeddings_file, write_stage_stats
    from synthcore.cli.toolkit import impl_of, options_of
    from synthcore.dataset import RunDir, SampleCollection, StageFinished
    from synthcore.fileio import sha256_file
    from synthcore.identity.langevin import run_langevin
    from synthcore.identity.references import sample_random, sample_reject

    _check(args)
    network, embedder = model_file("--network", args.network), model_file("--embedder", args.embedder)
    cfg = langevin_config(args) if args.algorithm == "langevin" else None
    run_dir = RunDir(args.outdir)
    progress = not args.quiet
    try:
        with run_dir.session("references", options=options_of(args), argv=getattr(args, "argv", None)):
            run_dir.begin_stage(STAGE, force=args.force)
            if run_dir.samples_path.exists() and not args.force and not _written_by_this_stage(run_dir.samples_path):
                raise UserError(
                    f"{run_dir.samples_path} exists but was not made by synthcore references here; "
                    "use --force to replace it"
                )
            if args.force:  # the variations and their renders belong to the old references
                run_dir.clear_stage("variations")
                run_dir.clear_checkpoints("variations")
            pipe, G, dev = load_pipeline(args, network, embedder)
            impl = impl_of(args)
            z = None
            metric = pipe.identity_metric  # r0, ict and the distance follow the embedder
            ict = metric.ict if args.ict is None else args.ict
            if args.algorithm == "langevin":
                cfg = langevin_config(args, metric, pipe.generator)
                external = None
                if args.repel_embeddings is not None:
                    external = torch.from_numpy(read_embeddings_file(args.repel_embeddings))
                ckpt = run_dir.latest_checkpoint(STAGE)
                if ckpt is not None:
                    print(f"resuming Langevin from step {ckpt.step} ({ckpt.path})", file=sys.stderr)

                def checkpoint(step, state):
                    run_dir.save_checkpoint(STAGE, step, state)
                    write_stage_stats(run_dir.stats_path, state["stats"], {"algorithm": "langevin"})

                res = run_langevin(
                    pipe,
                    cfg,
                    batch=args.batch,
                    external=external,
                    state=None if ckpt is None else ckpt.state,
                    checkpoint=checkpoint,
                    checkpoint_every=args.checkpoint_every,
                    impl=impl,
                    progress=progress,
                    hold_graphs=args.hold_graphs,
                )
                w, e, c, stats = res.w, res.embeddings, res.c, res.stats
                settings = {"algorithm": "langevin", **cfg.to_dict()}
            else:
                if args.algorithm == "random":
                    ref = sample_random(
                        pipe, args.num_identities, args.seed, args.truncation_psi, args.batch, progress=progress
                    )
                    settings = {"algorithm": "random"}
                else:
                    ref = sample_reject(
                        pipe,
                        args.num_identities,
                        ict,
                        args.seed,
                        args.truncation_psi,
                        args.batch,
                        args.max_candidates,
                        impl,
                        progress,
                        metric=metric.metric,
                    )
                    settings = {"algorithm": "reject", "ict": ict, "metric": metric.metric}
                settings.update(num_identities=args.num_identities, seed=args.seed, truncation_psi=args.truncation_psi)
                w, e, c, z, stats = ref.w, ref.embeddings, ref.c, ref.z, ref.stats
            settings.update(crop=args.crop, noise_mode=args.noise_mode)
            n = w.shape[0]
            coll = SampleCollection.create(
                run_dir.samples_path,
                w_dim=w.shape[1],
                z_dim=None if z is None else z.shape[1],
                c_dim=None if c is None else c.shape[1],
                embedding_dim=e.shape[1],
                noise_mode=args.noise_mode,
                generator=network,
                embedder=embedder,
                embedder_sha256=sha256_file(embedder),
                options={"references": settings},
                overwrite=True,
            )
            try:
                kw = {"w": w.cpu(), "embedding": e.cpu()}
                if z is not None:
                    kw["z"] = z.cpu()
                if c is not None:
                    kw["c"] = c.cpu()
                coll.append(torch.arange(n), "reference", **kw)
            except BaseException:
                coll.abort()
                raise
            coll.close()
            if stats:
                write_stage_stats(run_dir.stats_path, stats, settings)
            summary = {"identities": n, "algorithm": args.algorithm}
            if args.algorithm == "langevin":
                summary.update(dist_min_first=stats[0]["dist_min"], dist_min_last=stats[-1]["dist_min"])
            run_dir.finish_stage(STAGE, summary)
            run_dir.clear_checkpoints(STAGE)
    except StageFinished as exc:
        print(exc)
        return 0
    msg = f"{run_dir.samples_path}: {n} reference identities ({args.algorithm})"
    if args.algorithm == "langevin":
        what, unit = ("angle", " rad") if cfg.metric == "angle" else ("distance", "")
        msg += (
            f"; minimum inter-identity {what} {stats[0]['dist_min']:.3f} -> {stats[-1]['dist_min']:.3f}{unit}, "
            f"mean {stats[0]['dist_avg']:.3f} -> {stats[-1]['dist_avg']:.3f}{unit} over {cfg.iterations} steps"
        )
    print(msg)
    return 0
