import h5py
import numpy as np
import pytest
import torch

from synthcore import imageio
from synthcore.cli.main import main
from synthcore.embedding import embed, from_uint8
from synthcore.nets.embedders import load_embedder
from tests.nets.conftest import small_state_dict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "backbone.pth"
    torch.save(small_state_dict("iresnet18"), path)
    return path


def _images(folder, sizes, seed=0):
    rng = np.random.default_rng(seed)
    pixels = {}
    for i, size in enumerate(sizes):
        rel = f"{i // 2:05d}/{i % 2}.png"
        px = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        imageio.write_png(folder / rel, px)
        pixels[rel] = px
    return pixels


def test_embed_folder(tmp_path, checkpoint, capsys):
    pixels = _images(tmp_path / "imgs", [112] * 5)
    out = tmp_path / "emb.h5"
    args = ["embed", "--embedder", str(checkpoint), "--images", str(tmp_path / "imgs"), "--out", str(out)]
    assert main(args + ["--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "5/5" in captured.err and "100%" in captured.err  # progress bar on stderr
    with h5py.File(out) as f:
        paths = [p.decode() for p in f["path"][:]]
        emb = f["embedding"][:]
        attrs = dict(f.attrs)
    assert paths == sorted(pixels) and emb.shape == (5, 512) and emb.dtype == np.float32
    assert attrs["arch"] == "iresnet18" and attrs["channel_order"] == "RGB" and not attrs["normalized"]
    assert len(attrs["embedder_sha256"]) == 64 and attrs["crop"] == "none"
    e = load_embedder(checkpoint)
    with torch.no_grad():
        want = embed(from_uint8(np.stack([pixels[p] for p in paths])), e, normalize=False)
    np.testing.assert_allclose(emb, want.numpy(), rtol=1e-4, atol=1e-4)


def test_embed_generator_frames_with_crop(tmp_path, checkpoint):
    pixels = _images(tmp_path / "imgs", [256, 256, 128], seed=1)  # mixed sizes are batched per size
    out = tmp_path / "emb.h5"
    args = ["embed", "--embedder", str(checkpoint), "--images", str(tmp_path / "imgs"), "--out", str(out)]
    assert main(args + ["--crop", "arcface", "--flip", "--quiet"]) == 0
    with h5py.File(out) as f:
        emb, paths = f["embedding"][:], [p.decode() for p in f["path"][:]]
        assert f.attrs["crop"] == "arcface" and f.attrs["flip"]
    e = load_embedder(checkpoint)
    with torch.no_grad():
        want = embed(from_uint8(pixels[paths[2]]), e, crop="arcface", flip=True, normalize=False)
    np.testing.assert_allclose(emb[2], want[0].numpy(), rtol=1e-4, atol=1e-4)


def test_refuses_uncropped_frames_and_existing_output(tmp_path, checkpoint, capsys):
    _images(tmp_path / "imgs", [256])
    out = tmp_path / "emb.h5"
    args = ["embed", "--embedder", str(checkpoint), "--images", str(tmp_path / "imgs"), "--out", str(out), "--quiet"]
    assert main(args) == 1
    assert "pass --crop" in capsys.readouterr().err and not out.exists()
    out.write_bytes(b"keep me")
    assert main(args + ["--crop", "arcface"]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(args + ["--crop", "arcface", "--overwrite"]) == 0
    assert h5py.is_hdf5(out)


def test_errors_are_reported(tmp_path, checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    base = ["embed", "--embedder", str(checkpoint), "--out", str(tmp_path / "o.h5")]
    assert main(base + ["--images", str(tmp_path / "empty")]) == 1
    assert "no .png or .jpg images" in capsys.readouterr().err
    _images(tmp_path / "imgs", [112])
    assert main(base + ["--images", str(tmp_path / "imgs"), "--crop", "mtcnn"]) == 1
    assert "unknown --crop" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nope")
    args = ["embed", "--embedder", str(bad), "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "x.h5")]
    assert main(args) == 1
    assert "not a readable PyTorch file" in capsys.readouterr().err
    assert not list(tmp_path.glob(".o.h5.*"))  # no temporary files left behind


def test_a_failed_write_keeps_the_old_output_and_leaves_no_temp(tmp_path, checkpoint, capsys, monkeypatch):
    _images(tmp_path / "imgs", [112])
    out = tmp_path / "emb.h5"
    args = ["embed", "--embedder", str(checkpoint), "--images", str(tmp_path / "imgs"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    old = out.read_bytes()
    real = h5py.Group.create_dataset

    def fail_on_paths(self, name, *a, **kw):  # the embeddings are written, then writing the paths fails
        if name == "path":
            raise OSError("disk full")
        return real(self, name, *a, **kw)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_on_paths)
    assert main(args + ["--overwrite"]) == 1
    assert capsys.readouterr().err == "synthcore embed: error: disk full\n"
    monkeypatch.undo()
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.h5", "imgs"]  # no temporary file left


def test_embed_reads_jpeg_photos(tmp_path, checkpoint):
    from PIL import Image

    from synthcore import imageio

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(folder / "a.jpg", quality=95)
    out = tmp_path / "emb.h5"
    assert main(["embed", "--embedder", str(checkpoint), "--images", str(folder), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out) as f:
        assert [p.decode() for p in f["path"][:]] == ["a.jpg"]
        emb = f["embedding"][:]
    with torch.no_grad():
        want = embed(from_uint8(imageio.read_image(folder / "a.jpg")[None]), load_embedder(checkpoint), normalize=False)
    np.testing.assert_allclose(emb, want.numpy(), rtol=1e-4, atol=1e-4)
