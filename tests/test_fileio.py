"""synthcore.fileio: atomic replacement (old file or new, never half; nothing left behind), modes, hashes."""

import hashlib
import json
import os
import stat

import pytest

from synthcore import fileio


def leftovers(folder):
    """Files in ``folder`` that are temporaries of an atomic write."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or ".partial" in p.name)


def test_success_replaces_the_target(tmp_path):
    target = tmp_path / "sub" / "out.bin"  # the parent is created
    with fileio.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.bin.") and tmp.name.endswith(".tmp")
        assert not tmp.exists()
        tmp.write_bytes(b"new")
        assert not target.exists()  # nothing visible before the body finishes
    assert target.read_bytes() == b"new"
    assert leftovers(target.parent) == []


@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("durable", [True, False])
def test_an_error_in_the_body_keeps_the_old_file_and_leaves_no_temp(tmp_path, error, durable):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        with fileio.atomic_path(target, durable=durable) as tmp:
            tmp.write_bytes(b"half of the new")
            raise error
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_an_error_while_committing_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    fileio.write_json_atomic(target, {"v": 1})

    def fail(path):
        raise OSError("disk full")

    monkeypatch.setattr(fileio, "fsync_file", fail)
    with pytest.raises(OSError, match="disk full"):
        fileio.write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert leftovers(tmp_path) == []


def test_a_body_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with fileio.atomic_path(tmp_path / "out"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique(tmp_path):
    names = {fileio.temporary_sibling(tmp_path / "x").name for _ in range(100)}
    assert len(names) == 100


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fileio.write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        os.umask(0o002)
        fileio.write_bytes_atomic(tmp_path / "b.bin", b"x", durable=False)
        assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_json_and_text(tmp_path):
    fileio.write_json_atomic(tmp_path / "d.json", {"b": 1, "a": [1.5]})
    text = (tmp_path / "d.json").read_text()
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')  # sorted keys
    assert json.loads(text) == {"a": [1.5], "b": 1}
    fileio.write_text_atomic(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode()


def test_sha256_file(tmp_path):
    data = os.urandom(3000)
    (tmp_path / "m.bin").write_bytes(data)
    assert fileio.sha256_file(tmp_path / "m.bin", block=1000) == hashlib.sha256(data).hexdigest()
    assert fileio.sha256_file(tmp_path / "m.bin") == hashlib.sha256(data).hexdigest()


def test_the_dataset_package_reexports_the_one_hash():
    from synthcore import dataset

    assert dataset.sha256_file is fileio.sha256_file
