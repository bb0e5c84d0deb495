"""Minimal, dependency-free PNG writing (8-bit grey or RGB, written atomically) and reading (8-bit grey, grey +
alpha, RGB, RGBA; all five filter types; non-interlaced)."""

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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
_COLOUR_NAMES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}


def _chunks(data: bytes):
    """Yield (type, body) of each chunk, checking lengths and CRCs."""
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("PNG truncated inside a chunk header")
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + n
        if end > len(data):
            raise ValueError(f"PNG truncated inside chunk {kind!r}")
        body = data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : end])
        if crc != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"PNG chunk {kind!r} fails its CRC check (corrupt file)")
        yield kind, body
        pos = end


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter_simple(kinds: np.ndarray, rows: np.ndarray, bpp: int) -> np.ndarray:
    """Rows filtered with None, Sub or Up only: each row in one vectorised step."""
    out = np.empty_like(rows)
    prev = np.zeros(rows.shape[1], np.uint8)
    for r, kind in enumerate(kinds):
        row = rows[r]
        if kind == 1:  # Sub: running sum along the row, per channel, modulo 256
            row = row.reshape(-1, bpp).cumsum(axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            row = row + prev  # uint8 arithmetic wraps modulo 256, as PNG requires
        out[r] = row
        prev = out[r]
    return out


def _unfilter_wavefront(kinds: np.ndarray, rows: np.ndarray, bpp: int) -> np.ndarray:
    """Any mix of filters. A pixel depends on its left, upper and upper-left neighbours, so all pixels on one
    anti-diagonal (row + column constant) are independent: sweep the diagonals, vectorised along each."""
    h, stride = rows.shape
    w = stride // bpp
    filt = rows.reshape(h, w, bpp).astype(np.int32)
    rec = np.zeros((h + 1, w + 1, bpp), np.int32)  # one zero row above and zero column to the left
    kinds = kinds.astype(np.int32)
    for d in range(h + w - 1):
        r = np.arange(max(0, d - w + 1), min(h - 1, d) + 1)
        x = d - r
        a, b, c = rec[r + 1, x], rec[r, x + 1], rec[r, x]
        k = kinds[r][:, None]
        pred = np.where(
            k == 1, a, np.where(k == 2, b, np.where(k == 3, (a + b) >> 1, np.where(k == 4, _paeth(a, b, c), 0)))
        )
        rec[r + 1, x + 1] = (filt[r, x] + pred) & 0xFF
    return rec[1:, 1:].astype(np.uint8).reshape(h, stride)


def decode_png(data: bytes) -> np.ndarray:
    """Pixels of a PNG as uint8 [H, W, C], C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA).

    Supports 8-bit samples, the five filter types and non-interlaced images; raises ValueError otherwise.
    """
    if data[: len(PNG_SIGNATURE)] != PNG_SIGNATURE:
        raise ValueError("not a PNG file (bad signature)")
    header, idat, ended = None, [], False
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            if len(body) != 13:
                raise ValueError("PNG IHDR chunk has the wrong length")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
    if header is None:
        raise ValueError("PNG has no IHDR chunk")
    if not ended:
        raise ValueError("PNG truncated: no IEND chunk")
    w, h, depth, colour, compression, filter_method, interlace = header
    if colour not in _CHANNELS:
        raise ValueError(f"unsupported PNG colour type {colour} ({_COLOUR_NAMES.get(colour, 'unknown')})")
    if depth != 8:
        raise ValueError(f"unsupported PNG bit depth {depth} (only 8-bit samples are read)")
    if interlace != 0:
        raise ValueError("unsupported interlaced (Adam7) PNG; re-save it without interlacing")
    if compression != 0 or filter_method != 0:
        raise ValueError("PNG uses an unknown compression or filter method")
    if w == 0 or h == 0:
        raise ValueError("PNG has zero width or height")
    bpp = _CHANNELS[colour]
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ValueError(f"PNG image data is corrupt or truncated: {exc}") from None
    if len(raw) != h * (1 + w * bpp):
        raise ValueError(f"PNG image data has {len(raw)} bytes, expected {h * (1 + w * bpp)} (truncated?)")
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * bpp)
    kinds, rows = rows[:, 0], rows[:, 1:]
    if kinds.max() > 4:
        raise ValueError(f"PNG row uses unknown filter type {int(kinds.max())}")
    if kinds.max() <= 2:
        pixels = _unfilter_simple(kinds, rows, bpp)
    else:
        pixels = _unfilter_wavefront(kinds, rows, bpp)
    return pixels.reshape(h, w, bpp)


def read_png(path: Union[str, Path]) -> np.ndarray:
    """``decode_png`` of a file; errors name the file."""
    try:
        return decode_png(Path(path).read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """[H, W, C] uint8 from ``decode_png`` to [H, W, 3] RGB: grey is replicated, alpha is dropped."""
    channels = pixels.shape[-1]
    if channels in (1, 2):
        return np.repeat(pixels[..., :1], 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])


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
