"""Render a sample collection to images, ``images_<crop>/<identity:05d>/<label>.png``, and pack an NVlabs zip.

Each sample's image is ``G.synthesis(ws)`` with ``ws`` its ``w`` repeated over the synthesis layers (or its
``w_plus``), cropped with a fixed preset of ``synthcore.align`` (``crop=None``: the full generator frame) and
written as an 8-bit RGB PNG (``[-1, 1]`` mapped to ``[0, 255]``, rounded, clipped).

Noise follows the collection's ``noise_mode``: ``const`` and ``none`` pass straight to synthesis (so the
image is a function of the latent alone: the one the identity algorithms embedded); ``seeded`` renders each
sample alone with ``noise_mode="random"`` after ``torch.manual_seed(noise_seed)`` on the generator's device,
inside ``torch.random.fork_rng`` so the caller's random state is untouched. Seeded samples therefore do not
depend on the batch they are in (they are slower: batch 1). The noise can also be overridden at render time:
``noise_mode="const"`` / ``"none"`` for every sample, or ``"random"``, which seeds sample ``r`` with
``noise_seed_for(seed, r)`` the same way (new noise per ``seed``, reproducible, independent of batching).

Resuming: images are written atomically, and images that already exist are skipped (``overwrite=False``), so an
interrupted render picks up where it stopped. PNG encoding and writing run on a small thread pool, overlapped
with synthesis of the next batch (zlib releases the GIL).

The zip (:func:`write_dataset_zip`) follows the NVlabs ``dataset_tool`` layout readers expect: ZIP_STORED,
the images at their ``<identity:05d>/<label>.png`` paths, and ``dataset.json`` with
``{"labels": [[path, identity], ...]}`` (identity as the class label; NVlabs turns ints into one-hot
``c_dim = max + 1``). A side-car ``metadata.jsonl`` (ignored by those readers, which keep image files only)
keeps per-image identity, label and row. Entry times are fixed, so the same images give the same zip bytes.
NVlabs training code also wants square power-of-two images; the 112 px recognition crops are not, so train
those with recognition tooling, or render ``crop=None`` from a power-of-two generator.
"""

import io
import json
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from synthcore.align import CROP_PRESETS, fixed_crop
from synthcore.dataset.collection import SampleCollection
from synthcore.fileio import atomic_path
from synthcore.imageio import to_uint8, write_png  # PNGs: atomic, not durable (a rerun checks and rewrites)
from synthcore.progress import Progress

__all__ = ["RenderResult", "crop_name", "image_relpath", "noise_seed_for", "render_collection", "write_dataset_zip"]
RENDER_NOISE_MODES = ("const", "none", "random")

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry times: reproducible archives


@dataclass
class RenderResult:
    """What a render did: images written, images already there (skipped), and the output folder."""

    written: int
    skipped: int
    images_dir: Path
    zip_path: Optional[Path] = None


def image_relpath(identity: int, label: str) -> str:
    """``<identity:05d>/<label>.png``: where a sample's image goes inside ``images_<crop>``."""
    return f"{int(identity):05d}/{label}.png"


def crop_name(crop: Optional[str]) -> str:
    """The ``<crop>`` of ``images_<crop>``: the preset name, or ``full`` for uncropped frames."""
    return "full" if crop in (None, "none", "full") else str(crop)


def noise_seed_for(seed: int, row: int) -> int:
    """The torch seed of row ``row``'s noise when rendering with ``noise_mode="random"`` and ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(row)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_generator(G: Any, collection: SampleCollection) -> None:
    for attr in ("synthesis", "num_ws", "w_dim"):
        if not hasattr(G, attr):
            raise TypeError(f"the generator has no {attr!r} (expected a synthcore.nets.stylegan2.Generator)")
    if int(G.w_dim) != collection.w_dim:
        raise ValueError(f"the collection's latents are {collection.w_dim}-d, the generator's w_dim is {G.w_dim}")
    if collection.num_ws is not None and collection.num_ws != int(G.num_ws):
        raise ValueError(f"the collection's w_plus has {collection.num_ws} layers, the generator has {G.num_ws}")
    if int(getattr(G, "img_channels", 3)) not in (1, 3):
        raise ValueError(f"cannot write {G.img_channels}-channel images as PNG")


def _device_of(G: torch.nn.Module) -> torch.device:
    for t in G.parameters():
        return t.device
    for t in G.buffers():
        return t.device
    return torch.device("cpu")


def _synthesize(G: Any, ws: torch.Tensor, noise_mode: str, impl: Optional[str]) -> torch.Tensor:
    kwargs = {"noise_mode": noise_mode}
    if impl is not None:
        kwargs["impl"] = impl
    return G.synthesis(ws, **kwargs)


def _frames(
    G: Any, block: Dict[str, np.ndarray], space: str, noise: str, impl: Optional[str], dev: torch.device
) -> torch.Tensor:
    lat = torch.from_numpy(block[space]).to(dev)
    ws = lat.unsqueeze(1).expand(lat.shape[0], int(G.num_ws), lat.shape[1]) if space == "w" else lat
    if noise not in ("seeded", "random"):
        return _synthesize(G, ws, noise, impl)
    out = []
    devices = [dev] if dev.type == "cuda" else []
    for i, seed in enumerate(block["noise_seed"].tolist()):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            out.append(_synthesize(G, ws[i : i + 1], "random", impl))
    return torch.cat(out)


def render_collection(
    collection: SampleCollection,
    generator: torch.nn.Module,
    images_dir: Union[str, Path],
    *,
    crop: Optional[str] = "arcface",
    batch: int = 16,
    rows: Optional[Sequence[int]] = None,
    overwrite: bool = False,
    impl: Optional[str] = None,
    progress: bool = True,
    workers: int = 2,
    noise_mode: Optional[str] = None,
    seed: int = 0,
    on_batch: Optional[Callable[[np.ndarray, np.ndarray], None]] = None,
) -> RenderResult:
    """Render the samples of ``collection`` with ``generator`` into ``images_dir``.

    Args:
        collection: the samples (``w`` or ``w_plus``; ``noise_seed`` when seeded).
        generator: a StyleGAN2-interface generator (``synthesis``, ``num_ws``, ``w_dim``) on the device to use.
        images_dir: output folder (conventionally ``<run>/images_<crop>``).
        crop: a ``synthcore.align.fixed_crop`` preset (default ``arcface``: 112 px recognition crops of an
            FFHQ-aligned generator), or None for the full generator frame.
        batch: samples per synthesis call.
        rows: render only these rows (default: all).
        overwrite: re-render images that already exist (default: skip them, which resumes a render).
        impl: op implementation for synthesis (None, "native", "reference").
        progress: show a progress bar on stderr.
        workers: threads that encode and write PNGs while the next batch is synthesised.
        noise_mode: None (the collection's: ``const``, ``none`` or ``seeded``), or ``const``, ``none``,
            ``random`` for every sample (see the module docstring).
        seed: seeds the noise when ``noise_mode="random"``.
        on_batch: called with (row numbers [n], pixels [n, H, W, C] uint8) of every rendered batch, e.g. to
            embed the written images.
    """
    if noise_mode is not None and noise_mode not in RENDER_NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {', '.join(RENDER_NOISE_MODES)} or None, got {noise_mode!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if crop not in (None, "none", "full") and crop not in CROP_PRESETS:
        raise ValueError(f"unknown crop preset {crop!r}; known: none, {', '.join(CROP_PRESETS)}")
    _check_generator(generator, collection)
    images_dir = Path(images_dir)
    n = len(collection)
    all_rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if all_rows.size and (all_rows.min() < 0 or all_rows.max() >= n):
        raise IndexError(f"rows out of range for a collection of {n} samples")
    meta = collection.read(all_rows, ["identity", "label"])
    paths = [images_dir / image_relpath(i, s) for i, s in zip(meta["identity"].tolist(), meta["label"].tolist())]
    todo = [k for k, p in enumerate(paths) if overwrite or not p.exists()]
    skipped = len(paths) - len(todo)
    space = collection.w_space
    noise = collection.noise_mode if noise_mode is None else noise_mode
    columns = [space] + (["noise_seed"] if noise == "seeded" else [])
    dev = _device_of(generator)
    was_training = bool(getattr(generator, "training", False))
    if hasattr(generator, "eval"):
        generator.eval()
    pending: List[Future] = []
    try:
        with Progress(len(todo), "render", enabled=progress) as bar, ThreadPoolExecutor(max(1, workers)) as pool:
            for lo in range(0, len(todo), batch):
                ks = todo[lo : lo + batch]
                block = collection.read(all_rows[ks], columns)
                if noise == "random":
                    block["noise_seed"] = np.array([noise_seed_for(seed, r) for r in all_rows[ks].tolist()], np.int64)
                with torch.no_grad():
                    frames = _frames(generator, block, space, noise, impl, dev)
                    if crop not in (None, "none", "full"):
                        frames = fixed_crop(frames.float(), crop)
                pixels = to_uint8(frames)  # one conversion per batch
                # Bound the queue: at most two batches of PNGs in flight.
                while len(pending) > 2 * batch:
                    pending.pop(0).result()
                for j, k in enumerate(ks):
                    pending.append(pool.submit(write_png, paths[k], pixels[j]))
                if on_batch is not None:
                    on_batch(all_rows[ks], pixels)
                bar.update(len(ks))
            for f in pending:
                f.result()
    finally:
        if was_training:
            generator.train()
    return RenderResult(written=len(todo), skipped=skipped, images_dir=images_dir)


def _entries_from_collection(images_dir: Path, collection: SampleCollection) -> List[Tuple[str, int, str, int]]:
    meta = collection.read(columns=["identity", "label"])
    out = []
    for row, (ident, label) in enumerate(zip(meta["identity"].tolist(), meta["label"].tolist())):
        out.append((image_relpath(ident, label), int(ident), label, row))
    missing = [rel for rel, *_ in out if not (images_dir / rel).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(out)} images are missing in {images_dir} (first: {missing[0]}); render them first"
        )
    return out


def _entries_from_folder(images_dir: Path) -> List[Tuple[str, int, str, int]]:
    out = []
    for sub in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        if not sub.name.isdigit():
            continue
        for png in sorted(sub.glob("*.png")):
            out.append((f"{sub.name}/{png.name}", int(sub.name), png.stem, -1))
    if not out:
        raise FileNotFoundError(f"no <identity>/<label>.png images in {images_dir}")
    return out


def write_dataset_zip(
    images_dir: Union[str, Path], zip_path: Union[str, Path], collection: Optional[SampleCollection] = None
) -> Path:
    """NVlabs-style ZIP_STORED archive of ``images_dir`` with ``dataset.json`` (identity as class label).

    With ``collection`` the archive holds exactly its samples, in row order (all must be rendered); without,
    every ``<digits>/<name>.png`` under ``images_dir``, sorted. Written to a temporary file and renamed.
    """
    images_dir = Path(images_dir)
    zip_path = Path(zip_path)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"no image folder {images_dir}")
    entries = _entries_from_collection(images_dir, collection) if collection is not None else None
    if entries is None:
        entries = _entries_from_folder(images_dir)
    labels = {"labels": [[rel, ident] for rel, ident, _, _ in entries]}
    meta = io.StringIO()
    for rel, ident, label, row in entries:
        rec: Dict[str, Any] = {"file": rel, "identity": ident, "label": label}
        if row >= 0:
            rec["row"] = row
        meta.write(json.dumps(rec) + "\n")
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel, *_ in entries:
            zf.writestr(zipfile.ZipInfo(rel, _ZIP_TIME), (images_dir / rel).read_bytes())
        zf.writestr(zipfile.ZipInfo("dataset.json", _ZIP_TIME), json.dumps(labels))
        zf.writestr(zipfile.ZipInfo("metadata.jsonl", _ZIP_TIME), meta.getvalue())
    return zip_path
