import math

import numpy as np
import pytest

from synthcore.dataset import STAT_NAMES, StatsFile, read_stats, write_stats


def test_append_read_and_new_names(tmp_path):
    path = tmp_path / "stats.h5"
    with StatsFile.create(path, {"algorithm": "langevin"}) as s:
        s.append({"dist_min": 0.5, "dist_avg": 1.0})
        s.append({"dist_min": 0.6, "timestep": 0.01, "custom": 3.0})
        s.extend([{"dist_min": 0.7}, {"dist_min": 0.8, "dist_avg": 1.2}], iterations=[10, 11])
    with StatsFile.open(path) as s:
        assert len(s) == 4 and s.info == {"algorithm": "langevin"}
        assert s.names == ("dist_min", "dist_avg", "timestep", "custom")  # published order first
    got = read_stats(path)
    assert got["iteration"].tolist() == [0, 1, 10, 11]
    assert got["dist_min"].tolist() == [0.5, 0.6, 0.7, 0.8]
    assert np.isnan(got["timestep"][[0, 2, 3]]).all() and got["timestep"][1] == 0.01
    assert np.isnan(got["dist_avg"][1]) and got["dist_avg"][3] == 1.2
    assert read_stats(path, ["custom"]).keys() == {"iteration", "custom"}
    with pytest.raises(KeyError):
        read_stats(path, ["nope"])
    assert "dist_min" in STAT_NAMES and "totf_max" in STAT_NAMES and len(STAT_NAMES) == 21


def test_torn_rows_invisible_and_cut(tmp_path):
    import h5py

    path = tmp_path / "stats.h5"
    write_stats(path, [{"dist_min": 1.0}, {"dist_min": 2.0}])
    with h5py.File(path, "r+") as f:  # a writer died after filling a row, before committing it
        for k in ("dist_min", "iteration"):
            f[k].resize(3, axis=0)
    assert read_stats(path)["dist_min"].tolist() == [1.0, 2.0]
    with StatsFile.open(path, "a") as s:
        s.append({"dist_min": 3.0})
    assert read_stats(path)["dist_min"].tolist() == [1.0, 2.0, 3.0]


def test_write_stats_replaces_atomically(tmp_path):
    path = tmp_path / "stats.h5"
    write_stats(path, [{"a": 1.0}] * 5)
    write_stats(path, [{"a": 2.0, "b": math.nan}] * 2, attrs={"resumed": True})
    got = read_stats(path)
    assert got["a"].tolist() == [2.0, 2.0] and np.isnan(got["b"]).all()
    assert [p.name for p in tmp_path.iterdir()] == ["stats.h5"]
    with pytest.raises(ValueError, match="bad statistic"):
        write_stats(path, [{"iteration": 1.0}])
    assert read_stats(path)["a"].tolist() == [2.0, 2.0]  # the failed write left the file as it was


def test_a_failed_write_keeps_the_old_stats_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "stats.h5"
    write_stats(path, [{"dist_min": 0.5}])

    def fail(self, rows, iterations=None):
        raise OSError("disk full")

    monkeypatch.setattr(StatsFile, "extend", fail)
    with pytest.raises(OSError, match="disk full"):
        write_stats(path, [{"dist_min": 0.7}, {"dist_min": 0.8}])
    assert read_stats(path)["dist_min"].tolist() == [0.5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.h5"]
