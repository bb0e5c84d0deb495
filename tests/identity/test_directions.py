"""Latent-directions files: writing is atomic and checks every direction before anything is written."""

import h5py
import pytest
import torch

from synthcore.identity.directions import LatentDirection, read_directions, write_directions


def _dirs(*names, dim=4):
    g = torch.Generator().manual_seed(0)
    return [LatentDirection(n, "pose", torch.randn(dim, generator=g), -1.0, 1.0) for n in names]


def test_a_rejected_name_writes_nothing_and_leaves_no_temp(tmp_path):
    path = tmp_path / "dirs.h5"
    with pytest.raises(ValueError, match="contain no '/'"):
        write_directions(path, _dirs("pose", "a/b"))
    assert list(tmp_path.iterdir()) == []
    write_directions(path, _dirs("pose", "smile"))
    old = path.read_bytes()
    for bad in (_dirs("yaw", ""), _dirs("yaw") + _dirs("roll", dim=5)):
        with pytest.raises(ValueError):
            write_directions(path, bad)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["dirs.h5"]
    assert [d.name for d in read_directions(path, w_dim=4)] == ["pose", "smile"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "dirs.h5"
    write_directions(path, _dirs("pose"))
    old = path.read_bytes()
    real = h5py.Group.create_dataset

    def fail(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", fail)
    with pytest.raises(OSError, match="disk full"):
        write_directions(path, _dirs("yaw", "roll"))
    monkeypatch.setattr(h5py.Group, "create_dataset", real)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["dirs.h5"]
