"""``synthcore render`` end to end: a real (tiny, random) generator file, a run directory, images and a zip."""

import json
import zipfile

import numpy as np
import pytest
import torch

from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, image_relpath
from synthcore.embedding import embed
from synthcore.imageio import read_png
from synthcore.nets.embedders import load_embedder
from synthcore.nets.generator_files import save_generator
from synthcore.nets.stylegan2 import Generator
from tests.nets.conftest import small_state_dict


def _generator(seed=0):
    return Generator(z_dim=8, w_dim=8, img_resolution=32, channel_base=128, channel_max=16,
                     mapping_kwargs={"num_layers": 2}, seed=seed).eval()  # fmt: skip


@pytest.fixture
def run(tmp_path):
    """A run directory whose samples.h5 records a generator file (and embeddings from an iResNet-18 file)."""
    G = _generator()
    gpath = tmp_path / "G.pt"
    save_generator(G, gpath)
    epath = tmp_path / "backbone.pth"
    torch.save(small_state_dict("iresnet18"), epath)
    E = load_embedder(epath)
    with torch.no_grad():
        w = G.mapping(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)[:, 0]
        e = embed(G.synthesis(w[:, None].expand(-1, G.num_ws, -1)), E, crop="arcface", normalize=False)
    rd = tmp_path / "run"
    with SampleCollection.create(rd / "samples.h5", w_dim=8, embedding_dim=e.shape[1], generator=gpath) as c:
        c.append([0, 0, 1, 1], ["reference", "augmentation_0", "reference", "augmentation_0"], w=w, embedding=e)
    return rd, gpath, epath


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_render_finish_rerun_force(run, capsys):
    rd, gpath, epath = run
    assert (
        main(["render", "--outdir", str(rd), "--batch", "3", "--device", "cpu", "--zip", "--embedder", str(epath)]) == 0
    )
    out = capsys.readouterr()
    assert "4 images written" in out.out and "4/4" in out.err
    # The written PNGs embed like the stored float images did. Not 1.0: this random generator's output
    # strays beyond [-1, 1] and the PNGs clip it (8-bit rounding alone measured ~1 - 1e-5).
    cos = float(out.out.split("cosine to the stored embeddings min ")[1].split(",")[0])
    assert cos > 0.95
    img = read_png(rd / "images_arcface" / image_relpath(1, "augmentation_0"))
    assert img.shape == (112, 112, 3)
    with zipfile.ZipFile(rd / "images_arcface.zip") as zf:
        labels = json.loads(zf.read("dataset.json"))["labels"]
    assert labels == [["00000/reference.png", 0], ["00000/augmentation_0.png", 0],
                      ["00001/reference.png", 1], ["00001/augmentation_0.png", 1]]  # fmt: skip
    start = RunDir(rd).records()[0]
    assert start["command"] == "render" and start["options"]["network"] == str(gpath.resolve())
    assert start["options"]["crop"] == "arcface" and start["options"]["batch"] == 3

    before = _files(rd)
    assert main(["render", "--outdir", str(rd), "--device", "cpu"]) == 0
    assert "already finished" in capsys.readouterr().out
    after = _files(rd)
    after.pop(".lock"), before.pop(".lock")
    assert after == before  # nothing changed, not even the run record

    target = rd / "images_arcface" / image_relpath(0, "reference")
    target.write_bytes(b"stale")
    assert main(["render", "--outdir", str(rd), "--device", "cpu", "--force", "--quiet"]) == 0
    assert target.read_bytes() != b"stale" and "4 images written" in capsys.readouterr().out

    # Other crops are their own stage and folder.
    assert main(["render", "--outdir", str(rd), "--device", "cpu", "--crop", "none", "--quiet"]) == 0
    assert read_png(rd / "images_full" / image_relpath(1, "reference")).shape == (32, 32, 3)
    assert set(RunDir(rd).finished_stages()) == {"render_arcface", "render_full"}


def test_render_refuses_other_generator(run, tmp_path, capsys):
    rd, gpath, _ = run
    other = tmp_path / "other.pt"
    save_generator(_generator(seed=1), other)
    assert main(["render", "--outdir", str(rd), "--network", str(other), "--device", "cpu"]) == 1
    assert "not the generator the samples were made with" in capsys.readouterr().err
    assert not (rd / "images_arcface").exists()
    assert main(["render", "--outdir", str(rd), "--network", str(other), "--ignore-hash", "--quiet"]) == 0
    gpath.unlink()
    assert main(["render", "--outdir", str(rd), "--crop", "none"]) == 1
    assert "pass --network" in capsys.readouterr().err


def test_render_resumes_after_samples_change(run, capsys):
    rd, gpath, _ = run
    assert main(["render", "--outdir", str(rd), "--quiet", "--crop", "none"]) == 0
    with SampleCollection.open(rd / "samples.h5", "a") as c:
        c.append(
            2, "reference", w=np.zeros((1, 8), np.float32), embedding=np.zeros((1, c.width("embedding")), np.float32)
        )
    assert main(["render", "--outdir", str(rd), "--crop", "none"]) == 0
    cap = capsys.readouterr()
    assert "changed since the last render" in cap.err
    assert (rd / "images_full" / "00002" / "reference.png").is_file()


def test_render_bad_input(tmp_path, capsys):
    assert main(["render", "--outdir", str(tmp_path)]) == 1
    assert "no sample collection" in capsys.readouterr().err
    assert main(["render", "--outdir", str(tmp_path), "--crop", "bogus"]) == 1
    assert "unknown --crop" in capsys.readouterr().err
