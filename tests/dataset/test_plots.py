import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from synthcore import imageio
from synthcore.dataset import SampleCollection, plot_run, plot_stats, similarity_histograms, write_stats
from synthcore.dataset.plots import PNG_DPI, STAT_DOCS, save_figure, similarity_figure, stats_figure

SVG = "{http://www.w3.org/2000/svg}"


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _caption(fig):
    """The caption, unwrapped."""
    return "\n".join(t.get_text() for t in fig.texts).replace("\n    ", " ")


def _run(tmp_path):
    rows = [{"dist_min": 0.2 + 0.1 * t, "dist_avg": 1.5, "dist_max": 2.0, "timestep": math.nan} for t in range(8)]
    write_stats(tmp_path / "stats.h5", rows, attrs={"algorithm": "langevin"})
    write_stats(
        tmp_path / "stats_variations.h5",
        [{"intf_avg": 1.0, "refd_min": 0.1, "refd_max": 0.3, "odd": 1.0}] * 2,
        attrs={"algorithm": "dispersion"},
    )
    g = np.random.default_rng(0)
    with SampleCollection.create(tmp_path / "samples.h5", w_dim=2, embedding_dim=8) as c:
        for i in range(5):  # 5 identities x 4 samples near their own centre
            centre = g.standard_normal(8) * 3
            e = (centre + g.standard_normal((4, 8)) * 0.3).astype(np.float32)
            c.append(i, ["reference", "v0", "v1", "v2"], w=np.zeros((4, 2), np.float32), embedding=e)
        c.append(9, "reference", w=np.zeros((1, 2), np.float32), embedding=np.ones((1, 8), np.float32))


def test_plot_run_writes_pngs_and_summary(tmp_path):
    _run(tmp_path)
    written = plot_run(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["similarity.json", "similarity.png", "similarity_inter.png", "similarity_intra.png",
                     "stats_angles.png", "stats_variations_force_interaction.png", "stats_variations_odd.png",
                     "stats_variations_refd.png"]  # fmt: skip
    for p in written:
        if p.suffix == ".png":
            px = imageio.read_png(p)
            assert px.shape[1] == 8 * PNG_DPI and px.shape[0] > 600  # 8 inches wide, plot area plus caption
            assert len(np.unique(px[..., 0])) > 10  # drawn (anti-aliased lines and text), not a blank canvas
    summary = json.loads((tmp_path / "plots" / "similarity.json").read_text())
    assert summary["inter"]["pairs"] == 6 * 5 // 2 and summary["intra"]["pairs"] == 5 * 6
    assert sum(summary["intra"]["counts"]) == 30 and summary["intra"]["identities"] == 5
    assert summary["intra"]["mean"] > 0.8 > summary["inter"]["mean"]
    # Stats that are NaN throughout get no chart; the timestep chart is absent here.
    assert not (tmp_path / "plots" / "stats_timestep.png").exists()
    assert plot_stats(tmp_path / "stats.h5", tmp_path / "only") == [tmp_path / "only" / "stats_angles.png"]
    assert not list((tmp_path / "plots").glob(".*tmp"))  # atomic writes leave no temporary file


def test_stats_chart_content_and_caption():
    it = np.arange(3.0)  # three iterations: a default locator would put ticks at 0.25, 0.5, ...
    series = {"dist_min": np.array([0.3, 0.5, 0.7]), "dist_avg": np.array([1.4, 1.5, 1.5]), "dist_max": np.ones(3) * 2}
    fig = stats_figure(it, series, "Embedding angles", "angle (rad)", "stats.h5, 3 rows", "identities")
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == set(series)
    np.testing.assert_allclose(lines["dist_min"].get_ydata(), series["dist_min"])
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no half-iteration ticks
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "angle (rad)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["dist_min", "dist_avg", "dist_max"]
    caption = _caption(fig)
    # Every statistic on the chart is explained in its caption.
    assert "dist_min / dist_avg / dist_max: the smallest / mean / largest angle between the embeddings of two " in (
        caption
    )
    assert "identities" in caption and "Shaded" in caption
    assert any("degrees" in t for t in _texts(fig))  # a second axis in degrees for angles


def test_variation_stage_caption_and_unknown_statistics():
    fig = stats_figure(
        np.arange(4.0), {"dist_min": np.arange(4.0)}, "t", "angle (rad)", "s", "variations of one identity"
    )
    assert "two variations of one identity" in _caption(fig)
    fig = stats_figure(np.arange(4.0), {"odd": np.array([1.0, np.nan, 2, 3])}, "odd", "value", "s")
    caption = _caption(fig)
    assert "odd: no description" in caption and "Gaps" in caption
    for name, doc in STAT_DOCS.items():  # every known statistic has a sentence, not an empty string
        assert len(doc) > 20, name


def test_svg_and_pdf_for_papers(tmp_path):
    _run(tmp_path)
    written = plot_run(tmp_path, tmp_path / "svg", fmt="svg")
    svgs = [p for p in written if p.suffix == ".svg"]
    assert len(svgs) == 7
    root = ET.parse(tmp_path / "svg" / "stats_angles.svg").getroot()
    assert root.tag == f"{SVG}svg"
    texts = "".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    assert "dist_min" in texts and "iteration" in texts  # text stays text, searchable in a paper
    again = plot_stats(tmp_path / "stats.h5", tmp_path / "svg2", fmt="svg")[0]
    assert again.read_bytes() == (tmp_path / "svg" / "stats_angles.svg").read_bytes()  # reproducible bytes
    pdf = plot_stats(tmp_path / "stats.h5", tmp_path / "pdf", fmt="pdf")[0]
    assert pdf.suffix == ".pdf" and pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="unknown plot format 'jpg'"):
        plot_stats(tmp_path / "stats.h5", tmp_path / "x", fmt="jpg")


def test_similarity_figure_counts_and_density(tmp_path):
    edges = np.linspace(-1, 1, 11)
    h = {"edges": edges, "counts": np.array([0, 0, 0, 1, 4, 9, 4, 1, 0, 0]), "pairs": 19, "identities": 7,
         "of_identities": 9, "mean": 0.05, "min": -0.3, "max": 0.5}  # fmt: skip
    fig = similarity_figure({"inter": h}, ["inter"], density=False)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "pairs per bin (bin width 0.2)" and ax.get_xlabel() == "cosine similarity"
    assert "a seeded subsample of 9" in _caption(fig)
    assert ax.get_xlim()[0] > -1.0  # zoomed on the occupied bins
    dens = similarity_figure({"inter": h}, ["inter"], density=True)
    assert dens.axes[0].get_ylabel() == "density" and "area is 1" in _caption(dens)
    path = save_figure(fig, tmp_path / "h.png")
    assert imageio.read_png(path).shape[2] in (3, 4)


def test_plotting_never_touches_pyplot(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from synthcore.dataset.plots import stats_figure, save_figure\n"
        "fig = stats_figure(np.arange(3.0), {'prop_ict': np.ones(3)}, 't', 'fraction of pairs', 's')\n"
        f"save_figure(fig, {str(tmp_path / 'a.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env_path = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "python")
    res = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": env_path, "MPLBACKEND": ""},
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "a.png").is_file()


def test_similarity_histograms_exact_counts_and_subsample(tmp_path):
    g = np.random.default_rng(1)
    e = g.standard_normal((7, 4)).astype(np.float32)
    with SampleCollection.create(tmp_path / "s.h5", w_dim=1, embedding_dim=4) as c:
        c.append(np.arange(7), "reference", w=np.zeros((7, 1), np.float32), embedding=e)
    with SampleCollection.open(tmp_path / "s.h5") as c:
        h = similarity_histograms(c, bins=4)
        n = e / np.linalg.norm(e, axis=1, keepdims=True)
        cos = (n @ n.T)[np.triu_indices(7, 1)]
        assert h["inter"]["counts"].tolist() == np.histogram(cos, bins=4, range=(-1, 1))[0].tolist()
        assert math.isclose(h["inter"]["mean"], float(cos.mean()), rel_tol=1e-5)
        assert h["intra"]["pairs"] == 0 and math.isnan(h["intra"]["mean"])
        sub = similarity_histograms(c, max_identities=3, seed=0)
        assert sub["inter"]["pairs"] == 3 and sub["inter"]["identities"] == 3 and sub["inter"]["of_identities"] == 7


def test_euclidean_runs_get_distance_histograms(tmp_path):
    """A run whose embedder compares by distance (dlib, threshold 0.6) is plotted in that metric, every pair counted."""
    g = np.random.default_rng(2)
    e = (g.standard_normal((6, 5)) * 0.3).astype(np.float32)
    with SampleCollection.create(tmp_path / "samples.h5", w_dim=1, embedding_dim=5) as c:
        c.append(np.arange(6), "reference", w=np.zeros((6, 1), np.float32), embedding=e)
    with SampleCollection.open(tmp_path / "samples.h5") as c:
        h = similarity_histograms(c, bins=8, metric="euclidean")
    d = np.linalg.norm(e[:, None] - e[None], axis=2)[np.triu_indices(6, 1)]
    hi = 2 * np.linalg.norm(e, axis=1).max()
    assert h["inter"]["edges"][0] == 0 and math.isclose(h["inter"]["edges"][-1], hi, rel_tol=1e-6)
    assert h["inter"]["counts"].tolist() == np.histogram(d, bins=8, range=(0, hi))[0].tolist()
    assert math.isclose(h["inter"]["mean"], float(d.mean()), rel_tol=1e-5) and h["inter"]["metric"] == "euclidean"
    # plot_run takes the metric and threshold from the run's statistics
    write_stats(tmp_path / "stats.h5", [{"dist_min": 0.5}], attrs={"algorithm": "langevin", "metric": "l2", "ict": 0.6})
    plot_run(tmp_path)
    summary = json.loads((tmp_path / "plots" / "similarity.json").read_text())
    assert summary["inter"]["metric"] == "euclidean" and summary["inter"]["pairs"] == 15
    fig = similarity_figure(h, ["inter"], density=False, threshold=0.6)
    assert "Euclidean distance" in _texts(fig) and "threshold 0.6" in _caption(fig)
    fig = stats_figure(np.arange(2.0), {"dist_min": np.array([0.4, 0.5])}, "Embedding angles", "angle (rad)", "s",
                       info={"metric": "l2", "ict": 0.6})  # fmt: skip
    assert "Embedding distances" in _texts(fig)[0] or "Embedding distances" in "".join(_texts(fig))
    assert "Euclidean distance" in _texts(fig) and "degrees" not in " ".join(_texts(fig))
    with pytest.raises(ValueError, match="metric"):
        similarity_histograms(SampleCollection.open(tmp_path / "samples.h5"), metric="manhattan")
