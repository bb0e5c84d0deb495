"""File safety: every file synthcore writes goes through here, and model files are identified here.

Atomic replacement
    :func:`atomic_path` yields a unique temporary sibling of the target (``.<name>.<random>.tmp``, in the same
    directory so the final ``os.replace`` is a rename within one file system). When the ``with`` body finishes
    the temporary file is made durable (see below) and renamed over the target; when the body raises (anything,
    ``KeyboardInterrupt`` included) the temporary file is removed and the target is left exactly as it was.
    Readers therefore see the old file or the new one, never half of one, and a failed write leaves nothing
    behind. The temporary name is unique per call, so two writers of the same target never share a temp file.

fsync policy (one, for every writer)
    ``durable=True`` (the default): the temporary file's data is fsynced before the rename and the directory is
    fsynced after it, so after a power loss the target is the old or the new file, complete. Every state file
    uses it: sample collections, statistics, checkpoints, run records, embeddings, archives, model files.
    ``durable=False``: no fsync. Only for bulk outputs that a rerun rebuilds and checks (rendered images: one
    fsync per PNG would dominate rendering); the rename is still atomic against a killed process.

File identity
    :func:`sha256_file` is the content hash that identifies a model file everywhere (run records, sample
    collections, model-file checks).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator, Union

__all__ = [
    "atomic_path",
    "fsync_directory",
    "open_hdf5",
    "sha256_file",
    "temporary_sibling",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

PathLike = Union[str, "os.PathLike[str]"]

_TMP_SUFFIX = ".tmp"


def temporary_sibling(path: PathLike) -> Path:
    """A fresh, unused name beside ``path`` for writing it: ``.<name>.<16 hex>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}{_TMP_SUFFIX}")


def fsync_file(path: PathLike) -> None:
    """Flush a file's data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: PathLike) -> None:
    """Make a rename or creation inside directory ``path`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def _follow_umask(path: Path) -> None:
    """Give a finished temporary file the mode a plain ``open(path, "w")`` would have (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def commit_temporary(tmp: PathLike, path: PathLike, *, durable: bool = True) -> None:
    """Rename a finished temporary file ``tmp`` over ``path`` under the fsync policy of this module."""
    tmp, path = Path(tmp), Path(path)
    _follow_umask(tmp)
    if durable:
        fsync_file(tmp)
    os.replace(tmp, path)
    if durable:
        fsync_directory(path.parent)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, durable: bool = True) -> Iterator[Path]:
    """Write ``path`` atomically: the body writes the yielded temporary path (any library, any way).

    On success the temporary file replaces ``path`` (fsynced when ``durable``); on any exception it is deleted and
    ``path`` is untouched. The parent directory is created if needed. A body that writes nothing is an error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {path}")
        commit_temporary(tmp, path, durable=durable)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: PathLike, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path, durable=durable) as tmp, open(tmp, "xb") as fh:
        fh.write(data)


def write_text_atomic(path: PathLike, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: PathLike, data: Any, *, durable: bool = True, **dump_options: Any) -> None:
    """Replace ``path`` with ``data`` as JSON (indent 2, sorted keys unless overridden, trailing newline)."""
    options = {"indent": 2, "sort_keys": True, **dump_options}
    write_text_atomic(path, json.dumps(data, **options) + "\n", durable=durable)


def sha256_file(path: PathLike, block: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's content, read in ``block``-byte pieces: how synthcore identifies model files."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def open_hdf5(path: PathLike, what: str = "HDF5 file") -> Any:
    """Open ``path`` read-only with h5py; a missing file is ``FileNotFoundError`` and a file HDF5 can't read is
    ``ValueError``, both naming the file and ``what`` it should have been."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: cannot open as an {what} ({exc})") from None
