"""``synthcore demo`` on a tiny setting: the whole pipeline leaves a complete run directory."""

import json
import xml.etree.ElementTree as ET

from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, read_stats


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--outdir", str(out), "--identities", "5", "--variations", "2", "--langevin-iterations", "3",
            "--dispersion-iterations", "1", "--resolution", "16", "--batch", "8", "--device", "cpu",
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in text and "NOT faces" in text
    assert "MISMATCH" not in text and text.count(" ok") == 4
    assert RunDir(out).finished_stages().keys() == {"references", "variations", "render_arcface"}
    with SampleCollection.open(out / "samples.h5") as c:
        assert len(c) == 5 * 3
    assert len(read_stats(out / "stats.h5")["iteration"]) == 4
    assert len(list((out / "images_arcface").rglob("*.png"))) == 15
    ET.parse(out / "plots" / "stats_angles.svg")  # well-formed SVG
    report = json.loads((out / "report.json").read_text())
    assert report["langevin_min_angle_first_rad"] > 0 and report["seconds"]["total"] > 0
    # Each step the demo runs records its own command line, not the demo's (nor the test runner's).
    starts = [e for e in map(json.loads, (out / "run.jsonl").read_text().splitlines()) if e["event"] == "start"]
    assert [e["argv"][0] for e in starts] == [e["command"] for e in starts] and len(starts) >= 4
    assert all("argv" not in e["options"] for e in starts)
    # Rerun: every stage is finished, nothing changes.
    digest = SampleCollection.open(out / "samples.h5").content_digest()
    assert main(argv) == 0
    assert "already finished" in capsys.readouterr().out
    assert SampleCollection.open(out / "samples.h5").content_digest() == digest


def test_demo_rejects_bad_settings(tmp_path, capsys):
    assert main(["demo", "--outdir", str(tmp_path), "--resolution", "30"]) == 1
    assert "power of two" in capsys.readouterr().err
    assert main(["demo", "--outdir", str(tmp_path), "--identities", "1"]) == 1
    assert "needs >= 2 identities" in capsys.readouterr().err
