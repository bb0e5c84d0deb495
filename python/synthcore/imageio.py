"""Image files through Pillow: PNG writing (atomic, via ``synthcore.fileio``) and reading of PNG, JPEG and
anything else Pillow reads.

Pixels are numpy ``uint8`` arrays ``[H, W, C]``: C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
``read_image`` always gives ``[H, W, 3]`` RGB (what an embedder or a face aligner wants); ``read_png`` keeps the
file's channels. Every read error is a ``ValueError`` that names the file.

PNG compression: level ``PNG_COMPRESS_LEVEL`` (see ``benchmarks/bench_render.py`` and ``benchmarks/RESULTS.md``:
rendering a collection must not get slower than with the former hand-written encoder, zlib level 6, no row
filters). Pillow releases the GIL while it compresses, so the render thread pool overlaps PNG writing with
synthesis as before.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from synthcore.fileio import atomic_path

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "decode_image",
    "decode_png",
    "encode_png",
    "read_image",
    "read_png",
    "to_rgb",
    "to_uint8",
    "write_png",
]

PathLike = Union[str, "os.PathLike[str]"]

# zlib level for PNGs. Level 1 (with Pillow's adaptive row filters) encodes rendered crops 1.3-1.4x faster than the
# former encoder (level 6, no filters) into files half the size; Pillow's default, 6, is 2-3.5x slower than it.
# Measured by benchmarks/bench_render.py (benchmarks/RESULTS.md, 2026-12-01).
PNG_COMPRESS_LEVEL = 1

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = (1, 2, 3, 4)  # grey, grey + alpha, RGB, RGBA
# Errors Pillow raises for files it cannot parse: unknown formats (UnidentifiedImageError is an OSError),
# truncated data (OSError), broken chunks (SyntaxError), bad headers (ValueError, struct/zlib errors), bombs.
_READ_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error, Image.DecompressionBombError,
)  # fmt: skip


def _pixels(image: np.ndarray, what: str) -> np.ndarray:
    """Check a uint8 [H, W] or [H, W, C] array and return it as [H, W, C], C in 1..4."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"{what}: expected a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in _CHANNELS:
        raise ValueError(f"{what}: expected [H, W] or [H, W, C] with C in 1..4, got {list(image.shape)}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what}: empty image {list(image.shape)}")
    return image


def _to_pil(image: np.ndarray, what: str) -> Image.Image:
    image = _pixels(image, what)
    channels = image.shape[2]
    arr = np.ascontiguousarray(image[:, :, 0] if channels == 1 else image)
    return Image.fromarray(arr)  # uint8 [H, W] -> L, [H, W, 2/3/4] -> LA/RGB/RGBA


def encode_png(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of a uint8 array [H, W] or [H, W, C] (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA)."""
    buf = io.BytesIO()
    _to_pil(image, "encode_png").save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def to_uint8(image: torch.Tensor, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """[C, H, W] (or a batch [N, C, H, W]) float image with values in [lo, hi] to [H, W, C] (or [N, H, W, C])
    uint8, rounded and clipped: the 8 bits a rendered image, a detector or a judge sees."""
    if image.ndim not in (3, 4):
        raise ValueError(f"to_uint8: expected [C, H, W] or [N, C, H, W], got {list(image.shape)}")
    scaled = (image.detach().float().cpu() - lo) * (255.0 / (hi - lo))
    pixels = scaled.round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(*range(image.ndim - 3), -2, -1, -3).contiguous().numpy()


def write_png(
    path: PathLike,
    image: Union[np.ndarray, torch.Tensor],
    lo: float = -1.0,
    hi: float = 1.0,
    *,
    durable: bool = False,
    compress_level: int = PNG_COMPRESS_LEVEL,
) -> None:
    """Write a uint8 [H, W(, C)] array, or a float [C, H, W] tensor scaled from [lo, hi], as a PNG, atomically.

    ``durable=False`` by default: images are bulk outputs a rerun rebuilds (see ``synthcore.fileio``'s policy).
    """
    if isinstance(image, torch.Tensor):
        image = to_uint8(image, lo, hi)
    pil = _to_pil(image, f"write_png {path}")
    with atomic_path(path, durable=durable) as tmp:
        pil.save(tmp, format="PNG", compress_level=compress_level)


# ------------------------------------------------------------------------------------------------ reading


def _as_array(img: Image.Image) -> np.ndarray:
    """A decoded Pillow image as uint8 [H, W, C], C in 1..4, keeping grey and alpha."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey (Pillow reads 16-bit grey PNGs as "I;16" / "I"): scale 0..65535 to 0..255, rounded.
        # Pillow's own conversion to "L" clips instead of scaling, which would turn most of the image white.
        wide = np.asarray(img).astype(np.float64)
        return np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)[:, :, None]
    if mode == "F":
        raise ValueError("floating-point images are not supported (no agreed 8-bit scale)")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")  # CMYK and YCbCr JPEGs, LAB, HSV, ...
    arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


class _TooLarge(Exception):
    """An image whose header claims more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``."""


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Pixels of an image file's bytes (any format Pillow reads) as uint8 [H, W, C], C in 1..4.

    The EXIF orientation (photos taken with a rotated camera) is applied. Damaged or unreadable data raises
    ``ValueError`` naming ``name``; a PNG's chunk checksums are verified before decoding.
    """
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()  # PNG: walks every chunk and checks its CRC; others: cheap header checks
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit and w * h > limit:
                # A few header bytes can claim a huge image: refuse before decoding allocates it (Pillow itself
                # only warns up to twice this limit).
                raise _TooLarge(f"{w}x{h} pixels is over the limit of {limit} (a damaged or hostile file?)")
            img.load()
            return np.ascontiguousarray(_as_array(ImageOps.exif_transpose(img)))
    except _TooLarge as exc:
        raise ValueError(f"{name}: {exc}") from None
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file Pillow can read (unknown or damaged format)") from None
    except _READ_ERRORS as exc:
        raise ValueError(f"{name}: damaged or unreadable image data ({type(exc).__name__}: {exc})") from None


def decode_png(data: bytes, name: str = "PNG data") -> np.ndarray:
    """``decode_image`` for data that must be a PNG (a ``ValueError`` for anything else)."""
    if data[: len(_PNG_SIGNATURE)] != _PNG_SIGNATURE:
        raise ValueError(f"{name}: not a PNG file (bad signature)")
    return decode_image(data, name)


def _read(path: PathLike) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file {path}")
    return path.read_bytes()


def read_png(path: PathLike) -> np.ndarray:
    """A PNG file's pixels as uint8 [H, W, C] (C = 1, 2, 3 or 4 as stored; 16-bit samples scaled to 8)."""
    return decode_png(_read(path), str(path))


def read_image(path: PathLike) -> np.ndarray:
    """Any image file Pillow reads (PNG, JPEG, ...) as uint8 [H, W, 3] RGB, EXIF orientation applied.

    Grey is replicated to three channels and alpha is dropped (not composited). Unreadable data raises
    ``ValueError`` naming the file.
    """
    return to_rgb(decode_image(_read(path), str(path)))


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """[H, W, C] uint8 (C in 1..4) to [H, W, 3] RGB: grey is replicated, alpha is dropped."""
    channels = pixels.shape[-1]
    if channels in (1, 2):
        return np.repeat(pixels[..., :1], 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])
