"""``SampleCollection``: the samples of a run (latents, identities, labels, embeddings) as one columnar HDF5 file.

Layout of ``samples.h5`` (format ``synthcore.samples/1``); every column has one row per sample:

=============  =========================  ===========================================================================
dataset        shape / dtype              meaning
=============  =========================  ===========================================================================
``identity``   (N,) int64                 identity number (>= 0); images go to ``<identity:05d>/<label>.png``
``label``      (N,) UTF-8 string          variation label within the identity: ``reference``, ``augmentation_3``,
                                          ``pose_2``, ...; unique per identity and usable as a file name
``w``          (N, w_dim) float32         the W latent (broadcast to every synthesis layer) -- or instead
``w_plus``     (N, num_ws, w_dim) f32     one latent per synthesis layer (projections, per-layer edits)
``z``          (N, z_dim) float32         optional: the Z sample the latent was mapped from
``c``          (N, c_dim) float32         optional: the generator's conditioning label (class one-hot, camera)
``embedding``  (N, e) float32             optional: raw face-recognition features of the sample (not normalised)
``noise_seed`` (N,) int64                 only when the file's ``noise_mode`` is ``seeded`` (see ``render.py``)
=============  =========================  ===========================================================================

File attributes: ``format``, ``num_rows`` (rows committed, see below), ``w_space`` (``w`` or ``w_plus``),
``noise_mode`` (``const``, ``none`` or ``seeded``), ``generator`` / ``generator_sha256`` and ``embedder`` /
``embedder_sha256`` (absolute path and hash of the model files, empty when not given), ``options`` (JSON text of the
settings that produced the samples) and ``synthcore_version``. Nothing time-dependent is stored, so the same
appends give the same file content (the kill-and-resume tests compare ``content_digest``).

Why columnar: the published packages keep one HDF5 group per sample, which makes a 640k-sample file slow to open
and merge (identity_diffusion.md section 11). Here a column is one chunked, resizable dataset: appends extend
it, reads of any row range are a slice.

Crash safety, in two layers:

* Committed-row counter: an append first resizes and fills every column, flushes, and only then raises the
  ``num_rows`` attribute and flushes again. Readers see ``num_rows`` rows, so an append torn by an error (or a
  kill between the two flushes) is invisible, and the next writer cuts the extra rows off.
* Whole-file atomicity: ``create`` (and ``open(..., mode="a", atomic=True)``) write into a hidden
  ``.<name>.partial`` file beside the target and ``close`` renames it into place (after an fsync). A kill before
  ``close`` leaves the previous file, or none, never a half-written ``samples.h5``. HDF5 itself cannot promise a
  consistent file after a kill in the middle of writing metadata, which is why in-place appends
  (``atomic=False``) are only as safe as the counter.

Integrity (files written since checksums were added; older files are read unverified):

* HDF5 metadata: files are written in the HDF5 1.8 format, whose superblock and object headers (which hold the
  numeric attributes such as ``num_rows``) carry checksums HDF5 checks as it reads them; a truncated file is
  refused at open (its recorded end lies past the real one). A damaged chunk index points a read at wrong bytes,
  which then fail the chunk's checksum.
* Data: every numeric column has HDF5's Fletcher-32 filter, a checksum per chunk, checked whenever a chunk is
  read. A committed chunk is never rewritten by later appends except when the chunk is still being filled, and
  HDF5 recomputes the checksum whenever it writes a chunk, so appends and resumption cost nothing extra.
* Text: labels and text attributes live in HDF5's global heap, which has no checksum. ``label_crc32`` (one
  CRC-32 per row, itself Fletcher-32 protected) is checked whenever labels are read, and ``attrs_sha256`` (over
  every attribute but ``num_rows``, which never changes after ``create``) on every open.

Opening checks the metadata and attributes (constant cost); data chunks are checked when read, so reading a
damaged part raises :class:`DamagedCollectionError` naming the file, the column and the rows, instead of
returning changed numbers. :meth:`SampleCollection.verify` reads everything (cost of one full read).
"""

import hashlib
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import h5py
import numpy as np

from synthcore import __version__
from synthcore.fileio import fsync_directory, fsync_file, sha256_file  # sha256_file: re-exported

__all__ = [
    "DamagedCollectionError",
    "FORMAT",
    "LATENT_COLUMNS",
    "NOISE_MODES",
    "OPTIONAL_COLUMNS",
    "SampleCollection",
    "check_label",
    "merge_collections",
    "sha256_file",
]

FORMAT = "synthcore.samples/1"
LATENT_COLUMNS = ("w", "w_plus")
OPTIONAL_COLUMNS = ("z", "c", "embedding")
NOISE_MODES = ("const", "none", "seeded")
# Column order: also the order ``content_digest`` hashes them in.
_ALL_COLUMNS = ("identity", "label", "w", "w_plus", "z", "c", "embedding", "noise_seed")
_STR = h5py.string_dtype("utf-8")
_CHUNK_BYTES = 1 << 20  # ~1 MiB chunks: large enough for fast sequential reads, small enough for cheap appends
_BAD_LABEL = re.compile(r"[/\\\x00-\x1f\x7f]")
# The HDF5 1.8 format: checksummed superblock and object headers. Not 1.10's: its superblock records "open for
# writing" and refuses to open after a killed writer until h5clear is run, which would break resuming in place.
_LIBVER = ("v108", "v110")
_LABEL_CRC = "label_crc32"  # per-row CRC-32 of the label's UTF-8 bytes (see the module docstring)
_ATTRS_HASH = "attrs_sha256"  # SHA-256 over the attributes fixed at create time
_MUTABLE_ATTRS = ("num_rows", _ATTRS_HASH)
_REBUILD = "rebuild it by rerunning the stage that wrote it with --force"


class DamagedCollectionError(ValueError):
    """A sample collection whose bytes changed after they were written (truncated, bits flipped)."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what
        super().__init__(f"{path}: damaged: {what}; {_REBUILD}")


def _is_damage(exc: BaseException) -> bool:
    """Whether an HDF5 error means the file's bytes are damaged (failed checksum, truncation)."""
    text = str(exc)
    return any(s in text for s in ("checksum", "truncated file", "filter returned failure", "bad object header",
                                   "wrong B-tree signature", "bad global heap", "addr overflow"))  # fmt: skip


def _attrs_digest(attrs: Any) -> str:
    """SHA-256 over every attribute except the mutable ones, in name order, values as read back from the file."""
    h = hashlib.sha256()
    for k in sorted(attrs):
        if k in _MUTABLE_ATTRS:
            continue
        v = attrs[k]
        v = v.item() if isinstance(v, np.generic) else v
        h.update(f"{k}={v!r};".encode())
    return h.hexdigest()


def _label_crcs(labels: Sequence[Any]) -> np.ndarray:
    return np.fromiter(
        (zlib.crc32(s if isinstance(s, bytes) else s.encode("utf-8")) for s in labels), np.uint32, len(labels)
    )


ArrayLike = Any  # numpy arrays, torch tensors, nested sequences


def check_label(label: str) -> str:
    """Return ``label`` if it can name a sample (it becomes ``<label>.png``), else raise ValueError."""
    if not isinstance(label, str):
        raise TypeError(f"labels must be strings, got {type(label).__name__}")
    if not label or label in (".", "..") or label.startswith(".") or _BAD_LABEL.search(label):
        raise ValueError(
            f"bad sample label {label!r}: labels name image files, so they must be non-empty, must not start "
            "with '.', and must not contain '/', '\\' or control characters"
        )
    return label


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _chunk_rows(row_shape: Tuple[int, ...], itemsize: int) -> int:
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * itemsize)
    return int(max(1, min(65536, _CHUNK_BYTES // row_bytes)))


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


class SampleCollection:
    """A columnar sample file. Use :meth:`create` or :meth:`open`; close it (or use ``with``).

    Reading returns numpy arrays (labels as a numpy object array of ``str``); ``torch.from_numpy`` makes
    tensors without a copy.
    """

    def __init__(self, file: h5py.File, path: Path, writable: bool, partial: Optional[Path]) -> None:
        # Private: use create() / open().
        self._f = file
        self.path = path
        self.writable = writable
        self._partial = partial
        self._pairs: Optional[Set[Tuple[int, str]]] = None
        try:
            self._check_structure()
            if writable:
                self._drop_uncommitted()
        except BaseException:
            self._f.close()
            raise

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Union[str, Path],
        *,
        w_dim: int,
        num_ws: Optional[int] = None,
        z_dim: Optional[int] = None,
        c_dim: Optional[int] = None,
        embedding_dim: Optional[int] = None,
        noise_mode: str = "const",
        generator: Optional[Union[str, Path]] = None,
        generator_sha256: Optional[str] = None,
        embedder: Optional[Union[str, Path]] = None,
        embedder_sha256: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        overwrite: bool = False,
        atomic: bool = True,
    ) -> "SampleCollection":
        """Create an empty collection at ``path``.

        Args:
            w_dim: latent width.
            num_ws: store per-layer latents ``w_plus`` [N, num_ws, w_dim] instead of ``w`` [N, w_dim].
            z_dim, c_dim, embedding_dim: add the optional ``z``, ``c``, ``embedding`` columns with these widths
                (None: no such column). Every append must then give them.
            noise_mode: synthesis noise the samples are meant with: ``const`` (the generator's stored noise;
                default), ``none``, or ``seeded`` (adds the ``noise_seed`` column).
            generator, embedder: model files; their absolute paths and SHA-256 are recorded (hashing a large
                file takes a moment; pass ``*_sha256`` to reuse a known hash). ``synthcore render`` uses the
                recorded generator when not given another.
            options: the settings that produced the samples (JSON-serialisable), kept as a JSON attribute.
            overwrite: replace an existing file (else an existing file is an error).
            atomic: write into ``.<name>.partial`` and rename into place on :meth:`close` (default). With
                False the file is written in place.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists (pass overwrite=True / --force to replace it)")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        for name, v in (("w_dim", w_dim), ("num_ws", num_ws), ("z_dim", z_dim), ("c_dim", c_dim)):
            if v is not None and (not isinstance(v, (int, np.integer)) or v < (1 if name != "c_dim" else 0)):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if embedding_dim is not None and (not isinstance(embedding_dim, (int, np.integer)) or embedding_dim < 1):
            raise ValueError(f"embedding_dim must be a positive integer, got {embedding_dim!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        target = _partial_path(path) if atomic else path
        target.unlink(missing_ok=True)  # a stale partial file from a killed writer
        f = h5py.File(target, "w", libver=_LIBVER)
        try:
            f.attrs["format"] = FORMAT
            f.attrs["num_rows"] = np.int64(0)
            f.attrs["w_space"] = "w" if num_ws is None else "w_plus"
            f.attrs["noise_mode"] = noise_mode
            f.attrs["generator"] = "" if generator is None else str(Path(generator).resolve())
            f.attrs["generator_sha256"] = generator_sha256 or (sha256_file(generator) if generator else "")
            f.attrs["embedder"] = "" if embedder is None else str(Path(embedder).resolve())
            f.attrs["embedder_sha256"] = embedder_sha256 or (sha256_file(embedder) if embedder else "")
            f.attrs["options"] = json.dumps(dict(options or {}), sort_keys=True, allow_nan=True)
            f.attrs["synthcore_version"] = __version__
            specs: List[Tuple[str, Tuple[int, ...], Any]] = [("identity", (), np.int64), ("label", (), _STR)]
            specs.append(("w", (w_dim,), np.float32) if num_ws is None else ("w_plus", (num_ws, w_dim), np.float32))
            for name, width in (("z", z_dim), ("c", c_dim), ("embedding", embedding_dim)):
                if width is not None:
                    specs.append((name, (int(width),), np.float32))
            if noise_mode == "seeded":
                specs.append(("noise_seed", (), np.int64))
            specs.append((_LABEL_CRC, (), np.uint32))
            for name, row_shape, dtype in specs:
                itemsize = 16 if dtype is _STR else np.dtype(dtype).itemsize
                f.create_dataset(
                    name,
                    shape=(0, *row_shape),
                    maxshape=(None, *row_shape),
                    dtype=dtype,
                    chunks=(_chunk_rows(row_shape, itemsize), *row_shape),
                    fletcher32=dtype is not _STR,  # HDF5 cannot filter variable-length strings: see label_crc32
                    track_times=False,  # no timestamps: same appends, same bytes
                )
            f.attrs[_ATTRS_HASH] = _attrs_digest(f.attrs)
            f.flush()
        except BaseException:
            f.close()
            target.unlink(missing_ok=True)
            raise
        return cls(f, path, writable=True, partial=target if atomic else None)

    @classmethod
    def open(cls, path: Union[str, Path], mode: str = "r", atomic: bool = False) -> "SampleCollection":
        """Open an existing collection: ``mode="r"`` read-only (default) or ``"a"`` to append.

        With ``mode="a", atomic=True`` the file is first copied to ``.<name>.partial`` and the appends land there;
        :meth:`close` renames it over the original, so a kill leaves the original untouched (costs one copy).
        """
        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if not path.is_file():
            raise FileNotFoundError(f"no sample collection at {path}")
        if mode == "r":
            return cls(_open_h5(path, "r"), path, writable=False, partial=None)
        if atomic:
            import shutil

            partial = _partial_path(path)
            shutil.copyfile(path, partial)
            return cls(_open_h5(partial, "r+"), path, writable=True, partial=partial)
        return cls(_open_h5(path, "r+"), path, writable=True, partial=None)

    # --- integrity -------------------------------------------------------------------------------------------

    def _damaged(self, what: str) -> DamagedCollectionError:
        return DamagedCollectionError(self.path, what)

    def _check_structure(self) -> None:
        """Cheap checks on open: every attribute and column header readable (HDF5 verifies their checksums), the
        attributes match ``attrs_sha256``, and every column holds at least the committed rows."""
        try:
            attrs = {k: self._f.attrs[k] for k in self._f.attrs}
            fmt = attrs.get("format")
            if fmt != FORMAT:
                raise ValueError(
                    f"{self.path}: not a synthcore sample collection (format attribute {fmt!r}, expected {FORMAT})"
                )
            stored = attrs.get(_ATTRS_HASH)
            if stored is not None and stored != _attrs_digest(attrs):
                raise self._damaged("its attributes (options, model files, ...) do not match their checksum")
            n = int(attrs["num_rows"])
            for name in (*self.columns, _LABEL_CRC):
                if name not in self._f:
                    continue
                if self._f[name].shape[0] < n:
                    raise self._damaged(f"column {name!r} has {self._f[name].shape[0]} rows, {n} were committed")
        except (OSError, KeyError, RuntimeError) as exc:
            if isinstance(exc, KeyError) and not _is_damage(exc):
                raise ValueError(f"{self.path}: not a complete sample collection (missing {exc})") from None
            raise self._damaged(f"HDF5 metadata unreadable ({_first_line(exc)})") from None

    def _rows(self, name: str, sel: Any) -> np.ndarray:
        """``self._f[name][sel]``, with a failed chunk checksum reported as damage (column and rows named)."""
        try:
            return self._f[name][sel]
        except (OSError, KeyError, RuntimeError) as exc:
            if not _is_damage(exc):
                raise
            where = f"rows {sel.start}..{sel.stop}" if isinstance(sel, slice) else "the rows read"
            raise self._damaged(f"column {name!r}, {where}: {_first_line(exc)}") from None

    def _check_labels(self, labels: np.ndarray, sel: Any) -> None:
        if _LABEL_CRC not in self._f or not len(labels):
            return
        stored = self._rows(_LABEL_CRC, sel)
        bad = np.flatnonzero(stored != _label_crcs(labels))
        if bad.size:
            raise self._damaged(f"{bad.size} label(s) do not match their checksum (first: {labels[bad[0]]!r})")

    def verify(self, block: int = 65536) -> None:
        """Read every committed row of every column (each chunk's checksum is checked as it is read, labels against
        ``label_crc32``); raise :class:`DamagedCollectionError` at the first damage. Costs one full read."""
        n = len(self)
        for lo in range(0, n, block):
            sel = slice(lo, min(n, lo + block))
            for c in self.columns:
                rows = self._rows(c, sel)
                if c == "label":
                    self._check_labels(rows, sel)

    @property
    def verifiable(self) -> bool:
        """Whether the file carries checksums (written by a synthcore that stores them)."""
        return _ATTRS_HASH in self._f.attrs

    # --- facts ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._f.attrs["num_rows"])

    @property
    def columns(self) -> Tuple[str, ...]:
        """The columns present, in canonical order."""
        return tuple(c for c in _ALL_COLUMNS if c in self._f)

    @property
    def w_space(self) -> str:
        """``"w"`` or ``"w_plus"``: which latent column the file holds."""
        return str(self._f.attrs["w_space"])

    @property
    def noise_mode(self) -> str:
        return str(self._f.attrs["noise_mode"])

    @property
    def w_dim(self) -> int:
        return int(self._f[self.w_space].shape[-1])

    @property
    def num_ws(self) -> Optional[int]:
        return int(self._f["w_plus"].shape[1]) if self.w_space == "w_plus" else None

    def width(self, column: str) -> Optional[int]:
        """Row width of a 2-D column (``z``, ``c``, ``embedding``, ``w``), or None if the column is absent."""
        return int(self._f[column].shape[-1]) if column in self._f else None

    @property
    def attrs(self) -> Dict[str, Any]:
        """File attributes as plain Python values (``options`` decoded from JSON)."""
        out: Dict[str, Any] = {}
        for k, v in self._f.attrs.items():
            out[k] = v.item() if isinstance(v, np.generic) else v
        out["options"] = self.options
        return out

    @property
    def options(self) -> Dict[str, Any]:
        return json.loads(self._f.attrs.get("options", "{}"))

    def identities(self) -> np.ndarray:
        """Sorted distinct identity numbers."""
        return np.unique(self.read(columns=["identity"])["identity"])

    def rows_of(self, identity: int) -> np.ndarray:
        """Row indices of one identity's samples, in file order."""
        return np.flatnonzero(self.read(columns=["identity"])["identity"] == int(identity))

    # --- reading -------------------------------------------------------------------------------------------

    def read(
        self, rows: Union[None, slice, Sequence[int], np.ndarray] = None, columns: Optional[Sequence[str]] = None
    ) -> Dict[str, np.ndarray]:
        """Columns (all by default) for ``rows``: None (every committed row), a slice, or row indices.

        Index arrays may be in any order and may repeat; the result follows them.
        """
        n = len(self)
        cols = self.columns if columns is None else tuple(columns)
        for c in cols:
            if c not in self._f:
                raise KeyError(f"{self.path}: no column {c!r} (has {', '.join(self.columns)})")
        if rows is None:
            rows = slice(0, n)
        out: Dict[str, np.ndarray] = {}
        if isinstance(rows, slice):
            lo, hi, step = rows.indices(n)
            span = slice(lo, hi) if step > 0 else slice(0, n)  # what is read from the file, then stepped here
            for c in cols:
                data = self._rows(c, span)
                if c == "label":
                    self._check_labels(data, span)
                out[c] = data[::step] if step > 0 else data[lo:hi:step]
        else:
            idx = np.asarray(rows, dtype=np.int64).reshape(-1)
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise IndexError(f"row index out of range for a collection of {n} rows")
            idx = np.where(idx < 0, idx + n, idx)
            # h5py wants increasing unique indices: read those once and scatter back in the asked order.
            uniq, inverse = np.unique(idx, return_inverse=True)
            sel: Any = uniq if uniq.size else slice(0, 0)
            for c in cols:
                data = self._rows(c, sel)
                if c == "label":
                    self._check_labels(data, sel)
                out[c] = data[inverse]
        if "label" in out:
            out["label"] = np.array([s.decode("utf-8") if isinstance(s, bytes) else s for s in out["label"]], object)
        return out

    def by_identity(self, identity: int, columns: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """All samples of one identity."""
        return self.read(self.rows_of(identity), columns)

    def iter_batches(
        self, batch: int, columns: Optional[Sequence[str]] = None, start: int = 0, stop: Optional[int] = None
    ) -> Iterator[Tuple[int, Dict[str, np.ndarray]]]:
        """``(first_row, columns)`` for consecutive blocks of at most ``batch`` rows."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        stop = len(self) if stop is None else min(stop, len(self))
        for lo in range(start, stop, batch):
            yield lo, self.read(slice(lo, min(stop, lo + batch)), columns)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        """One dict per sample (convenient for small files; use :meth:`iter_batches` for big ones)."""
        for _, block in self.iter_batches(1024):
            keys = list(block)
            for i in range(len(block["identity"])):
                yield {k: block[k][i] for k in keys}

    def content_digest(self) -> str:
        """SHA-256 over the committed rows of every column (bytes as stored) and the deterministic attributes.

        Two collections with equal digests hold the same samples bit for bit, made with the same model files
        (by hash) and options. Where the model files lie and the synthcore version are left out.
        """
        h = hashlib.sha256()
        for k in sorted(self._f.attrs):
            if k in ("synthcore_version", "generator", "embedder", _ATTRS_HASH):  # the hash covers those too
                continue
            h.update(f"{k}={self._f.attrs[k]!r};".encode())
        n = len(self)
        for c in self.columns:
            ds = self._f[c]
            h.update(f"{c}:{ds.dtype}:{ds.shape[1:]};".encode())
            for lo in range(0, n, 65536):
                span = slice(lo, min(n, lo + 65536))
                block = self._rows(c, span)
                if c == "label":
                    self._check_labels(block, span)
                    h.update(b"\x00".join(s if isinstance(s, bytes) else s.encode() for s in block) + b"\x01")
                else:
                    h.update(np.ascontiguousarray(block).tobytes())
        return h.hexdigest()

    # --- writing -------------------------------------------------------------------------------------------

    def append(
        self,
        identity: Union[int, ArrayLike],
        label: Union[str, Sequence[str]],
        *,
        w: Optional[ArrayLike] = None,
        w_plus: Optional[ArrayLike] = None,
        z: Optional[ArrayLike] = None,
        c: Optional[ArrayLike] = None,
        embedding: Optional[ArrayLike] = None,
        noise_seed: Optional[Union[int, ArrayLike]] = None,
    ) -> range:
        """Append a batch of samples; returns the range of their row numbers.

        ``identity`` and ``label`` may be single values (shared by the batch) or one per row. Latents and
        embeddings are stored as float32 (float32 input is stored bit for bit). Every column the file has must
        be given; columns it lacks must not be. A (identity, label) pair may occur only once.
        """
        if not self.writable:
            raise PermissionError(f"{self.path} is open read-only")
        given = {"w": w, "w_plus": w_plus, "z": z, "c": c, "embedding": embedding, "noise_seed": noise_seed}
        latent = self.w_space
        if given[latent] is None:
            other = "w" if latent == "w_plus" else "w_plus"
            hint = f" (this file stores {latent}, not {other})" if given[other] is not None else ""
            raise ValueError(f"append needs {latent}{hint}")
        data: Dict[str, np.ndarray] = {}
        for name, value in given.items():
            present = name in self._f
            if value is None and present:
                raise ValueError(f"{self.path} has a {name!r} column: append must give {name}")
            if value is not None and not present:
                raise ValueError(f"{self.path} has no {name!r} column (declare it when creating the collection)")
            if value is not None:
                data[name] = _to_numpy(value)
        n = len(data[latent])
        for name, arr in data.items():
            if name == "noise_seed":
                continue
            want = self._f[name].shape[1:]
            if arr.ndim != 1 + len(want) or tuple(arr.shape[1:]) != tuple(want) or arr.shape[0] != n:
                raise ValueError(f"{name} must be [{n}, {', '.join(map(str, want))}], got {list(arr.shape)}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise TypeError(f"{name} must be floating point, got {arr.dtype}")
            data[name] = np.ascontiguousarray(arr, dtype=np.float32)
        data["identity"] = self._int_column("identity", identity, n, minimum=0)
        if "noise_seed" in data:
            data["noise_seed"] = self._int_column("noise_seed", data["noise_seed"], n, minimum=0)
        labels = [label] * n if isinstance(label, str) else list(label)
        if len(labels) != n:
            raise ValueError(f"got {len(labels)} labels for {n} rows")
        for s in labels:
            check_label(s)
        pairs = self._existing_pairs()
        new = list(zip(data["identity"].tolist(), labels))
        dup = [p for p in new if p in pairs]
        if dup or len(set(new)) != len(new):
            p = dup[0] if dup else next(p for p in new if new.count(p) > 1)
            raise ValueError(
                f"sample (identity {p[0]}, label {p[1]!r}) already exists: labels must be unique per identity"
            )
        data["label"] = np.array(labels, dtype=object)
        if _LABEL_CRC in self._f:
            data[_LABEL_CRC] = _label_crcs(labels)

        start = len(self)
        stop = start + n
        # Fill every column beyond the committed rows, flush, then commit by raising num_rows (see module doc).
        for name in self._stored_columns():
            ds = self._f[name]
            ds.resize(stop, axis=0)
            if n:
                ds[start:stop] = data[name]
        self._f.flush()
        self._f.attrs["num_rows"] = np.int64(stop)
        self._f.flush()
        pairs.update(new)
        return range(start, stop)

    def close(self) -> None:
        """Close the file; an atomic writer renames its partial file into place (fsynced first)."""
        if not self._f.id.valid:
            return
        self._f.close()
        if self._partial is not None:
            fsync_file(self._partial)
            os.replace(self._partial, self.path)
            fsync_directory(self.path.parent)
            self._partial = None

    def abort(self) -> None:
        """Close without committing: an atomic writer's partial file is deleted, the target left as it was."""
        if self._f.id.valid:
            self._f.close()
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)
            self._partial = None

    def __enter__(self) -> "SampleCollection":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        # An exception inside ``with`` must not publish a half-filled atomic file.
        if exc_type is not None and self._partial is not None:
            self.abort()
        else:
            self.close()

    def __repr__(self) -> str:
        state = "open" if self._f.id.valid else "closed"
        return f"SampleCollection({str(self.path)!r}, {len(self) if state == 'open' else '?'} rows, {state})"

    # --- helpers -------------------------------------------------------------------------------------------

    def _int_column(self, name: str, value: Any, n: int, minimum: int) -> np.ndarray:
        arr = _to_numpy(value)
        if arr.ndim == 0:
            arr = np.full(n, arr)
        if arr.shape != (n,):
            raise ValueError(f"{name} must be one integer or [{n}] integers, got shape {list(arr.shape)}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {int(arr.min())}")
        return arr

    def _stored_columns(self) -> Tuple[str, ...]:
        """The columns and the checksum column: every dataset that holds one row per sample."""
        return self.columns + ((_LABEL_CRC,) if _LABEL_CRC in self._f else ())

    def _existing_pairs(self) -> Set[Tuple[int, str]]:
        if self._pairs is None:
            cols = self.read(columns=["identity", "label"])
            self._pairs = set(zip(cols["identity"].tolist(), cols["label"].tolist()))
        return self._pairs

    def _drop_uncommitted(self) -> None:
        """Cut rows beyond ``num_rows`` left by a torn append."""
        n = len(self)
        for name in self._stored_columns():
            if self._f[name].shape[0] != n:
                self._f[name].resize(n, axis=0)
        self._f.flush()


def open_error(exc: OSError) -> str:
    """Why HDF5 refused to open a file, in words (a lock held by a writer is the common case)."""
    if "unable to lock file" in str(exc) or getattr(exc, "errno", None) == 11:
        return "the file is open for writing by another process (wait for the command writing it to finish)"
    return f"cannot open as HDF5 ({exc})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().strip("'\"")
    return text.splitlines()[0] if text else type(exc).__name__


def _open_h5(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        if _is_damage(exc):
            raise DamagedCollectionError(path, f"HDF5 cannot open it ({_first_line(exc)})") from None
        raise ValueError(f"{path}: {open_error(exc)}") from None


def merge_collections(
    sources: Sequence[Union[str, Path]], out: Union[str, Path], overwrite: bool = False, block: int = 8192
) -> "SampleCollection":
    """Concatenate collections (e.g. the shards of a run split over machines) into a new one at ``out``.

    The sources must agree on their columns and widths, latent space, noise mode and model hashes; rows keep
    the given order, and an (identity, label) pair may occur only once over all of them. The result's options
    are ``{"merged_from": [{"file": name, "options": ...}, ...]}``. Written atomically; returned open read-only.
    """
    sources = [Path(p) for p in sources]
    if not sources:
        raise ValueError("merge_collections needs at least one source")
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} already exists")
    opened = [SampleCollection.open(p) for p in sources]
    try:
        first = opened[0]
        keys = ("w_space", "noise_mode", "generator_sha256", "embedder_sha256")
        ref = {k: first.attrs[k] for k in keys}
        shapes = {c: first._f[c].shape[1:] for c in first.columns}
        for c in opened[1:]:
            for k in keys:
                if c.attrs[k] != ref[k]:
                    raise ValueError(f"{c.path}: {k} {c.attrs[k]!r} differs from {first.path}'s {ref[k]!r}")
            if {k: c._f[k].shape[1:] for k in c.columns} != shapes:
                raise ValueError(f"{c.path}: columns {c.columns} do not match those of {first.path}")
        width = {k: (s[-1] if s else None) for k, s in shapes.items()}
        a = first.attrs
        merged = SampleCollection.create(
            out,
            w_dim=first.w_dim,
            num_ws=first.num_ws,
            z_dim=width.get("z"),
            c_dim=width.get("c"),
            embedding_dim=width.get("embedding"),
            noise_mode=first.noise_mode,
            generator=a["generator"] or None,
            generator_sha256=a["generator_sha256"] or None,
            embedder=a["embedder"] or None,
            embedder_sha256=a["embedder_sha256"] or None,
            options={"merged_from": [{"file": c.path.name, "options": c.options} for c in opened]},
            overwrite=overwrite,
        )
        try:
            for c in opened:
                for _, rows in c.iter_batches(block):
                    merged.append(rows.pop("identity"), list(rows.pop("label")), **rows)
            merged.close()
        except BaseException:
            merged.abort()
            raise
    finally:
        for c in opened:
            c.close()
    return SampleCollection.open(out)
