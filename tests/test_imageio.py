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
