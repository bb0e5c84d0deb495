"""``synthcore references`` end to end: outputs, finished stage, --force, lock, bad input, kill-and-resume."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, read_stats
from tests.cli.identity_fixtures import make_model_files
from tests.conftest import subprocess_env


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_model_files(tmp_path_factory.mktemp("models"))


def _args(models, outdir, *extra):
    g, e = models
    return ["references", "--outdir", str(outdir), "--network", str(g), "--embedder", str(e), "--device", "cpu",
            "--quiet", *extra]  # fmt: skip


def _digest(path):
    with SampleCollection.open(path) as c:
        return c.content_digest()


def test_langevin_run_rerun_and_force(models, tmp_path, capsys):
    rd = tmp_path / "run"
    assert main(_args(models, rd, "--num-identities", "6", "--iterations", "3", "--batch", "4")) == 0
    out = capsys.readouterr().out
    assert "6 reference identities (langevin)" in out and "minimum inter-identity angle" in out
    with SampleCollection.open(rd / "samples.h5") as c:
        data = c.read()
        assert len(c) == 6 and set(data["label"]) == {"reference"} and data["identity"].tolist() == list(range(6))
        assert data["w"].shape == (6, 16) and data["embedding"].shape == (6, 512) and "z" not in c.columns
        assert c.options["references"]["algorithm"] == "langevin" and c.attrs["generator_sha256"]
    stats = read_stats(rd / "stats.h5")
    assert stats["iteration"].tolist() == [0, 1, 2, 3] and np.isfinite(stats["dist_min"]).all()
    assert np.isnan(stats["timestep"][-1]) and (stats["timestep"][:-1] > 0).all()
    assert not (rd / "checkpoints" / "references").exists() or not any((rd / "checkpoints" / "references").iterdir())
    digest = _digest(rd / "samples.h5")

    # Finished: says so, changes nothing.
    assert main(_args(models, rd, "--num-identities", "6", "--iterations", "3", "--seed", "9")) == 0
    assert "already finished" in capsys.readouterr().out
    assert _digest(rd / "samples.h5") == digest
    # --force redoes it (another seed: other identities).
    assert main(_args(models, rd, "--num-identities", "6", "--iterations", "3", "--seed", "9", "--force")) == 0
    assert _digest(rd / "samples.h5") != digest
    events = [(r["command"], r["event"], r.get("status")) for r in RunDir(rd).records()]
    assert events == [("references", "start", None), ("references", "end", "ok")] * 2


@pytest.mark.parametrize("algorithm", ["random", "reject"])
def test_baselines(models, tmp_path, algorithm, capsys):
    rd = tmp_path / algorithm
    extra = ["--ict", "0.01"] if algorithm == "reject" else []
    assert main(_args(models, rd, "--algorithm", algorithm, "--num-identities", "5", *extra)) == 0
    with SampleCollection.open(rd / "samples.h5") as c:
        data = c.read()
        assert len(c) == 5 and data["z"].shape == (5, 16)
    assert (rd / "stats.h5").exists() == (algorithm == "reject")


def test_bad_input_and_second_writer(models, tmp_path, capsys):
    rd = tmp_path / "run"
    assert main(_args(models, rd, "--num-identities", "1")) == 1
    assert "at least 2 identities" in capsys.readouterr().err
    g, e = models
    assert main(["references", "--outdir", str(rd), "--network", str(tmp_path / "nope.pt"), "--embedder", str(e)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(_args(models, rd, "--crop", "bogus")) == 1
    assert "unknown --crop" in capsys.readouterr().err
    holder = RunDir(rd).lock("test holder")
    try:
        assert main(_args(models, rd, "--num-identities", "4", "--iterations", "1")) == 1
        assert f"in use by pid {os.getpid()}" in capsys.readouterr().err
    finally:
        holder.unlock()


def _start(models, outdir, *extra):
    env = subprocess_env()
    cmd = [sys.executable, "-m", "synthcore", *_args(models, outdir, *extra)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_after_checkpoint(proc, ckpt_dir, min_step, timeout=240):
    """SIGKILL ``proc`` once a checkpoint of at least ``min_step`` exists; fails if it finished first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        steps = [int(p.name[5:13]) for p in ckpt_dir.glob("step_*.h5")] if ckpt_dir.is_dir() else []
        if steps and max(steps) >= min_step:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return max(steps)
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


def test_kill_and_resume_is_bit_exact(models, tmp_path, capsys):
    # (The single-forward variant's resume is checked in-process in tests/identity/test_langevin.py.)
    extra = ["--num-identities", "6", "--iterations", "10", "--batch", "4", "--checkpoint-every", "2"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert main(_args(models, whole, *extra)) == 0
    proc = _start(models, broken, *extra)
    step = kill_after_checkpoint(proc, broken / "checkpoints" / "references", min_step=2)
    assert step < 10 and not (broken / "samples.h5").exists()
    assert RunDir(broken).records()[-1]["event"] == "start"  # the killed command never recorded an end
    assert main(_args(models, broken, *extra)) == 0
    assert "resuming Langevin from step" in capsys.readouterr().err
    assert _digest(broken / "samples.h5") == _digest(whole / "samples.h5")
    a, b = read_stats(whole / "stats.h5"), read_stats(broken / "stats.h5")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_unfinished_stage_may_replace_its_own_samples_only(models, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    SampleCollection.create(foreign / "samples.h5", w_dim=16).close()
    assert main(_args(models, foreign, "--algorithm", "random", "--num-identities", "2")) == 1
    assert "was not made by synthcore references" in capsys.readouterr().err
    own = tmp_path / "own"
    assert main(_args(models, own, "--algorithm", "random", "--num-identities", "2")) == 0
    rd = RunDir(own).lock()
    rd.clear_stage("references")  # as if killed after writing samples.h5, before marking the stage finished
    rd.unlock()
    assert main(_args(models, own, "--algorithm", "random", "--num-identities", "3")) == 0
    with SampleCollection.open(own / "samples.h5") as c:
        assert len(c) == 3


def test_repel_embeddings_file(models, tmp_path, capsys):
    rng = np.random.default_rng(0)
    good, bad = tmp_path / "real.npy", tmp_path / "bad.npy"
    np.save(good, rng.standard_normal((5, 512)).astype(np.float32))
    np.save(bad, rng.standard_normal((5, 7)).astype(np.float32))
    common = ("--num-identities", "3", "--iterations", "1", "--repel-radius", "2.0")
    assert main(_args(models, tmp_path / "a", *common, "--repel-embeddings", str(bad))) == 1
    assert "the embedder's size" in capsys.readouterr().err
    assert main(_args(models, tmp_path / "b", *common, "--repel-embeddings", str(good))) == 0
    stats = read_stats(tmp_path / "b" / "stats.h5")
    assert np.isfinite(stats["ext_dist_min"]).all()
    assert main(_args(models, tmp_path / "c", *common, "--repel-embeddings", str(tmp_path / "missing.h5"))) == 1
    assert "not found" in capsys.readouterr().err


def test_step_settings_follow_the_generator_family_unless_given():
    """The DCGAN's latent space needs its own adaptive step and Dispersion radius; a user's value always wins."""
    from synthcore.cli.main import build_parser
    from synthcore.cli.references import langevin_config
    from synthcore.cli.variations import dispersion_config
    from synthcore.nets.generators import DCGANFamily, StyleGAN2Family

    parser = build_parser()
    base = ["--outdir", "o", "--network", "n", "--embedder", "e"]
    args = parser.parse_args(["references", *base])
    assert langevin_config(args, family=DCGANFamily).tau == 0.05
    assert langevin_config(args, family=StyleGAN2Family).tau == 0.3  # the published value
    assert langevin_config(parser.parse_args(["references", *base, "--tau", "0.2"]), family=DCGANFamily).tau == 0.2
    args = parser.parse_args(["variations", "--outdir", "o"])
    assert dispersion_config(args, family=DCGANFamily).r_w == 4.0
    assert dispersion_config(args).r_w == 12.0
    args = parser.parse_args(["variations", "--outdir", "o", "--latent-radius", "7"])
    assert dispersion_config(args, family=DCGANFamily).r_w == 7.0
