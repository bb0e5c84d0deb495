import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from synthcore import fileio, imageio

# ------------------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 1), (4, 3, 2), (4, 3, 3), (6, 5, 4), (1, 1, 1), (64, 48, 3)])
def test_png_roundtrip(shape, tmp_path):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    imageio.write_png(tmp_path / "a.png", img)
    back = imageio.read_png(tmp_path / "a.png")
    np.testing.assert_array_equal(back.reshape(img.shape), img)
    with Image.open(tmp_path / "a.png") as pil:  # a plain PNG any reader opens
        assert pil.format == "PNG" and pil.size == (shape[1], shape[0])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_encode_png_matches_the_file_and_non_contiguous_input():
    img = np.random.default_rng(2).integers(0, 256, (3, 8, 6), dtype=np.uint8).transpose(1, 2, 0)  # [8, 6, 3] view
    assert not img.flags.c_contiguous
    data = imageio.encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(imageio.decode_png(data), img)
    # Every compression level gives the same pixels.
    np.testing.assert_array_equal(imageio.decode_png(imageio.encode_png(img, compress_level=9)), img)


def test_float_tensor_scaling(tmp_path):
    t = torch.tensor([[[-1.0, 0.0, 1.0, 2.0]]])  # [C=1, H=1, W=4]
    imageio.write_png(tmp_path / "t.png", t)
    assert imageio.read_png(tmp_path / "t.png").ravel().tolist() == [0, 128, 255, 255]
    imageio.write_png(tmp_path / "u.png", torch.tensor([[[0.0, 0.5, 1.0]]]), lo=0.0, hi=1.0)
    assert imageio.read_png(tmp_path / "u.png").ravel().tolist() == [0, 128, 255]


def test_bad_images_rejected(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        imageio.encode_png(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="C in 1..4"):
        imageio.encode_png(np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        imageio.encode_png(np.zeros((0, 2), np.uint8))
    with pytest.raises(ValueError, match="out.png"):
        imageio.write_png(tmp_path / "out.png", np.zeros((2, 2, 7), np.uint8))
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    old = np.full((4, 4, 3), 7, np.uint8)
    imageio.write_png(path, old)

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as fh:
            fh.write(b"\x89PNG half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        imageio.write_png(path, np.zeros((4, 4, 3), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(imageio.read_png(path), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_png_writes_follow_fileio_policy(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(fileio, "fsync_file", lambda p: synced.append(p))
    imageio.write_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    assert synced == []  # rendered images are not fsynced (fileio: durable=False for bulk outputs)
    imageio.write_png(tmp_path / "b.png", np.zeros((2, 2), np.uint8), durable=True)
    assert len(synced) == 1
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask  # the umask decides, not mkstemp's 0600


# ------------------------------------------------------------------------------------------------ reading


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


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


def _png(img: np.ndarray, kinds, colour: int, split: int = 3) -> bytes:
    h, w = img.shape[:2]
    data = zlib.compress(_filter_rows(img, kinds))
    parts = [data[i * len(data) // split : (i + 1) * len(data) // split] for i in range(split)]
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    chunks = [_chunk(b"IHDR", header), _chunk(b"tEXt", b"k\x00v")]
    chunks += [_chunk(b"IDAT", p) for p in parts] + [_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


@pytest.mark.parametrize("colour,channels", [(0, 1), (2, 3), (4, 2), (6, 4)])
@pytest.mark.parametrize("kinds", ["each", "all-paeth", "sub-up"])
def test_read_every_filter_and_colour_type(colour, channels, kinds):
    h, w = 13, 11
    rng = np.random.default_rng(colour)
    # Smooth ramps plus noise: realistic for Average/Paeth, and values near 0/255 exercise the modulo.
    ramp = (np.arange(h)[:, None, None] * 7 + np.arange(w)[None, :, None] * 13 + np.arange(channels) * 50) % 256
    img = ((ramp + rng.integers(0, 9, (h, w, channels))) % 256).astype(np.uint8)
    rows = {"each": [r % 5 for r in range(h)], "all-paeth": [4] * h, "sub-up": [1, 2] * 6 + [1]}[kinds]
    np.testing.assert_array_equal(imageio.decode_png(_png(img, rows, colour)), img)


def _pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_sixteen_bit_and_palette_pngs(tmp_path):
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    (tmp_path / "g16.png").write_bytes(_pil_bytes(Image.fromarray(grey16), "PNG"))
    back = imageio.read_png(tmp_path / "g16.png")
    assert back.shape == (3, 4, 1)
    np.testing.assert_array_equal(back[..., 0], np.rint(grey16 / 257.0).astype(np.uint8))  # scaled, not clipped
    rgb = np.random.default_rng(3).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=16)
    (tmp_path / "p.png").write_bytes(_pil_bytes(pal, "PNG"))
    np.testing.assert_array_equal(imageio.read_png(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    pal.info["transparency"] = 0
    (tmp_path / "pt.png").write_bytes(_pil_bytes(pal, "PNG", transparency=0))
    assert imageio.read_png(tmp_path / "pt.png").shape == (5, 6, 4)
    assert imageio.read_image(tmp_path / "pt.png").shape == (5, 6, 3)


def test_read_image_jpeg(tmp_path):
    y, x = np.mgrid[0:48, 0:64]
    rgb = np.stack([x * 4, y * 5, 255 - x * 3], axis=-1).astype(np.uint8)  # smooth: JPEG keeps it closely
    (tmp_path / "a.jpg").write_bytes(_pil_bytes(Image.fromarray(rgb), "JPEG", quality=95))
    back = imageio.read_image(tmp_path / "a.jpg")
    assert back.shape == (48, 64, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - rgb).mean() < 3
    (tmp_path / "g.jpeg").write_bytes(_pil_bytes(Image.fromarray(rgb[..., 0]), "JPEG", quality=95))
    grey = imageio.read_image(tmp_path / "g.jpeg")
    assert grey.shape == (48, 64, 3) and (grey[..., 0] == grey[..., 2]).all()
    (tmp_path / "c.jpg").write_bytes(_pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95))
    assert imageio.read_image(tmp_path / "c.jpg").shape == (48, 64, 3)
    with pytest.raises(ValueError, match="a.jpg: not a PNG"):
        imageio.read_png(tmp_path / "a.jpg")


def test_read_image_applies_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    (tmp_path / "r.jpg").write_bytes(_pil_bytes(Image.fromarray(stored), "JPEG", quality=95, exif=exif))
    shown = imageio.read_image(tmp_path / "r.jpg")
    assert shown.shape == (40, 20, 3)  # upright: portrait
    assert shown[:20, :, 0].mean() > 200 and shown[20:, :, 0].mean() < 50  # the red half is now on top


def test_to_rgb():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    assert imageio.to_rgb(grey).shape == (2, 3, 3) and (imageio.to_rgb(grey)[..., 2] == grey[..., 0]).all()
    rgba = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(imageio.to_rgb(rgba), rgba[..., :3])
    np.testing.assert_array_equal(imageio.to_rgb(rgba[..., :2])[..., 0], rgba[..., 0])


def test_damaged_files_are_refused_with_their_name(tmp_path):
    data = imageio.encode_png(np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="signature"):
        imageio.decode_png(b"GIF89a" + data[6:])
    with pytest.raises(ValueError, match="damaged"):
        imageio.decode_png(data[:-20])  # truncated
    with pytest.raises(ValueError, match="damaged"):
        imageio.decode_png(data[:-12])  # no IEND
    corrupt = bytearray(data)
    corrupt[60] ^= 0xFF  # inside the IDAT payload: its checksum no longer matches
    with pytest.raises(ValueError, match="damaged"):
        imageio.decode_png(bytes(corrupt))
    (tmp_path / "bad.png").write_bytes(data[:30])
    with pytest.raises(ValueError, match="bad.png"):
        imageio.read_png(tmp_path / "bad.png")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.jpg: not an image file"):
        imageio.read_image(tmp_path / "notes.jpg")
    jpeg = _pil_bytes(Image.fromarray(np.zeros((32, 32, 3), np.uint8)), "JPEG")
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(ValueError, match="cut.jpg"):
        imageio.read_image(tmp_path / "cut.jpg")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        imageio.read_image(tmp_path / "missing.png")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns, then synthcore refuses
@pytest.mark.parametrize("side", [10_000, 20_000])  # over Pillow's limit; over twice it (Pillow's own error)
def test_huge_header_refused_before_decoding(side):
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    data += _chunk(b"IEND", b"")
    with pytest.raises(ValueError, match=r"huge\.png: .*(pixels|bomb)"):
        imageio.decode_png(data, "huge.png")


def test_to_uint8_batch_equals_per_image():
    x = torch.rand(3, 3, 5, 4, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1
    batch = imageio.to_uint8(x)
    assert batch.shape == (3, 5, 4, 3) and batch.dtype == np.uint8
    for i in range(3):
        assert np.array_equal(batch[i], imageio.to_uint8(x[i]))
    with pytest.raises(ValueError, match="N, C, H, W"):
        imageio.to_uint8(x[0, 0])
