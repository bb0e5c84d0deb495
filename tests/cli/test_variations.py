"""``synthcore variations`` end to end: outputs, finished stage, DisCo, errors, kill-and-resume."""

import numpy as np
import pytest
import torch

from synthcore.cli.main import main
from synthcore.dataset import RunDir, SampleCollection, read_stats
from synthcore.identity.directions import LatentDirection, write_directions
from tests.cli.identity_fixtures import make_model_files
from tests.cli.test_references import _args as ref_args
from tests.cli.test_references import _digest, kill_after_checkpoint
from tests.conftest import subprocess_env


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_model_files(tmp_path_factory.mktemp("models"))


@pytest.fixture
def refs(models, tmp_path):
    """A run directory with 3 random reference identities (fast; they have a z column)."""
    rd = tmp_path / "run"
    assert main(ref_args(models, rd, "--algorithm", "random", "--num-identities", "3")) == 0
    return rd


def _vargs(rd, *extra):
    return ["variations", "--outdir", str(rd), "--device", "cpu", "--quiet", *extra]


def test_dispersion_run_rerun(refs, capsys):
    before = SampleCollection.open(refs / "samples.h5").read()
    assert main(_vargs(refs, "--num-variations", "3", "--iterations", "2", "--batch", "4")) == 0
    assert "3 identities x 3 variations (dispersion)" in capsys.readouterr().out
    with SampleCollection.open(refs / "samples.h5") as c:
        data = c.read()
        assert len(c) == 3 + 9 and c.options["variations"]["algorithm"] == "dispersion"
        assert c.options["references"]["algorithm"] == "random"
    # the references are kept as they were, then each identity's augmentation_0..2
    for k in ("identity", "w", "z", "embedding"):
        np.testing.assert_array_equal(data[k][:3], before[k])
    assert data["label"][3:6].tolist() == ["augmentation_0", "augmentation_1", "augmentation_2"]
    assert data["identity"][3:].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.isnan(data["z"][3:]).all() and np.isfinite(data["embedding"]).all()
    stats = read_stats(refs / "stats_variations.h5")
    assert len(stats["iteration"]) == 3 and np.isfinite(stats["refd_avg"]).all()
    digest = _digest(refs / "samples.h5")
    assert main(_vargs(refs, "--num-variations", "3", "--iterations", "2")) == 0
    assert "already finished" in capsys.readouterr().out and _digest(refs / "samples.h5") == digest


def test_disco_and_errors(refs, tmp_path, capsys):
    d = tmp_path / "dirs.h5"
    g = torch.Generator().manual_seed(0)
    write_directions(d, [LatentDirection("pose", "pose", torch.randn(16, generator=g), -1.0, 1.0)])
    assert main(_vargs(refs, "--algorithm", "disco", "--num-variations", "2", "--iterations", "0")) == 1
    assert "needs --directions" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    write_directions(bad, [LatentDirection("pose", "pose", torch.randn(8, generator=g), -1.0, 1.0)])
    args = ["--algorithm", "disco", "--num-variations", "2", "--iterations", "1"]
    assert main(_vargs(refs, *args, "--directions", str(bad))) == 1
    assert "w_dim is 16" in capsys.readouterr().err
    assert RunDir(refs).stage_info("variations") is None
    assert main(_vargs(refs, *args, "--directions", str(d), "--pose-scale", "2")) == 0
    with SampleCollection.open(refs / "samples.h5") as c:
        assert c.options["variations"]["algorithm"] == "disco" and len(c) == 3 + 6


def test_needs_references(tmp_path, capsys):
    assert main(_vargs(tmp_path / "empty")) == 1
    assert "run synthcore references" in capsys.readouterr().err


def test_kill_and_resume_is_bit_exact(refs, tmp_path, capsys):
    import shutil
    import subprocess
    import sys

    other = tmp_path / "copy"
    shutil.copytree(refs, other)
    extra = ["--num-variations", "3", "--iterations", "6", "--batch", "5", "--checkpoint-every", "2"]
    assert main(_vargs(refs, *extra)) == 0
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "synthcore", *_vargs(other, *extra)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    step = kill_after_checkpoint(proc, other / "checkpoints" / "variations", min_step=2)
    assert step < 6
    assert main(_vargs(other, *extra)) == 0
    assert "resuming dispersion from step" in capsys.readouterr().err
    assert _digest(other / "samples.h5") == _digest(refs / "samples.h5")
