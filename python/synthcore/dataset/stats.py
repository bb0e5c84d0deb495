"""``stats.h5``: per-iteration scalars of the identity algorithms, one row per iteration.

Each statistic is a resizable float64 dataset of shape (rows,), plus an int64 ``iteration`` dataset. The names
are those of the published stats files (identity_diffusion.md section 8), so curves compare directly:
``dist_min/avg/max`` (embedding angles, radians), ``prop_ict`` (fraction of pairs at or beyond the inter-class
threshold), ``w2wd_min/avg/max`` (W-space L2 distances), ``wavg_avg`` (mean distance to ``w_avg``),
``intf_* / latf_* / rndf_* / totf_*`` (row norms of the interaction, latent, random and total forces, each
``_min/_avg/_max``) and ``timestep``. Other names may be added; a name first seen at a later row reads NaN
before it, a name missing from a row reads NaN there.

Like the sample collection, the file attribute ``num_rows`` commits rows: an append torn by an error or a kill is
invisible and cut off by the next writer. :func:`write_stats` writes a whole table at once, atomically, which is
what a resumed run does (its rows come from the checkpoint, so rows written after the checkpoint are replaced).
"""

import json
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from synthcore.dataset.collection import open_error
from synthcore.fileio import atomic_path

__all__ = ["FORMAT", "STAT_NAMES", "StatsFile", "read_stats", "write_stats"]

FORMAT = "synthcore.stats/1"
_FORCES = ("intf", "latf", "rndf", "totf")
STAT_NAMES = (
    ("dist_min", "dist_avg", "dist_max", "prop_ict", "w2wd_min", "w2wd_avg", "w2wd_max", "wavg_avg")
    + tuple(f"{f}_{s}" for f in _FORCES for s in ("min", "avg", "max"))
    + ("timestep",)
)
_RESERVED = ("iteration",)


class StatsFile:
    """An open ``stats.h5``: ``append`` rows, ``read`` columns. Use :meth:`create` / :meth:`open`."""

    def __init__(self, file: h5py.File, path: Path, writable: bool) -> None:
        self._f = file
        self.path = path
        self.writable = writable
        if self._f.attrs.get("format") != FORMAT:
            self._f.close()
            raise ValueError(f"{path}: not a synthcore stats file")
        if writable:
            n = len(self)
            for name in self._f:
                if self._f[name].shape[0] != n:
                    self._f[name].resize(n, axis=0)
            self._f.flush()

    @classmethod
    def create(
        cls, path: Union[str, Path], attrs: Optional[Mapping[str, Any]] = None, overwrite: bool = False
    ) -> "StatsFile":
        """A new, empty stats file; ``attrs`` (JSON-serialisable, e.g. the algorithm and its settings) are kept."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(path, "w")
        f.attrs["format"] = FORMAT
        f.attrs["num_rows"] = np.int64(0)
        f.attrs["info"] = json.dumps(dict(attrs or {}), sort_keys=True, allow_nan=True)
        f.create_dataset("iteration", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(1024,), track_times=False)
        f.flush()
        return cls(f, path, writable=True)

    @classmethod
    def open(cls, path: Union[str, Path], mode: str = "r") -> "StatsFile":
        """Open an existing stats file, read-only (``"r"``) or to append (``"a"``)."""
        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if not path.is_file():
            raise FileNotFoundError(f"no stats file at {path}")
        try:
            f = h5py.File(path, "r" if mode == "r" else "r+")
        except OSError as exc:
            raise ValueError(f"{path}: {open_error(exc)}") from None
        return cls(f, path, writable=mode == "a")

    def __len__(self) -> int:
        return int(self._f.attrs["num_rows"])

    @property
    def names(self) -> tuple:
        """Statistic names in the file (``iteration`` excluded), known names first in the published order."""
        present = [k for k in self._f if k not in _RESERVED]
        return tuple([k for k in STAT_NAMES if k in present] + sorted(k for k in present if k not in STAT_NAMES))

    @property
    def info(self) -> Dict[str, Any]:
        return json.loads(self._f.attrs.get("info", "{}"))

    def append(self, row: Mapping[str, float], iteration: Optional[int] = None) -> None:
        """Add one row; ``iteration`` defaults to the row number."""
        self.extend([row], None if iteration is None else [iteration])

    def extend(self, rows: Sequence[Mapping[str, float]], iterations: Optional[Sequence[int]] = None) -> None:
        """Add several rows at once (one resize and flush per column)."""
        if not self.writable:
            raise PermissionError(f"{self.path} is open read-only")
        rows = list(rows)
        n0, k = len(self), len(rows)
        if iterations is None:
            iterations = range(n0, n0 + k)
        its = np.asarray(list(iterations), dtype=np.int64)
        if its.shape != (k,):
            raise ValueError(f"got {its.size} iteration numbers for {k} rows")
        names = sorted({name for r in rows for name in r})
        for name in names:
            if name in _RESERVED or not name or "/" in name:
                raise ValueError(f"bad statistic name {name!r}")
        columns: Dict[str, np.ndarray] = {}
        for name in set(names) | set(self.names):
            col = np.full(k, np.nan)
            for i, r in enumerate(rows):
                if name in r and r[name] is not None:
                    col[i] = float(r[name])
            columns[name] = col
        for name, col in columns.items():
            if name not in self._f:
                self._f.create_dataset(
                    name, data=np.full(n0, np.nan), maxshape=(None,), chunks=(1024,), track_times=False
                )
            ds = self._f[name]
            ds.resize(n0 + k, axis=0)
            ds[n0:] = col
        self._f["iteration"].resize(n0 + k, axis=0)
        self._f["iteration"][n0:] = its
        self._f.flush()
        self._f.attrs["num_rows"] = np.int64(n0 + k)
        self._f.flush()

    def read(self, names: Optional[Iterable[str]] = None) -> Dict[str, np.ndarray]:
        """``{name: values}`` for the given statistics (all by default), plus ``iteration``."""
        n = len(self)
        wanted = self.names if names is None else tuple(names)
        out = {"iteration": self._f["iteration"][:n]}
        for name in wanted:
            if name not in self._f:
                raise KeyError(f"{self.path}: no statistic {name!r} (has {', '.join(self.names)})")
            out[name] = self._f[name][:n]
        return out

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> "StatsFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_stats(path: Union[str, Path], names: Optional[Iterable[str]] = None) -> Dict[str, np.ndarray]:
    """All (or the named) statistics of a stats file as arrays, plus ``iteration``."""
    with StatsFile.open(path) as s:
        return s.read(names)


def write_stats(
    path: Union[str, Path],
    rows: Sequence[Mapping[str, float]],
    iterations: Optional[Sequence[int]] = None,
    attrs: Optional[Mapping[str, Any]] = None,
) -> None:
    """Write a complete stats file from ``rows`` atomically (temporary file, then rename over ``path``)."""
    with atomic_path(path) as tmp, StatsFile.create(tmp, attrs, overwrite=True) as s:
        s.extend(rows, iterations)
