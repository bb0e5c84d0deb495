"""``synthcore plot`` end to end on a small run directory."""

import math
import xml.etree.ElementTree as ET

import numpy as np

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


def test_plot_writes_svgs_and_summary(tmp_path, capsys):
    rd = _run(tmp_path)
    assert main(["plot", "--outdir", str(rd)]) == 0
    out = capsys.readouterr().out
    assert "inter-identity cosine" in out and "over 6 pairs" in out and "intra-identity cosine" in out
    svgs = sorted(p.name for p in (rd / "plots").glob("*.svg"))
    assert svgs == ["similarity.svg", "similarity_inter.svg", "similarity_intra.svg", "stats_angles.svg"]
    for name in svgs:
        root = ET.parse(rd / "plots" / name).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert RunDir(rd).records()[-1]["status"] == "ok"
    # The plot of the minimum angle: its line rises from left to right (y grows downwards in SVG).
    root = ET.parse(rd / "plots" / "stats_angles.svg").getroot()
    first = root.find("{http://www.w3.org/2000/svg}polyline").get("points").split()
    ys = [float(p.split(",")[1]) for p in first]
    assert all(b < a for a, b in zip(ys, ys[1:]))
    assert math.isfinite(ys[0])


def test_plot_while_locked_and_errors(tmp_path, capsys):
    rd = _run(tmp_path)
    holder = RunDir(rd).lock("references")
    try:
        assert main(["plot", "--outdir", str(rd), "--plots", str(tmp_path / "p"), "--quiet"]) == 0
        assert "unrecorded" in capsys.readouterr().err
        assert (tmp_path / "p" / "stats_angles.svg").is_file()
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
