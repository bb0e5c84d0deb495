"""``synthcore demo`` on a tiny setting: the whole pipeline leaves a complete run directory."""

import json
import os
import stat

import numpy as np
import pytest

from synthcore import imageio
from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, read_stats


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    umask = os.umask(0o002)  # output files follow the umask: 0664 here, whoever writes them
    argv = ["demo", "--outdir", str(out), "--identities", "5", "--variations", "2", "--langevin-iterations", "3",
            "--dispersion-iterations", "1", "--resolution", "16", "--batch", "8", "--device", "cpu",
            "--quiet", "--random-networks"]  # fmt: skip
    try:
        assert main(argv) == 0
    finally:
        os.umask(umask)
    text = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in text and "NOT faces" in text
    assert "MISMATCH" not in text and text.count(" ok") == 4
    assert RunDir(out).finished_stages().keys() == {"references", "variations", "render_arcface"}
    with SampleCollection.open(out / "samples.h5") as c:
        assert len(c) == 5 * 3
    assert len(read_stats(out / "stats.h5")["iteration"]) == 4
    assert len(list((out / "images_arcface").rglob("*.png"))) == 15
    assert imageio.read_png(out / "plots" / "stats_angles.png").shape[1] >= 1000  # a readable PNG plot
    written = [p for p in out.rglob("*") if p.is_file()]
    modes = {p.relative_to(out).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in written}
    assert set(modes.values()) == {"0o664"}, modes
    report = json.loads((out / "report.json").read_text())
    assert report["langevin_min_angle_first_rad"] > 0 and report["seconds"]["total"] > 0
    # Each step the demo runs records its own command line, not the demo's (nor the test runner's).
    starts = [e for e in map(json.loads, (out / "run.jsonl").read_text().splitlines()) if e["event"] == "start"]
    assert [e["argv"][0] for e in starts] == [e["command"] for e in starts] and len(starts) >= 4
    assert all("argv" not in e["options"] for e in starts)
    # Rerun: every stage is finished, nothing changes.
    digest = SampleCollection.open(out / "samples.h5").content_digest()
    report_bytes = (out / "report.json").read_bytes()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "already finished" in text and "report.json is kept" in text
    assert SampleCollection.open(out / "samples.h5").content_digest() == digest
    assert (out / "report.json").read_bytes() == report_bytes  # the rerun's timings measured nothing


def test_demo_rejects_bad_settings(tmp_path, capsys):
    assert main(["demo", "--outdir", str(tmp_path), "--resolution", "30"]) == 1
    assert "power of two" in capsys.readouterr().err
    assert main(["demo", "--outdir", str(tmp_path), "--identities", "1"]) == 1
    assert "needs >= 2 identities" in capsys.readouterr().err


def test_demo_on_real_faces(tmp_path, capsys):
    """The default demo: DCGAN faces, Langevin through dlib's recogniser, judged by dlib's own pipeline."""
    from synthcore.models import model_path

    for name in ("dlib-resnet-v1", "dlib-shape-predictor-5", "dlib-mmod-detector", "dcgan-digiface-64"):
        try:
            model_path(name)
        except FileNotFoundError:
            pytest.skip(f"{name} is not installed (the README's test command installs it: synthcore models install)")
    out = tmp_path / "demo"
    argv = ["demo", "--outdir", str(out), "--identities", "12", "--variations", "2", "--langevin-iterations", "6",
            "--dispersion-iterations", "1", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "NON-COMMERCIAL" in text and "RANDOMLY INITIALISED" not in text
    report = json.loads((out / "report.json").read_text())
    judge = report["judge"]
    assert judge["metric"] == "euclidean" and judge["threshold"] == pytest.approx(0.6)
    before, after = judge["before"], judge["after"]
    assert before["pairs"] == after["pairs"] == 12 * 11 // 2 or after["faces_detected"] < 12
    # The generator makes faces the detector finds, and Langevin does not push them out of the face region.
    assert after["faces_detected"] >= 11
    # Fewer confusable pairs after Langevin than before, judged through the independent aligned path.
    assert after["confusable_share"] < before["confusable_share"]
    assert len(list((out / "images_full").rglob("*.png"))) == 12 * 3
    grid = imageio.read_png(out / "face_grid.png")
    assert grid.shape[0] > grid.shape[1] and np.ptp(grid) > 100  # 12 rows of faces, not a blank image
    with SampleCollection.open(out / "samples.h5") as c:
        assert c.attrs["embedder_sha256"] == "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
