import struct
import zlib

import numpy as np
import pytest
import torch

from synthcore import imageio


def _decode(data: bytes) -> np.ndarray:
    """Decode the subset of PNG that encode_png writes (8-bit, filter 0), independently of the encoder."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, color, *_ = header
    ch = {0: 1, 2: 3}[color]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, ch)


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3), (1, 1, 1)])
def test_png_roundtrip(shape, tmp_path):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    imageio.write_png(tmp_path / "a.png", img)
    back = _decode((tmp_path / "a.png").read_bytes())
    np.testing.assert_array_equal(back.reshape(img.shape), img)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_float_tensor_scaling(tmp_path):
    t = torch.tensor([[[-1.0, 0.0, 1.0, 2.0]]])  # [C=1, H=1, W=4]
    imageio.write_png(tmp_path / "t.png", t)
    assert _decode((tmp_path / "t.png").read_bytes()).ravel().tolist() == [0, 128, 255, 255]


def test_bad_images_rejected():
    with pytest.raises(TypeError):
        imageio.encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        imageio.encode_png(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError):
        imageio.encode_png(np.zeros((0, 2), np.uint8))


# ------------------------------------------------------------------------------------------------ reading


def _filter_rows(img: np.ndarray, kinds) -> bytes:
    """PNG-filter each row of [H, W, C] uint8 with the given filter types (an encoder independent of the reader)."""
    h, w, c = img.shape
    px = img.reshape(h, w * c).astype(np.int32)
    out = []
    for r, kind in enumerate(kinds):
        row = px[r]
        up = px[r - 1] if r else np.zeros_like(row)
        left = np.concatenate([np.zeros(c, np.int32), row[:-c]])
        upleft = np.concatenate([np.zeros(c, np.int32), up[:-c]])
        if kind == 0:
            pred = 0
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = up
        elif kind == 3:
            pred = (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def _png(img: np.ndarray, kinds, colour: int, depth: int = 8, interlace: int = 0, split: int = 3) -> bytes:
    h, w = img.shape[:2]
    data = zlib.compress(_filter_rows(img, kinds))
    parts = [data[i * len(data) // split : (i + 1) * len(data) // split] for i in range(split)]
    header = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    chunks = [imageio._chunk(b"IHDR", header), imageio._chunk(b"tEXt", b"k\x00v")]
    chunks += [imageio._chunk(b"IDAT", p) for p in parts] + [imageio._chunk(b"IEND", b"")]
    return imageio.PNG_SIGNATURE + b"".join(chunks)


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3), (1, 1, 1), (64, 48, 3)])
def test_read_what_encode_png_writes(shape, tmp_path):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    imageio.write_png(tmp_path / "a.png", img)
    back = imageio.read_png(tmp_path / "a.png")
    np.testing.assert_array_equal(back.reshape(img.shape), img)


@pytest.mark.parametrize("colour,channels", [(0, 1), (2, 3), (4, 2), (6, 4)])
@pytest.mark.parametrize("kinds", ["each", "all-paeth", "sub-up"])
def test_read_every_filter_type(colour, channels, kinds):
    h, w = 13, 11
    rng = np.random.default_rng(colour)
    # Smooth ramps plus noise: realistic for Average/Paeth, and values near 0/255 exercise the modulo.
    ramp = (np.arange(h)[:, None, None] * 7 + np.arange(w)[None, :, None] * 13 + np.arange(channels) * 50) % 256
    img = ((ramp + rng.integers(0, 9, (h, w, channels))) % 256).astype(np.uint8)
    rows = {"each": [r % 5 for r in range(h)], "all-paeth": [4] * h, "sub-up": [1, 2] * 6 + [1]}[kinds]
    np.testing.assert_array_equal(imageio.decode_png(_png(img, rows, colour)), img)


def test_to_rgb():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    assert imageio.to_rgb(grey).shape == (2, 3, 3) and (imageio.to_rgb(grey)[..., 2] == grey[..., 0]).all()
    rgba = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(imageio.to_rgb(rgba), rgba[..., :3])
    np.testing.assert_array_equal(imageio.to_rgb(rgba[..., :2])[..., 0], rgba[..., 0])


def test_unsupported_pngs_are_refused():
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="bit depth 16"):
        imageio.decode_png(_png(img, [0] * 4, 2, depth=16))
    with pytest.raises(ValueError, match="interlaced"):
        imageio.decode_png(_png(img, [0] * 4, 2, interlace=1))
    with pytest.raises(ValueError, match="palette"):
        imageio.decode_png(_png(img[..., :1], [0] * 4, 3))
    with pytest.raises(ValueError, match="unknown filter type 7"):
        imageio.decode_png(_png(img, [7, 0, 0, 0], 2))


def test_damaged_pngs_are_refused(tmp_path):
    data = imageio.encode_png(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="signature"):
        imageio.decode_png(b"GIF89a" + data[6:])
    with pytest.raises(ValueError, match="truncated"):
        imageio.decode_png(data[:-20])
    corrupt = bytearray(data)
    corrupt[40] ^= 0xFF  # inside the IDAT payload
    with pytest.raises(ValueError, match="CRC"):
        imageio.decode_png(bytes(corrupt))
    (tmp_path / "bad.png").write_bytes(data[:30])
    with pytest.raises(ValueError, match="bad.png"):
        imageio.read_png(tmp_path / "bad.png")
