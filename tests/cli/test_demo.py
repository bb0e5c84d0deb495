"""``synthcore demo`` on a tiny setting: the whole pipeline leaves a complete run directory."""

import json
import os
import stat

from synthcore import imageio
from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, read_stats


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    umask = os.umask(0o002)  # output files follow the umask: 0664 here, whoever writes them
    argv = ["demo", "--outdir", str(out), "--identities", "5", "--variations", "2", "--langevin-iterations", "3",
            "--dispersion-iterations", "1", "--resolution", "16", "--batch", "8", "--device", "cpu",
            "--quiet"]  # fmt: skip
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
