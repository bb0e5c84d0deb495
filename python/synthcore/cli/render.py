"""``synthcore render``: images of a run's samples, ``<outdir>/images_<crop>/<identity:05d>/<label>.png``.

The render is a stage of the run directory (``render_<crop>``): it takes the writer lock, is recorded in
``run.jsonl``, skips images that already exist (an interrupted render resumes), and once finished a rerun says
so and changes nothing unless ``--force`` (which re-renders every image). If ``samples.h5`` changed since the
render finished, the render runs again over all samples.
"""

import sys
from pathlib import Path
from typing import Optional

import numpy as np

from synthcore.cli.toolkit import (
    UserError,
    add_command,
    add_device_option,
    add_impl_option,
    check_at_least,
    crop_of,
    impl_of,
    model_file,
    options_of,
    resolve_device,
    samples_generator,
)


def add_parser(sub) -> None:
    p = add_command(
        sub,
        "render",
        help="render a run's samples to images (images_<crop>/<identity>/<label>.png), optionally an NVlabs zip",
        description="Render the samples of a run directory with the generator they were made with, crop them "
        "to a preset, and write images_<crop>/<identity:05d>/<label>.png (skipping images that exist).",
    )
    p.add_argument(
        "--outdir", required=True, help="the run directory (required; holds samples.h5; images are written here)"
    )
    p.add_argument("--samples", default=None, help="sample collection to render (default: <outdir>/samples.h5)")
    p.add_argument(
        "--network",
        default=None,
        help="generator (.pkl snapshot or synthcore .pt/.safetensors; default: the one recorded in the "
        "collection, checked by SHA-256)",
    )
    p.add_argument(
        "--embedder",
        default=None,
        help="optional check: embed the written images with this face-recognition checkpoint and report their "
        "cosine similarity to the stored embeddings",
    )
    p.add_argument(
        "--crop",
        default="arcface",
        help="fixed-crop preset for FFHQ-aligned generator frames (arcface, iresnet_bob, psp, ...; list in "
        "synthcore.align.CROP_PRESETS), or none for the full frame",
    )
    p.add_argument(
        "--noise-mode",
        choices=["stored", "const", "none", "random"],
        default="stored",
        help="synthesis noise: stored = what the collection says (const unless it stores per-sample seeds); "
        "random = new noise per sample, seeded from --seed and the row",
    )
    p.add_argument("--batch", type=int, default=16, help="samples per synthesis call")
    add_device_option(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the noise with --noise-mode random (else unused)")
    add_impl_option(p)
    p.add_argument(
        "--zip",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="also write an NVlabs-style dataset zip with dataset.json (identity as class); PATH defaults to "
        "<outdir>/images_<crop>.zip",
    )
    p.add_argument(
        "--ignore-hash",
        action="store_true",
        help="render with a --network whose SHA-256 differs from the one recorded in the collection",
    )
    p.add_argument("--force", action="store_true", help="re-render every image, even if the render finished")
    p.set_defaults(run=run)


class _EmbeddingCheck:
    """Embeds rendered pixels and compares them with the stored embeddings (cosine per sample)."""

    def __init__(self, embedder_path: str, collection, crop: Optional[str], device) -> None:
        from synthcore.nets.embedders import load_embedder

        if "embedding" not in collection.columns:
            raise ValueError("--embedder checks against stored embeddings, but the collection has none")
        if crop is None:
            raise ValueError("--embedder needs --crop to be a recognition crop (e.g. arcface), not none")
        self.embedder = load_embedder(model_file("--embedder", embedder_path), device=device)
        self.collection = collection
        self.device = device
        self.cos = []

    def __call__(self, rows: np.ndarray, pixels: np.ndarray) -> None:
        import torch

        from synthcore.embedding import from_uint8

        with torch.no_grad():
            got = self.embedder(from_uint8(pixels).to(self.device)).float().cpu()
        want = torch.from_numpy(self.collection.read(rows, ["embedding"])["embedding"])
        self.cos.append(torch.nn.functional.cosine_similarity(got, want, dim=1).numpy())


def run(args) -> int:

    from synthcore.dataset import RunDir, SampleCollection, StageFinished, render_collection, write_dataset_zip
    from synthcore.dataset.render import crop_name
    from synthcore.nets.generators import load_generator

    check_at_least("--batch", args.batch, 1)
    crop = crop_of(args.crop)
    run_dir = RunDir(args.outdir)
    samples = Path(args.samples) if args.samples else run_dir.samples_path
    if not samples.is_file():
        raise UserError(f"no sample collection at {samples} (run synthcore references first)")
    stage = f"render_{crop_name(crop)}"
    options = options_of(args)
    options["samples"] = str(samples)
    images_dir = run_dir.images_dir(crop_name(crop))
    try:
        with run_dir.session("render", options=options, argv=getattr(args, "argv", None)):
            with SampleCollection.open(samples) as coll:
                digest = coll.content_digest()
                info = run_dir.stage_info(stage)
                force = args.force
                if info is not None and not force and info.get("samples_digest") != digest:
                    print("samples.h5 changed since the last render: rendering again", file=sys.stderr)
                    force = True
                if info is not None and not force:
                    run_dir.begin_stage(stage)  # raises StageFinished before anything is loaded or hashed
                network = samples_generator(coll.attrs, args.network, args.ignore_hash)
                options["network"] = str(network)
                run_dir.set_options(options)
                run_dir.begin_stage(stage, force=force)
                dev = resolve_device(args.device)
                impl = impl_of(args)
                G = load_generator(network, device=dev)
                check = _EmbeddingCheck(args.embedder, coll, crop, dev) if args.embedder else None
                result = render_collection(
                    coll,
                    G,
                    images_dir,
                    crop=crop,
                    batch=args.batch,
                    overwrite=force,
                    impl=impl,
                    progress=not args.quiet,
                    noise_mode=None if args.noise_mode == "stored" else args.noise_mode,
                    seed=args.seed,
                    on_batch=check,
                )
                zip_path = None
                if args.zip is not None:
                    zip_path = Path(args.zip) if args.zip else run_dir.path / f"{images_dir.name}.zip"
                    write_dataset_zip(images_dir, zip_path, coll)
                n = len(coll)
            summary = {"images": n, "written": result.written, "samples_digest": digest}
            if check is not None and check.cos:
                cos = np.concatenate(check.cos)
                summary["check_cosine_min"], summary["check_cosine_mean"] = float(cos.min()), float(cos.mean())
            run_dir.finish_stage(stage, summary)
    except StageFinished as exc:
        print(exc)
        return 0
    print(f"{images_dir}: {result.written} images written, {result.skipped} already there ({n} samples)")
    if zip_path is not None:
        print(f"dataset zip: {zip_path}")
    if "check_cosine_min" in summary:
        print(
            f"embedding check ({len(cos)} images): cosine to the stored embeddings min "
            f"{summary['check_cosine_min']:.4f}, mean {summary['check_cosine_mean']:.4f}"
        )
    return 0
