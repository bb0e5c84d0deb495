import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from synthcore.dataset import RunDir, RunDirLocked, StageFinished
from tests.conftest import subprocess_env


def _holder(run: Path) -> subprocess.Popen:
    """A second process that takes the run directory's lock and waits (until killed)."""
    code = f"""
        import sys, time
        from synthcore.dataset import RunDir
        RunDir({str(run)!r}).lock("references --num-identities 10")
        print("locked", flush=True)
        time.sleep(60)
    """
    env = subprocess_env()
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_refused_and_stale_lock_taken_over(tmp_path):
    run = tmp_path / "run"
    p = _holder(run)
    try:
        rd = RunDir(run)
        with pytest.raises(RunDirLocked, match=rf"in use by pid {p.pid} .*references --num-identities 10"):
            rd.lock("render")
        assert rd.holder()["pid"] == p.pid and not rd.locked
        with pytest.raises(RunDirLocked):
            with rd.session("render"):
                pass
    finally:
        p.send_signal(signal.SIGKILL)  # dies without releasing: the lock file still names it
        p.wait()
    rd = RunDir(run)
    assert rd.holder() is None
    rd.lock("render")
    assert rd.locked and rd.stale_lock["pid"] == p.pid
    # While we hold it, another object (same process) is refused too: flock is per open file.
    with pytest.raises(RunDirLocked, match=f"pid {os.getpid()}"):
        RunDir(run).lock()
    rd.unlock()
    assert (run / ".lock").read_text() == ""  # released cleanly: nothing stale for the next writer
    rd2 = RunDir(run).lock()
    assert rd2.stale_lock is None
    rd2.unlock()


def test_stages_record_and_force(tmp_path):
    rd = RunDir(tmp_path / "run")
    with rd.session("references", options={"num_identities": 4, "outdir": tmp_path}, argv=["references", "-n", "4"]):
        rd.begin_stage("references")
        rd.save_checkpoint("references", 2, {"w": torch.ones(2)})
        rd.checkpointer("references")(4, {"w": torch.full((2,), 4.0)})
        assert rd.latest_checkpoint("references").step == 4
        rd.finish_stage("references", {"identities": 4})
    info = rd.stage_info("references")
    assert info["identities"] == 4 and info["command"] == "references" and rd.is_finished("references")
    records = rd.records()
    assert [r["event"] for r in records] == ["start", "end"]
    start, end = records
    assert start["argv"] == ["references", "-n", "4"] and start["options"]["outdir"] == str(tmp_path)
    assert start["synthcore_version"] and start["torch_version"] and start["host"] and start["pid"] == os.getpid()
    assert end["status"] == "ok" and end["run_id"] == start["run_id"]

    # Rerun: refused, and nothing in the directory changes.
    before = {p: p.read_bytes() for p in rd.path.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(StageFinished, match="already finished"):
        with rd.session("references"):
            rd.begin_stage("references")
    after = {p: p.read_bytes() for p in rd.path.rglob("*") if p.is_file() and p.name != ".lock"}
    assert before == after and not rd.locked

    # --force: marker and checkpoints cleared, the command recorded.
    with rd.session("references"):
        rd.begin_stage("references", force=True)
        assert not rd.is_finished("references") and rd.latest_checkpoint("references") is None
    assert [r["event"] for r in rd.records()] == ["start", "end", "start", "end"]


def test_errors_are_recorded_and_lock_required(tmp_path):
    rd = RunDir(tmp_path)
    with pytest.raises(RuntimeError, match="writer lock"):
        rd.save_checkpoint("x", 1, {})
    with pytest.raises(RuntimeError, match="writer lock"):
        rd.finish_stage("x")
    with pytest.raises(ValueError, match="boom"):
        with rd.session("variations"):
            rd.begin_stage("variations")
            raise ValueError("boom")
    end = rd.records()[-1]
    assert end["status"] == "error" and "boom" in end["message"] and not rd.locked
    with pytest.raises(ValueError, match="bad stage name"):
        rd.checkpoint_dir("../x")
    # A torn last line of the record (a kill mid-write) does not break reading it.
    with open(rd.record_path, "a") as fh:
        fh.write('{"event": "start", "comm')
    assert len(rd.records()) == 2
    json.loads(rd.record_path.read_text().splitlines()[0])


def test_refusal_is_immediate(tmp_path):
    # Refusal is immediate (non-blocking), not a wait.
    p = _holder(tmp_path)
    try:
        t = time.monotonic()
        with pytest.raises(RunDirLocked):
            RunDir(tmp_path).lock()
        assert time.monotonic() - t < 5
    finally:
        p.kill()
        p.wait()


def test_a_failed_stage_marker_write_keeps_the_old_markers_and_leaves_no_temp(tmp_path, monkeypatch):
    from synthcore import fileio

    run = RunDir(tmp_path / "run")
    with run.session("references", options={}):
        run.begin_stage("references")
        run.finish_stage("references", {"identities": 3})
    stages = (run.path / "stages.json").read_bytes()

    def fail(path):
        raise OSError("disk full")

    with run.session("variations", options={}):
        run.begin_stage("variations")
        monkeypatch.setattr(fileio, "_follow_umask", fail)
        with pytest.raises(OSError, match="disk full"):
            run.finish_stage("variations", {})
        monkeypatch.undo()
    assert (run.path / "stages.json").read_bytes() == stages
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []
