import json
import zipfile

import numpy as np
import pytest
import torch

from synthcore.align import fixed_crop
from synthcore.dataset import SampleCollection, image_relpath, render_collection, write_dataset_zip
from synthcore.dataset.render import noise_seed_for
from synthcore.imageio import read_png, to_uint8

from .conftest import StandInGenerator, fill


def _expected(G, w, crop, noise="const"):
    ws = w[:, None].expand(-1, G.num_ws, -1) if w.ndim == 2 else w
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode=noise)
        if crop:
            img = fixed_crop(img, crop)
    return [to_uint8(x) for x in img]


@pytest.mark.parametrize("crop", [None, "arcface"])
def test_render_writes_every_sample(tmp_path, generator, crop):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=6, embedding_dim=2) as c:
        fill(c, identities=3, variations=2)
    out = tmp_path / "images"
    with SampleCollection.open(tmp_path / "s.h5") as c:
        res = render_collection(c, generator, out, crop=crop, batch=4, progress=False)
        data = c.read()
    assert (res.written, res.skipped) == (9, 0)
    want = _expected(generator, torch.from_numpy(data["w"]), crop)
    size = 112 if crop else 32
    for k, (i, label) in enumerate(zip(data["identity"], data["label"])):
        got = read_png(out / image_relpath(i, label))
        assert got.shape == (size, size, 3)
        assert np.array_equal(got, want[k])
    assert sorted(p.name for p in (out / "00001").iterdir()) == ["augmentation_0.png", "augmentation_1.png",
                                                                 "reference.png"]  # fmt: skip


def test_render_resumes_and_overwrites(tmp_path, generator):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=6, embedding_dim=2) as c:
        fill(c, identities=2, variations=1)
    out = tmp_path / "img"
    with SampleCollection.open(tmp_path / "s.h5") as c:
        render_collection(c, generator, out, crop=None, rows=[0, 3], progress=False)
        marker = out / image_relpath(0, "reference")
        marker.write_bytes(b"kept")  # an existing image is not touched on resume
        res = render_collection(c, generator, out, crop=None, progress=False)
        assert (res.written, res.skipped) == (2, 2) and marker.read_bytes() == b"kept"
        res = render_collection(c, generator, out, crop=None, overwrite=True, progress=False)
        assert res.written == 4 and marker.read_bytes() != b"kept"
    assert not list(out.rglob("*.tmp"))


def test_w_plus_and_seeded_noise_independent_of_batch(tmp_path):
    G = StandInGenerator(w_dim=4, num_ws=2)
    g = np.random.default_rng(1)
    wp = g.standard_normal((5, 2, 4)).astype(np.float32)
    with SampleCollection.create(tmp_path / "s.h5", w_dim=4, num_ws=2, noise_mode="seeded") as c:
        c.append(np.arange(5), "reference", w_plus=wp, noise_seed=np.array([3, 1, 4, 1, 5]))
    outs = []
    with SampleCollection.open(tmp_path / "s.h5") as c:
        for batch in (1, 3):
            out = tmp_path / f"b{batch}"
            render_collection(c, G, out, crop=None, batch=batch, progress=False)
            outs.append([read_png(out / image_relpath(i, "reference")) for i in range(5)])
        # Same seed, same noise; different seeds differ. The caller's RNG is left alone.
        torch.manual_seed(123)
        before = torch.rand(1)
        torch.manual_seed(123)
        render_collection(c, G, tmp_path / "again", crop=None, progress=False)
        assert torch.equal(torch.rand(1), before)
        # Random noise at render time: reproducible per seed, new noise for another seed.
        render_collection(c, G, tmp_path / "r0", crop=None, noise_mode="random", seed=0, progress=False)
        render_collection(c, G, tmp_path / "r0b", crop=None, noise_mode="random", seed=0, batch=2, progress=False)
        render_collection(c, G, tmp_path / "r1", crop=None, noise_mode="random", seed=1, progress=False)
    for a, b in zip(*outs):
        assert np.array_equal(a, b)
    torch.manual_seed(4)
    ws = torch.from_numpy(wp[2:3])
    assert np.array_equal(outs[0][2], to_uint8(G.synthesis(ws, noise_mode="random")[0].detach()))
    r0 = read_png(tmp_path / "r0" / "00001" / "reference.png")
    assert np.array_equal(r0, read_png(tmp_path / "r0b" / "00001" / "reference.png"))
    assert not np.array_equal(r0, read_png(tmp_path / "r1" / "00001" / "reference.png"))
    assert noise_seed_for(0, 1) != noise_seed_for(1, 1) and noise_seed_for(0, 1) == noise_seed_for(0, 1)


def test_render_errors(tmp_path, generator):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=5) as c:
        c.append(0, "reference", w=np.zeros((1, 5), np.float32))
    with SampleCollection.open(tmp_path / "s.h5") as c:
        with pytest.raises(ValueError, match="w_dim"):
            render_collection(c, generator, tmp_path / "x", progress=False)
        with pytest.raises(ValueError, match="unknown crop"):
            render_collection(c, generator, tmp_path / "x", crop="nope", progress=False)


def test_dataset_zip(tmp_path, generator):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=6, embedding_dim=2) as c:
        fill(c, identities=3, variations=1)
    out = tmp_path / "images_full"
    with SampleCollection.open(tmp_path / "s.h5") as c:
        with pytest.raises(FileNotFoundError, match="6 of 6 images are missing"):
            write_dataset_zip(out.parent, tmp_path / "d.zip", c)
        render_collection(c, generator, out, crop=None, progress=False)
        z1 = write_dataset_zip(out, tmp_path / "d.zip", c)
    z2 = write_dataset_zip(out, tmp_path / "d2.zip")  # from the folder alone
    with zipfile.ZipFile(z2) as zf:  # folder order: sorted paths, the identity from the folder name
        labels2 = json.loads(zf.read("dataset.json"))["labels"]
    assert labels2[:2] == [["00000/augmentation_0.png", 0], ["00000/reference.png", 0]] and len(labels2) == 6
    with zipfile.ZipFile(z1) as zf:
        names = zf.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        labels = json.loads(zf.read("dataset.json"))["labels"]
        assert labels[:2] == [["00000/reference.png", 0], ["00000/augmentation_0.png", 0]]
        assert [lab for _, lab in labels] == [0, 0, 1, 1, 2, 2] and set(n for n, _ in labels) <= set(names)
        meta = [json.loads(line) for line in zf.read("metadata.jsonl").decode().splitlines()]
        assert meta[3] == {"file": "00001/augmentation_0.png", "identity": 1, "label": "augmentation_0", "row": 3}
        assert zf.read("00002/reference.png") == (out / "00002" / "reference.png").read_bytes()
    # Reproducible bytes: the same images give the same archive.
    with SampleCollection.open(tmp_path / "s.h5") as c:
        assert write_dataset_zip(out, tmp_path / "d3.zip", c).read_bytes() == z1.read_bytes()


def test_real_generator(tmp_path):
    from synthcore.nets.stylegan2 import Generator

    G = Generator(z_dim=8, w_dim=8, img_resolution=16, channel_base=128, channel_max=16,
                  mapping_kwargs={"num_layers": 2}).eval()  # fmt: skip
    with torch.no_grad():
        w = G.mapping(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)[:, 0]
    with SampleCollection.create(tmp_path / "s.h5", w_dim=8) as c:
        c.append([0, 0, 1, 1], ["reference", "augmentation_0", "reference", "augmentation_0"], w=w)
    with SampleCollection.open(tmp_path / "s.h5") as c:
        render_collection(c, G, tmp_path / "img", crop="arcface", batch=3, progress=False)
    want = _expected(G, w, "arcface")
    assert np.array_equal(read_png(tmp_path / "img" / "00001" / "augmentation_0.png"), want[3])


def _temporaries(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_failed_writes_keep_the_old_image_and_zip_and_leave_no_temp(tmp_path, generator, monkeypatch):
    from synthcore import fileio

    with SampleCollection.create(tmp_path / "s.h5", w_dim=6, embedding_dim=2) as c:
        fill(c, identities=2, variations=0)
    out = tmp_path / "images_full"
    with SampleCollection.open(tmp_path / "s.h5") as c:
        render_collection(c, generator, out, crop=None, progress=False)
        zip_path = write_dataset_zip(out, tmp_path / "d.zip", c)
    png = out / "00001" / "reference.png"
    old_png, old_zip = png.read_bytes(), zip_path.read_bytes()

    # An image write fails after its bytes are written, before the rename.
    def fail(path):
        raise OSError("disk full")

    monkeypatch.setattr(fileio, "_follow_umask", fail)
    with SampleCollection.open(tmp_path / "s.h5") as c:
        with pytest.raises(OSError, match="disk full"):
            render_collection(c, StandInGenerator(seed=1), out, crop=None, overwrite=True, progress=False)
    monkeypatch.undo()
    assert png.read_bytes() == old_png and _temporaries(out) == []

    # The archive fails half-way through its entries.
    calls = []
    real = zipfile.ZipFile.writestr

    def fail_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("read error")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_second)
    with SampleCollection.open(tmp_path / "s.h5") as c:
        with pytest.raises(OSError, match="read error"):
            write_dataset_zip(out, zip_path, c)
    assert zip_path.read_bytes() == old_zip and _temporaries(tmp_path) == []
