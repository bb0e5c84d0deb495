import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from synthcore.dataset import RunDir, SampleCollection, StageFinished, check_label, sha256_file
from synthcore.dataset.collection import FORMAT, DamagedCollectionError
from tests.conftest import subprocess_env

from .conftest import fill


def _child(code: str) -> subprocess.CompletedProcess:
    env = subprocess_env()
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True)


def test_round_trip_and_reads(tmp_path):
    path = tmp_path / "samples.h5"
    gen = tmp_path / "G.bin"
    gen.write_bytes(b"weights")
    w = torch.randn(5, 4)
    e = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    with SampleCollection.create(path, w_dim=4, z_dim=2, embedding_dim=3, generator=gen, options={"k": 1.5}) as c:
        assert not path.exists()  # atomic: only the partial file exists until close
        rows = c.append([0, 0, 1, 2, 2], ["reference", "augmentation_0", "reference", "reference", "pose_1"],
                        w=w, z=torch.zeros(5, 2), embedding=e)  # fmt: skip
        assert rows == range(0, 5)
    assert path.exists() and not (tmp_path / ".samples.h5.partial").exists()
    with SampleCollection.open(path) as c:
        assert len(c) == 5 and c.columns == ("identity", "label", "w", "z", "embedding")
        assert c.w_space == "w" and c.w_dim == 4 and c.width("embedding") == 3 and c.width("c") is None
        data = c.read()
        assert np.array_equal(data["w"], w.numpy()) and np.array_equal(data["embedding"], e)
        assert data["label"].tolist() == ["reference", "augmentation_0", "reference", "reference", "pose_1"]
        assert c.identities().tolist() == [0, 1, 2]
        assert c.rows_of(2).tolist() == [3, 4]
        assert c.by_identity(0)["label"].tolist() == ["reference", "augmentation_0"]
        picked = c.read([4, 0, 4], ["identity", "w"])  # any order, repeats allowed
        assert picked["identity"].tolist() == [2, 0, 2] and np.array_equal(picked["w"][1], w[0].numpy())
        assert [lo for lo, _ in c.iter_batches(2)] == [0, 2, 4]
        assert len(list(c)) == 5
        a = c.attrs
        assert a["format"] == FORMAT and a["options"] == {"k": 1.5} and a["num_rows"] == 5
        assert a["generator_sha256"] == sha256_file(gen) and a["generator"] == str(gen.resolve())
        with pytest.raises(PermissionError):
            c.append(3, "reference", w=w[:1], z=torch.zeros(1, 2), embedding=e[:1])


def test_append_reopen_and_w_plus(tmp_path):
    path = tmp_path / "s.h5"
    with SampleCollection.create(path, w_dim=3, num_ws=4, embedding_dim=2) as c:
        fill(c, identities=2)
    with SampleCollection.open(path, "a") as c:
        c.append(7, "reference", w_plus=np.ones((1, 4, 3), np.float32), embedding=np.ones((1, 2), np.float32))
    with SampleCollection.open(path) as c:
        assert len(c) == 7 and c.num_ws == 4 and c.read([6])["identity"].tolist() == [7]
        assert c.read(slice(6, 7))["w_plus"].shape == (1, 4, 3)


def test_append_validation(tmp_path):
    with SampleCollection.create(tmp_path / "s.h5", w_dim=3, embedding_dim=2) as c:
        ok = {"w": np.zeros((1, 3), np.float32), "embedding": np.zeros((1, 2), np.float32)}
        c.append(0, "reference", **ok)
        with pytest.raises(ValueError, match="already exists"):
            c.append(0, "reference", **ok)
        with pytest.raises(ValueError, match="already exists"):
            c.append([1, 1], ["a", "a"], w=np.zeros((2, 3), np.float32), embedding=np.zeros((2, 2), np.float32))
        with pytest.raises(ValueError, match="must give embedding"):
            c.append(1, "reference", w=ok["w"])
        with pytest.raises(ValueError, match=r"w must be \[1, 3\]"):
            c.append(1, "reference", w=np.zeros((1, 4), np.float32), embedding=ok["embedding"])
        with pytest.raises(ValueError, match="no 'z' column"):
            c.append(1, "reference", z=np.zeros((1, 3), np.float32), **ok)
        with pytest.raises(ValueError, match="stores w, not w_plus"):
            c.append(1, "reference", w_plus=np.zeros((1, 2, 3), np.float32), embedding=ok["embedding"])
        with pytest.raises(ValueError, match=">= 0"):
            c.append(-1, "reference", **ok)
        with pytest.raises(ValueError, match="bad sample label"):
            c.append(1, "../x", **ok)
        assert len(c) == 1  # nothing half-appended by the refused calls
    for bad in ("", ".hidden", "a/b", "a\\b", "x\ny"):
        with pytest.raises(ValueError):
            check_label(bad)
    with pytest.raises(FileExistsError):
        SampleCollection.create(tmp_path / "s.h5", w_dim=3)
    with pytest.raises(FileNotFoundError):
        SampleCollection.open(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="cannot open"):
        SampleCollection.open(tmp_path / "junk.h5")


def test_same_appends_same_content(tmp_path):
    digests = []
    for name, batch in (("a.h5", 1), ("b.h5", 3), ("c.h5", 1)):
        with SampleCollection.create(tmp_path / name, w_dim=4, embedding_dim=2, options={"seed": 3}) as c:
            g = np.random.default_rng(0)
            w, e = g.standard_normal((6, 4)).astype(np.float32), g.standard_normal((6, 2)).astype(np.float32)
            for lo in range(0, 6, batch):  # different batching, same rows
                c.append(np.arange(lo, lo + batch), "reference", w=w[lo : lo + batch], embedding=e[lo : lo + batch])
        with SampleCollection.open(tmp_path / name) as c:
            digests.append(c.content_digest())
    assert digests[0] == digests[1] == digests[2]
    # The same sequence of appends even gives the same file bytes (no timestamps anywhere).
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "c.h5").read_bytes()
    with SampleCollection.open(tmp_path / "b.h5", "a") as c:
        c.append(99, "reference", w=np.zeros((1, 4), np.float32), embedding=np.zeros((1, 2), np.float32))
        assert c.content_digest() != digests[0]


def test_torn_append_is_invisible(tmp_path):
    path = tmp_path / "s.h5"
    with SampleCollection.create(path, w_dim=3, embedding_dim=2) as c:
        fill(c, identities=2)
        clean = c.content_digest()
    # A writer dies after filling the columns of its next append but before committing it.
    res = _child(
        f"""
        import os, h5py, numpy as np
        from synthcore.dataset import SampleCollection
        real = h5py.AttributeManager.__setitem__
        def dying(self, key, value):
            if key == "num_rows":
                os._exit(9)
            real(self, key, value)
        c = SampleCollection.open({str(path)!r}, "a")
        h5py.AttributeManager.__setitem__ = dying
        c.append([5, 5], ["reference", "x"], w=np.ones((2, 3), np.float32), embedding=np.ones((2, 2), np.float32))
        """
    )
    assert res.returncode == 9, res.stderr
    with h5py.File(path, "r") as f:
        assert f["w"].shape[0] == 8 and int(f.attrs["num_rows"]) == 6  # the rows are in the file, uncommitted
    with SampleCollection.open(path) as c:
        assert len(c) == 6 and c.content_digest() == clean and 5 not in c.identities()
    with SampleCollection.open(path, "a") as c:  # the next writer cuts them off and can reuse the labels
        c.append(5, "reference", w=np.zeros((1, 3), np.float32), embedding=np.zeros((1, 2), np.float32))
    with h5py.File(path, "r") as f:
        assert f["w"].shape[0] == 7


def test_killed_atomic_writer_leaves_no_file(tmp_path):
    path = tmp_path / "s.h5"
    res = _child(
        f"""
        import os, numpy as np
        from synthcore.dataset import SampleCollection
        c = SampleCollection.create({str(path)!r}, w_dim=3)
        c.append(0, "reference", w=np.ones((1, 3), np.float32))
        os._exit(3)
        """
    )
    assert res.returncode == 3, res.stderr
    assert not path.exists()
    with SampleCollection.create(path, w_dim=3) as c:  # the stale partial file is replaced
        assert len(c) == 0
    # In an atomic append session an exception leaves the original untouched.
    with pytest.raises(RuntimeError):
        with SampleCollection.open(path, "a", atomic=True) as c:
            c.append(0, "reference", w=np.ones((1, 3), np.float32))
            raise RuntimeError("boom")
    with SampleCollection.open(path) as c:
        assert len(c) == 0
    with SampleCollection.open(path, "a", atomic=True) as c:
        c.append(0, "reference", w=np.ones((1, 3), np.float32))
    with SampleCollection.open(path) as c:
        assert len(c) == 1


def test_open_while_another_process_writes(tmp_path):
    path = tmp_path / "s.h5"
    with SampleCollection.create(path, w_dim=2, atomic=False):
        res = _child(f"from synthcore.dataset import SampleCollection; SampleCollection.open({str(path)!r})")
    assert res.returncode != 0 and "open for writing by another process" in res.stderr


def test_merge_shards(tmp_path):
    from synthcore.dataset import merge_collections

    parts = []
    for rank in range(3):
        p = tmp_path / f"samples_{rank}.h5"
        with SampleCollection.create(p, w_dim=3, embedding_dim=2, options={"rank": rank}) as c:
            c.append([rank, rank + 10], "reference", w=np.full((2, 3), rank, np.float32),
                     embedding=np.zeros((2, 2), np.float32))  # fmt: skip
        parts.append(p)
    with merge_collections(parts, tmp_path / "samples.h5", block=1) as m:
        assert m.read(columns=["identity"])["identity"].tolist() == [0, 10, 1, 11, 2, 12]
        assert m.read([5])["w"].tolist() == [[2.0, 2.0, 2.0]]
        assert [d["options"] for d in m.options["merged_from"]] == [{"rank": 0}, {"rank": 1}, {"rank": 2}]
    with pytest.raises(ValueError, match="already exists"):  # the same identity and label in two shards
        merge_collections([parts[0], parts[0]], tmp_path / "dup.h5")
    assert not (tmp_path / "dup.h5").exists() and not (tmp_path / ".dup.h5.partial").exists()
    with SampleCollection.create(tmp_path / "other.h5", w_dim=4) as c:
        c.append(50, "reference", w=np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="columns"):
        merge_collections([parts[0], tmp_path / "other.h5"], tmp_path / "bad.h5")


# --- integrity: truncation and flipped bits are reported, naming the file and how to rebuild it -----------------

ROWS = 600


def _written(tmp_path):
    """A closed collection with distinctive bytes to damage: w rows, unique labels, an options text."""
    path = tmp_path / "samples.h5"
    rng = np.random.default_rng(0)
    w = rng.standard_normal((ROWS, 16)).astype(np.float32)
    labels = [f"sample_{i:04d}" for i in range(ROWS)]
    with SampleCollection.create(path, w_dim=16, embedding_dim=4, options={"note": "original options"}) as c:
        c.append(np.arange(ROWS) // 10, labels, w=w, embedding=np.ones((ROWS, 4), np.float32))
    return path, w, labels


def _flip(path, at, bit=0):
    data = bytearray(path.read_bytes())
    data[at] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_untouched_file_verifies(tmp_path):
    path, w, labels = _written(tmp_path)
    with SampleCollection.open(path) as c:
        assert c.verifiable
        c.verify()
        data = c.read()
        assert np.array_equal(data["w"], w) and data["label"].tolist() == labels
        assert "label_crc32" not in c.columns  # the checksum column is internal


def test_truncated_file_is_reported(tmp_path):
    path, _, _ = _written(tmp_path)
    good = path.read_bytes()
    for cut in (len(good) - 1, len(good) // 2, 4096):
        path.write_bytes(good[:cut])
        with pytest.raises(DamagedCollectionError, match=r"samples\.h5: damaged: .*truncated.*--force"):
            SampleCollection.open(path)


def test_flipped_bit_in_a_data_chunk_is_reported(tmp_path):
    path, w, _ = _written(tmp_path)
    at = path.read_bytes().find(w[321].tobytes())
    assert at > 0
    _flip(path, at + 5, bit=3)
    with SampleCollection.open(path) as c:  # metadata intact: opens
        assert c.read(columns=["identity"])["identity"].size == ROWS  # other columns still read
        with pytest.raises(DamagedCollectionError, match=r"samples\.h5: damaged: column 'w', rows 0\.\.600.*--force"):
            c.read()
        with pytest.raises(DamagedCollectionError, match="column 'w'"):
            c.verify()
        with pytest.raises(DamagedCollectionError):
            c.content_digest()


def test_flipped_bit_in_a_label_is_reported(tmp_path):
    path, _, _ = _written(tmp_path)
    data = path.read_bytes()
    assert data.count(b"sample_0123") == 1
    _flip(path, data.find(b"sample_0123") + 10, bit=2)  # '3' -> '7': still a valid, plausible label
    with SampleCollection.open(path) as c:
        with pytest.raises(DamagedCollectionError, match=r"label\(s\) do not match their checksum .*sample_0127"):
            c.read(columns=["label"])
        with pytest.raises(DamagedCollectionError):
            c.verify()


def test_flipped_bit_in_an_attribute_is_reported(tmp_path):
    path, _, _ = _written(tmp_path)
    data = path.read_bytes()
    _flip(path, data.find(b"original options") + 2)  # text attributes live in HDF5's unchecked global heap
    with pytest.raises(DamagedCollectionError, match=r"samples\.h5: damaged: its attributes .*--force"):
        SampleCollection.open(path)
    # num_rows and the dataset shapes sit in checksummed object headers: every copy of 600 in the file is caught.
    where = [m.start() for m in re.finditer(re.escape(np.int64(ROWS).tobytes()), data)]
    assert where
    for at in where:
        path.write_bytes(data)
        _flip(path, at, bit=1)
        with pytest.raises(DamagedCollectionError, match="HDF5 metadata unreadable|HDF5 cannot open"):
            SampleCollection.open(path)


def test_files_without_checksums_still_open(tmp_path):
    """Collections written before checksums existed are read unverified."""
    path, w, labels = _written(tmp_path)
    with h5py.File(path, "r+") as f:
        del f.attrs["attrs_sha256"]
        del f["label_crc32"]
    with SampleCollection.open(path, "a") as c:
        assert not c.verifiable
        c.append(999, "late", w=np.zeros((1, 16), np.float32), embedding=np.zeros((1, 4), np.float32))
    with SampleCollection.open(path) as c:
        assert c.read()["label"].tolist() == labels + ["late"]


def test_rerun_of_a_finished_stage_reports_a_damaged_samples_file(tmp_path):
    """The rerun used to say "nothing to do" over a truncated samples.h5; now it names the file and the fix."""
    run = RunDir(tmp_path)
    with run.session("references"):
        run.begin_stage("references")
        with SampleCollection.create(run.samples_path, w_dim=3) as c:
            c.append([0, 1], "reference", w=np.zeros((2, 3), np.float32))
        run.finish_stage("references")
    with run.session("references"), pytest.raises(StageFinished):
        run.begin_stage("references")  # intact: nothing to do
    good = run.samples_path.read_bytes()
    run.samples_path.write_bytes(good[: len(good) // 2])
    with run.session("references"), pytest.raises(ValueError) as err:
        run.begin_stage("references")
    msg = str(err.value)
    assert "samples.h5 is damaged" in msg and "truncated" in msg
    assert f"synthcore references --outdir {tmp_path} --force" in msg
    run.samples_path.unlink()
    with run.session("references"), pytest.raises(ValueError, match="samples.h5 is missing; rebuild it"):
        run.begin_stage("references")
