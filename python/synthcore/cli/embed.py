"""``synthcore embed``: embed a folder of PNG images with a face-recognition checkpoint into an HDF5 file.

Output (``--out``): dataset ``embedding`` [N, D] float32 raw features (not normalised, like the embeddings of a
SampleCollection), dataset ``path`` [N] (image paths relative to ``--images``, sorted), and file attributes
naming the embedder (path, SHA-256, architecture, channel order), the crop and the synthcore version.
"""

import argparse
import datetime
from pathlib import Path
from typing import Dict, List

import numpy as np

from synthcore.cli.toolkit import (
    UserError,
    add_command,
    add_device_option,
    check_at_least,
    crop_of,
    model_file,
    resolve_device,
)

FORMAT = "synthcore.embeddings/1"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what --images reads (Pillow); face sets and photos come as JPEG


def add_parser(sub) -> None:
    p = add_command(sub, "embed", help="embed a folder of PNG images with a face-recognition network (HDF5 output)")
    p.add_argument(
        "--embedder",
        required=True,
        help="checkpoint (insightface .pth, AdaFace .ckpt, evoLVe .pth, ...) or an installed model's name",
    )
    p.add_argument("--images", required=True, help="folder of .png / .jpg images (searched recursively)")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument(
        "--crop",
        default="none",
        help="none: the images are aligned 112x112 crops; or a fixed-crop preset for FFHQ-aligned generator output "
        "of any size: arcface, iresnet_bob, psp (the list is in synthcore.align.CROP_PRESETS)",
    )
    p.add_argument(
        "--arch",
        default=None,
        help="expected architecture, e.g. iresnet100 (checked against the checkpoint; None: detect it)",
    )
    p.add_argument("--channel-order", choices=["RGB", "BGR"], default=None, help="override the family's default")
    p.add_argument("--flip", action="store_true", help="add the feature of the mirrored image (flip fusion)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    # The old spelling, kept working for existing scripts but no longer shown.
    p.add_argument("--batch-size", dest="batch", type=int, help=argparse.SUPPRESS)
    add_device_option(p)
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(run=run)


def list_images(folder: Path) -> List[Path]:
    if not folder.is_dir():
        raise UserError(f"--images {folder}: no such folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise UserError(f"--images {folder}: no .png or .jpg images under it")
    return paths


def _embed_batch(paths: List[Path], root: Path, embedder, crop, flip: bool, device) -> np.ndarray:
    import torch

    from synthcore import imageio
    from synthcore.embedding import embed, from_uint8

    pixels = [imageio.read_image(p) for p in paths]
    # Images of one size are embedded together; a folder may mix sizes.
    groups: Dict[tuple, List[int]] = {}
    for i, px in enumerate(pixels):
        groups.setdefault(px.shape, []).append(i)
    out = np.empty((len(paths), embedder.embedding_size), np.float32)
    for shape, idx in groups.items():
        if crop is None and shape[:2] != (embedder.input_size, embedder.input_size):
            rel = paths[idx[0]].relative_to(root)
            raise UserError(
                f"{rel} is {shape[1]}x{shape[0]}, but {embedder.spec.name} takes {embedder.input_size}x"
                f"{embedder.input_size} aligned crops: pass --crop (e.g. --crop arcface for FFHQ-aligned images)"
            )
        x = from_uint8(np.stack([pixels[i] for i in idx])).to(device)
        with torch.no_grad():
            feats = embed(x, embedder, crop=crop, normalize=False, flip=flip)
        out[idx] = feats.float().cpu().numpy()
    return out


def _write_h5(path: Path, embeddings, rel_paths: List[str], attrs: dict) -> None:
    import h5py

    from synthcore.fileio import atomic_path

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("embedding", data=embeddings)
        f.create_dataset("path", data=rel_paths, dtype=h5py.string_dtype("utf-8"))
        f.attrs.update(attrs)


def run(args) -> int:
    from synthcore import __version__
    from synthcore.fileio import sha256_file
    from synthcore.nets.embedders import load_embedder
    from synthcore.progress import Progress

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"--out {out} exists; pass --overwrite to replace it")
    check_at_least("--batch", args.batch, 1)
    crop = crop_of(args.crop)
    device = resolve_device(args.device)
    root = Path(args.images)
    paths = list_images(root)
    ckpt = model_file("--embedder", args.embedder)
    embedder = load_embedder(ckpt, arch=args.arch, channel_order=args.channel_order, device=device)
    chunks = []
    with Progress(len(paths), "embed", enabled=not args.quiet) as bar:
        for start in range(0, len(paths), args.batch):
            batch = paths[start : start + args.batch]
            chunks.append(_embed_batch(batch, root, embedder, crop, args.flip, device))
            bar.update(len(batch))
    embeddings = np.concatenate(chunks)
    attrs = {
        "format": FORMAT,
        "synthcore_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "embedder_path": str(ckpt.resolve()),
        "embedder_sha256": sha256_file(ckpt),
        "arch": embedder.spec.name,
        "family": embedder.spec.family,
        "channel_order": embedder.channel_order,
        "crop": args.crop,
        "flip": bool(args.flip),
        "normalized": False,
        "images_dir": str(root.resolve()),
    }
    rel = [p.relative_to(root).as_posix() for p in paths]
    _write_h5(out, embeddings, rel, attrs)
    if not args.quiet:
        print(f"wrote {len(paths)} embeddings ({embedder.spec.name}, {embeddings.shape[1]}-d) to {out}")
    return 0
