import math
import shutil

import numpy as np
import pytest
import torch

from synthcore.dataset import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


def _state(step: int):
    g = torch.Generator().manual_seed(step)
    return {
        "algorithm": "langevin",
        "step": step,
        "w": torch.randn(7, 5, generator=g),
        "w64": torch.randn(3, generator=g, dtype=torch.float64),
        "half": torch.randn(4, generator=g).bfloat16(),
        "keys": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "mask": torch.tensor([True, False]),
        "c": None,
        "np": np.linspace(0, 1, 5, dtype=np.float32),
        "stats": [{"dist_min": 0.1 + step, "timestep": math.nan, "big": 1e300}, {"x": -math.inf}],
        "config": {"psi": 0.7, "name": "ä/ø", "flags": [1, 2.5, None, True]},
    }


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def test_bit_exact_round_trip(tmp_path):
    state = _state(3)
    path = save_checkpoint(tmp_path, 3, state)
    assert path.name == "step_00000003.h5"
    back = load_checkpoint(path)
    assert back.step == 3 and _equal(state, back.state)
    # Floats that are not exactly representable in decimal survive too.
    assert back.state["w"].numpy().tobytes() == state["w"].numpy().tobytes()


def test_newest_complete_checkpoint_wins(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, 10, _state(10), keep=0)
    p20 = save_checkpoint(tmp_path, 20, _state(20), keep=0)
    save_checkpoint(tmp_path, 5, _state(5), keep=0)  # written last, but older: "newest" is by step
    assert latest_checkpoint(tmp_path).step == 20
    # A half-written newer file (e.g. a truncated copy) and a leftover temporary file are not used.
    data = p20.read_bytes()
    (tmp_path / "step_00000030.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / ".step_00000040.h5.abc.tmp").write_bytes(data)
    with pytest.warns(RuntimeWarning, match="damaged checkpoint"):
        ck = latest_checkpoint(tmp_path)
    assert ck.step == 20 and _equal(ck.state, _state(20))
    # A file whose content was altered after writing fails its hash.
    shutil.copy(p20, tmp_path / "step_00000050.h5")
    import h5py

    with h5py.File(tmp_path / "step_00000050.h5", "r+") as f:
        f["arrays"]["0"][0] = 123
    with pytest.raises(ValueError, match="hash"):
        load_checkpoint(tmp_path / "step_00000050.h5")
    with pytest.warns(RuntimeWarning):
        assert latest_checkpoint(tmp_path).step == 20


def test_keep_prunes_oldest(tmp_path):
    for s in (1, 2, 3, 4):
        save_checkpoint(tmp_path, s, {"s": s}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    save_checkpoint(tmp_path, 4, {"s": 40}, keep=2)  # same step replaces
    assert latest_checkpoint(tmp_path).state == {"s": 40}


def test_unsupported_state(tmp_path):
    with pytest.raises(TypeError, match="cannot store"):
        save_checkpoint(tmp_path, 1, {"x": object()})
    with pytest.raises(TypeError, match="keys must be strings"):
        save_checkpoint(tmp_path, 1, {1: 2})
    with pytest.raises(ValueError, match="non-negative"):
        save_checkpoint(tmp_path, -1, {})
    assert list_checkpoints(tmp_path) == []


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temp(tmp_path, monkeypatch):
    import h5py

    path = save_checkpoint(tmp_path, 3, _state(3))
    old = path.read_bytes()
    real = h5py.Group.create_dataset

    def fail_later(self, name, *args, **kwargs):  # the file is half written when this raises
        if name == "1":
            raise OSError("disk full")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_later)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 3, _state(4))
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
