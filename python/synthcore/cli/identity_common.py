"""Options and plumbing shared by ``synthcore references`` and ``synthcore variations``: the networks, the device,
the identity pipeline, and writing a stage's statistics. Imports no command module (only the toolkit)."""

import argparse
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from synthcore.cli.toolkit import (
    UserError,
    add_device_option,
    add_impl_option,
    check_at_least,
    crop_of,
    impl_of,
    recorded_model_file,
    resolve_device,
)


def add_common_options(p: argparse.ArgumentParser, batch: int, network_required: bool) -> None:
    """--outdir, --network, --embedder, --crop, --device, --batch, --seed, --impl, --noise-mode, --force."""
    p.add_argument("--outdir", required=True, help="the run directory (required; created if missing)")
    recorded = "" if network_required else " (default: the one recorded in <outdir>/samples.h5, checked by SHA-256)"
    p.add_argument(
        "--network",
        required=network_required,
        default=None,
        help="generator: official StyleGAN2(-ADA) .pkl snapshot, synthcore .pt/.safetensors, or an installed model's "
        "name" + recorded,
    )
    p.add_argument(
        "--embedder",
        required=network_required,
        default=None,
        help="face-recognition checkpoint (insightface .pth, AdaFace .ckpt, evoLVe .pth, .safetensors) or an "
        "installed model's name" + recorded,
    )
    p.add_argument(
        "--crop",
        default="auto",
        help="crop from generator frames to the embedder's input: auto (the generator family's way: arcface for "
        "StyleGAN2, detected dlib landmarks for the DCGAN), landmarks (detect per image with the installed dlib "
        "models), a fixed-crop preset for FFHQ-aligned generators (arcface, iresnet_bob, psp, ...; "
        "synthcore.align.CROP_PRESETS), or none when the frames already are aligned crops of the embedder's size",
    )
    add_device_option(p)
    p.add_argument("--batch", type=int, default=batch, help="samples per forward/backward pass (speed and memory only)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (runs are reproducible from it)")
    p.add_argument(
        "--noise-mode",
        choices=["const", "none"],
        default="const",
        help="synthesis noise: const (the generator's stored noise) or none; per-call random noise is not offered, "
        "it would make the embeddings differ from those of the rendered images",
    )
    add_impl_option(p)
    p.add_argument("--force", action="store_true", help="redo the stage even if it finished (replaces its outputs)")


def timestep_arg(text: str) -> Optional[float]:
    """``adaptive`` -> None, else a positive number."""
    if text.strip().lower() == "adaptive":
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'adaptive' or a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"a fixed time step must be > 0, got {text!r}")
    return v


def check_common(args: argparse.Namespace) -> None:
    check_at_least("--batch", args.batch, 1)
    check_at_least("--seed", args.seed, 0)
    _pipeline_crop(args.crop)


def _pipeline_crop(name: str):
    """What FacePipeline gets for ``--crop``: ``auto`` / ``landmarks`` as they are, else the preset (or None)."""
    return name if name in ("auto", "landmarks") else crop_of(name)


def load_pipeline(args: argparse.Namespace, network: Path, embedder: Path):
    """(FacePipeline, generator, device) for the files and the --device/--crop/--noise-mode/--impl options."""
    from synthcore.identity import FacePipeline
    from synthcore.nets.embedders import load_embedder
    from synthcore.nets.generators import load_generator

    dev = resolve_device(args.device)
    G = load_generator(network, device=dev)
    E = load_embedder(embedder, device=dev)
    return FacePipeline(G, E, crop=_pipeline_crop(args.crop), noise_mode=args.noise_mode, impl=impl_of(args)), G, dev


def resolve_file(kind: str, given: Optional[str], recorded: str, want_sha: str, ignore_hash: bool = False) -> Path:
    """The model file to use: ``given`` or the one recorded in the collection, checked against the recorded hash."""
    return recorded_model_file(kind, given, recorded, want_sha, ignore_hash, "the references were made with")


def split_iterations(rows: List[Dict[str, float]]) -> Tuple[List[Dict[str, float]], List[int]]:
    """Stats rows and their iteration numbers (row i is iteration i)."""
    return [dict(r) for r in rows], list(range(len(rows)))


def write_stage_stats(path: Path, rows: List[Dict[str, float]], attrs: Dict[str, Any]) -> None:
    """Write a stage's statistics table (atomically; a resumed run rewrites it from its checkpoint's rows)."""
    from synthcore.dataset import write_stats

    clean, its = split_iterations(rows)
    write_stats(path, clean, its, attrs=attrs)


def read_embeddings_file(path: str) -> np.ndarray:
    """[M, e] embeddings from an HDF5 file with an ``embedding`` dataset (``synthcore embed`` output, a
    samples.h5) or a ``.npy`` array."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"embeddings file not found: {p}")
    if p.suffix.lower() == ".npy":
        arr = np.load(p, allow_pickle=False)
    else:
        import h5py

        try:
            with h5py.File(p, "r") as f:
                if "embedding" not in f:
                    raise ValueError(f"{p}: no 'embedding' dataset")
                n = int(f.attrs.get("num_rows", f["embedding"].shape[0]))
                arr = f["embedding"][:n]
        except OSError as exc:
            raise ValueError(f"{p}: not an HDF5 file ({exc})") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{p}: expected a non-empty [M, e] array of embeddings, got shape {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{p}: embeddings contain NaN or infinite values")
    return arr
