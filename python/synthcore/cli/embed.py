"""``synthcore embed``: embed a folder of PNG images with a face-recognition checkpoint into an HDF5 file.

Output (``--out``): dataset ``embedding`` [N, D] float32 raw features (not normalised, like the embeddings of a
SampleCollection), dataset ``path`` [N] (image paths relative to ``--images``, sorted), and file attributes
naming the embedder (path, SHA-256, architecture, channel order), the crop and the synthcore version.
"""

import argparse
import datetime
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

FORMAT = "synthcore.embeddings/1"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="embed a folder of PNG images with a face-recognition network (HDF5 output)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--embedder", required=True, help="checkpoint: insightface .pth, AdaFace .ckpt, evoLVe .pth, ...")
    p.add_argument("--images", required=True, help="folder of .png images (searched recursively)")
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
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def list_images(folder: Path) -> List[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
    if not paths:
        raise ValueError(f"no .png images under {folder}")
    return paths


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _embed_batch(paths: List[Path], root: Path, embedder, crop, flip: bool, device) -> np.ndarray:
    import torch

    from synthcore import imageio
    from synthcore.embedding import embed, from_uint8

    pixels = [imageio.to_rgb(imageio.read_png(p)) for p in paths]
    # Images of one size are embedded together; a folder may mix sizes.
    groups: Dict[tuple, List[int]] = {}
    for i, px in enumerate(pixels):
        groups.setdefault(px.shape, []).append(i)
    out = np.empty((len(paths), embedder.embedding_size), np.float32)
    for shape, idx in groups.items():
        if crop is None and shape[:2] != (embedder.input_size, embedder.input_size):
            rel = paths[idx[0]].relative_to(root)
            raise ValueError(
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

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("embedding", data=embeddings)
            f.create_dataset("path", data=rel_paths, dtype=h5py.string_dtype("utf-8"))
            f.attrs.update(attrs)
        os.replace(tmp, path)  # readers never see a half-written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args) -> int:
    from synthcore import __version__
    from synthcore.align import CROP_PRESETS
    from synthcore.nets.embedders import load_embedder
    from synthcore.progress import Progress

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    if args.crop != "none" and args.crop not in CROP_PRESETS:
        raise ValueError(f"unknown --crop {args.crop!r}; choose none or one of {', '.join(CROP_PRESETS)}")
    root = Path(args.images)
    paths = list_images(root)
    ckpt = Path(args.embedder)
    embedder = load_embedder(ckpt, arch=args.arch, channel_order=args.channel_order, device=args.device)
    crop = None if args.crop == "none" else args.crop
    chunks = []
    with Progress(len(paths), "embed", enabled=not args.quiet) as bar:
        for start in range(0, len(paths), args.batch_size):
            batch = paths[start : start + args.batch_size]
            chunks.append(_embed_batch(batch, root, embedder, crop, args.flip, args.device))
            bar.update(len(batch))
    embeddings = np.concatenate(chunks)
    attrs = {
        "format": FORMAT,
        "synthcore_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "embedder_path": str(ckpt.resolve()),
        "embedder_sha256": sha256(ckpt),
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
