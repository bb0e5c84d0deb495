import json
import math
import xml.etree.ElementTree as ET

import numpy as np

from synthcore.dataset import SampleCollection, plot_run, plot_stats, similarity_histograms, write_stats
from synthcore.dataset.svg import histogram_chart, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def _texts(root):
    return [t.text for t in root.iter(f"{SVG}text")]


def test_nice_ticks():
    assert np.allclose(nice_ticks(0, 1), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    t = nice_ticks(0.13, 2.9)
    assert t[0] >= 0.13 and t[-1] <= 2.9 and 3 <= len(t) <= 8
    steps = np.diff(t)
    assert np.allclose(steps, steps[0])
    assert nice_ticks(5, 5)  # a flat range still gets ticks
    assert nice_ticks(math.nan, 1) == []


def test_line_chart_gaps_and_escaping():
    svg = line_chart({"a<b": ([0, 1, 2, 3, 4], [1, 2, math.nan, 4, 5]), "c": ([0, 1], [0, 0])}, "T & t", "x", "y")
    root = ET.fromstring(svg.encode())
    polylines = list(root.iter(f"{SVG}polyline"))
    assert len(polylines) == 3  # "a<b" is split at the NaN; "c" is one line
    assert "a<b" in _texts(root) and "T & t" in _texts(root)


def test_histogram_chart_is_well_formed():
    edges = np.linspace(-1, 1, 11)
    svg = histogram_chart({"inter": (edges, np.arange(10.0))}, "H", "cos", notes=["n"])
    root = ET.fromstring(svg.encode())
    assert len(list(root.iter(f"{SVG}rect"))) == 2 + 9  # background, frame, 9 non-empty bars


def test_plot_run(tmp_path):
    rows = [{"dist_min": 0.2 + 0.1 * t, "dist_avg": 1.5, "dist_max": 2.0, "timestep": math.nan} for t in range(8)]
    write_stats(tmp_path / "stats.h5", rows)
    write_stats(tmp_path / "stats_variations.h5", [{"intf_avg": 1.0, "refd_min": 0.1, "refd_max": 0.3, "odd": 1.0}] * 2)
    g = np.random.default_rng(0)
    with SampleCollection.create(tmp_path / "samples.h5", w_dim=2, embedding_dim=8) as c:
        for i in range(5):  # 5 identities x 4 samples near their own centre
            centre = g.standard_normal(8) * 3
            e = (centre + g.standard_normal((4, 8)) * 0.3).astype(np.float32)
            c.append(i, ["reference", "v0", "v1", "v2"], w=np.zeros((4, 2), np.float32), embedding=e)
        c.append(9, "reference", w=np.zeros((1, 2), np.float32), embedding=np.ones((1, 8), np.float32))
    written = plot_run(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["similarity.json", "similarity.svg", "similarity_inter.svg", "similarity_intra.svg",
                     "stats_angles.svg", "stats_variations_force_interaction.svg", "stats_variations_odd.svg",
                     "stats_variations_refd.svg"]  # fmt: skip
    for p in written:
        if p.suffix == ".svg":
            ET.parse(p)  # well-formed XML
    refd = ET.parse(tmp_path / "plots" / "stats_variations_refd.svg").getroot()
    assert {"refd_min", "refd_max"} <= set(_texts(refd)) and len(list(refd.iter(f"{SVG}polyline"))) == 2
    angles = ET.parse(tmp_path / "plots" / "stats_angles.svg").getroot()
    assert {"dist_min", "dist_avg", "dist_max", "iteration", "angle (rad)"} <= set(_texts(angles))
    summary = json.loads((tmp_path / "plots" / "similarity.json").read_text())
    assert summary["inter"]["pairs"] == 6 * 5 // 2 and summary["intra"]["pairs"] == 5 * 6
    assert sum(summary["intra"]["counts"]) == 30 and summary["intra"]["identities"] == 5
    assert summary["intra"]["mean"] > 0.8 > summary["inter"]["mean"]
    # Stats that are NaN throughout get no chart; the timestep chart is absent here.
    assert not (tmp_path / "plots" / "stats_timestep.svg").exists()
    assert plot_stats(tmp_path / "stats.h5", tmp_path / "only") == [tmp_path / "only" / "stats_angles.svg"]


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
        assert sub["inter"]["pairs"] == 3 and sub["inter"]["identities"] == 3
