"""``synthcore plot`` end to end on a small run directory."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from synthcore import imageio
from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, write_stats


def _run(tmp_path):
    rd = tmp_path / "run"
    write_stats(rd / "stats.h5", [{"dist_min": 0.3 + 0.05 * t, "dist_avg": 1.4, "dist_max": 2.1} for t in range(6)])
    g = np.random.default_rng(0)
    with SampleCollection.create(rd / "samples.h5", w_dim=3, embedding_dim=6) as c:
        for i in range(4):
            c.append(i, ["reference", "a"], w=np.zeros((2, 3), np.float32),
                     embedding=g.standard_normal((2, 6)).astype(np.float32))  # fmt: skip
    return rd


def test_plot_writes_pngs_and_summary(tmp_path, capsys):
    rd = _run(tmp_path)
    assert main(["plot", "--outdir", str(rd)]) == 0
    out = capsys.readouterr().out
    assert "inter-identity cosine" in out and "over 6 pairs" in out and "intra-identity cosine" in out
    pngs = sorted(p.name for p in (rd / "plots").glob("*.png"))
    assert pngs == ["similarity.png", "similarity_inter.png", "similarity_intra.png", "stats_angles.png"]
    for name in pngs:
        px = imageio.read_png(rd / "plots" / name)  # a PNG Pillow decodes, of a readable size
        assert px.shape[0] >= 600 and px.shape[1] >= 1000
    assert not list((rd / "plots").glob("*.svg"))
    assert RunDir(rd).records()[-1]["status"] == "ok"


def test_plot_format_svg_and_pdf(tmp_path, capsys):
    rd = _run(tmp_path)
    assert main(["plot", "--outdir", str(rd), "--format", "svg", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    root = ET.parse(rd / "plots" / "stats_angles.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # The plot of the minimum angle: one line per statistic, labelled in the legend.
    texts = {"".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"dist_min", "dist_avg", "dist_max", "iteration"} <= texts
    assert main(["plot", "--outdir", str(rd), "--format", "pdf", "--plots", str(tmp_path / "pdf"), "--quiet"]) == 0
    assert sorted(p.suffix for p in (tmp_path / "pdf").iterdir()) == [".json"] + [".pdf"] * 4
    assert (tmp_path / "pdf" / "similarity.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(SystemExit) as exc:  # argparse refuses it
        main(["plot", "--outdir", str(rd), "--format", "gif"])
    assert exc.value.code == 2
    assert "--format" in capsys.readouterr().err


def test_plot_while_locked_and_errors(tmp_path, capsys):
    rd = _run(tmp_path)
    holder = RunDir(rd).lock("references")
    try:
        assert main(["plot", "--outdir", str(rd), "--plots", str(tmp_path / "p"), "--quiet"]) == 0
        assert "unrecorded" in capsys.readouterr().err
        assert (tmp_path / "p" / "stats_angles.png").is_file()
    finally:
        holder.unlock()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", "--outdir", str(empty)]) == 1
    assert "nothing to plot" in capsys.readouterr().err
    assert main(["plot", "--outdir", str(tmp_path / "missing")]) == 1


def test_plot_computes_missing_embeddings(tmp_path, capsys):
    import torch

    from synthcore.nets.generator_files import save_generator
    from synthcore.nets.stylegan2 import Generator
    from tests.nets.conftest import small_state_dict

    G = Generator(z_dim=8, w_dim=8, img_resolution=32, channel_base=128, channel_max=16,
                  mapping_kwargs={"num_layers": 2}).eval()  # fmt: skip
    save_generator(G, tmp_path / "G.pt")
    torch.save(small_state_dict("iresnet18"), tmp_path / "e.pth")
    rd = tmp_path / "run"
    with torch.no_grad():
        w = G.mapping(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), None, truncation_psi=0.7)[:, 0]
    with SampleCollection.create(rd / "samples.h5", w_dim=8, generator=tmp_path / "G.pt") as c:
        c.append([0, 0, 1, 2], ["reference", "a", "reference", "reference"], w=w)
    assert main(["plot", "--outdir", str(rd)]) == 1  # nothing to plot without embeddings
    assert "no embeddings" in capsys.readouterr().out
    assert main(["plot", "--outdir", str(rd), "--embedder", str(tmp_path / "e.pth"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "over 3 pairs" in out and "over 1 pairs" in out  # 3 identities; one identity with 2 samples
    with SampleCollection.open(rd / "samples.h5") as c:
        assert "embedding" not in c.columns  # computed for the plot, not stored
