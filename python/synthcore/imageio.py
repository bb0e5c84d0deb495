"""Minimal, dependency-free PNG writing (8-bit grey or RGB), written atomically."""

import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import torch


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes for a uint8 array of shape [H, W], [H, W, 1] or [H, W, 3]."""
    if image.dtype != np.uint8:
        raise TypeError(f"encode_png: expected uint8 pixels, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        color_type, channels = 0, 1
    elif image.ndim == 3 and image.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"encode_png: expected [H, W], [H, W, 1] or [H, W, 3], got {list(image.shape)}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("encode_png: empty image")
    rows = np.ascontiguousarray(image).reshape(h, w * channels)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter type 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    )


def write_atomic(path: Union[str, Path], data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it into place, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_uint8(image: torch.Tensor, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """[C, H, W] float image with values in [lo, hi] to [H, W, C] uint8 (rounded, clipped)."""
    if image.ndim != 3:
        raise ValueError(f"to_uint8: expected [C, H, W], got {list(image.shape)}")
    scaled = (image.detach().float().cpu() - lo) * (255.0 / (hi - lo))
    return scaled.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def write_png(
    path: Union[str, Path], image: Union[np.ndarray, torch.Tensor], lo: float = -1.0, hi: float = 1.0
) -> None:
    """Write a uint8 [H, W(, C)] array, or a float [C, H, W] tensor scaled from [lo, hi], as a PNG."""
    if isinstance(image, torch.Tensor):
        image = to_uint8(image, lo, hi)
    write_atomic(path, encode_png(image))
