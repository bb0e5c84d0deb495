"""Bit-exact checkpoints of an iterative algorithm's state, and finding the newest complete one.

A state is a nested structure of dicts (string keys), lists, and leaves: torch tensors, numpy arrays, ``int``,
``float`` (NaN and infinities included), ``bool``, ``str`` and ``None``. Tuples come back as lists.

One checkpoint is one HDF5 file ``<dir>/step_<step:08d>.h5``:

* every tensor / array leaf is a dataset ``arrays/<k>`` holding its bytes unchanged (bfloat16 is stored as its
  16-bit pattern), so a resumed run continues from exactly the numbers it stopped at;
* attribute ``structure``: the JSON of the state with each array leaf replaced by a reference
  ``{"__array__": k, "kind": "torch"|"numpy", "dtype": ...}``; Python floats are written with ``repr``, which
  reads back to the same double;
* attributes ``format`` (``synthcore.checkpoint/1``), ``step`` and ``sha256`` (over the structure and every
  array's bytes).

Files are written through :func:`synthcore.fileio.atomic_path` (temporary sibling, fsynced, renamed into place),
so a kill leaves either the whole checkpoint or none. :func:`latest_checkpoint` still verifies the hash and falls
back to the next older file if one cannot be read (a truncated copy, a disk error), warning about it.
"""

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import h5py
import numpy as np

from synthcore.fileio import atomic_path

__all__ = ["FORMAT", "Checkpoint", "latest_checkpoint", "list_checkpoints", "load_checkpoint", "save_checkpoint"]

FORMAT = "synthcore.checkpoint/1"
_NAME = re.compile(r"^step_(\d{8,})\.h5$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: its step, its state and where it came from."""

    step: int
    state: Any
    path: Path


def _checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:08d}.h5"


def _encode(obj: Any, arrays: List[Tuple[np.ndarray, Dict[str, Any]]], where: str) -> Any:
    """JSON-able form of ``obj``; array leaves are moved to ``arrays``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint state: dict keys must be strings, got {k!r} at {where}")
            if k == "__array__":
                raise ValueError(f"checkpoint state: the key '__array__' is reserved (at {where})")
            out[k] = _encode(v, arrays, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":
            raise TypeError(f"checkpoint state: numpy dtype {obj.dtype} at {where} is not supported")
        ref = {"__array__": len(arrays), "kind": "numpy", "dtype": str(obj.dtype)}
        arrays.append((np.ascontiguousarray(obj), ref))
        return ref
    if hasattr(obj, "detach") and hasattr(obj, "dtype"):  # a torch tensor
        import torch

        t = obj.detach().cpu().contiguous()
        dtype = str(t.dtype).replace("torch.", "")
        if t.dtype == torch.bfloat16:
            data = t.view(torch.int16).numpy()
        else:
            try:
                data = t.numpy()
            except TypeError as exc:
                raise TypeError(f"checkpoint state: tensor dtype {t.dtype} at {where} is not supported") from exc
        ref = {"__array__": len(arrays), "kind": "torch", "dtype": dtype}
        arrays.append((np.ascontiguousarray(data), ref))
        return ref
    raise TypeError(f"checkpoint state: cannot store {type(obj).__name__} at {where}")


def _decode(obj: Any, arrays: Dict[int, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if "__array__" in obj:
            data = arrays[int(obj["__array__"])]
            if obj["kind"] == "numpy":
                return data
            import torch

            if obj["dtype"] == "bfloat16":
                return torch.from_numpy(data).view(torch.bfloat16)
            return torch.from_numpy(data)
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def _digest(structure: str, arrays: List[np.ndarray]) -> str:
    h = hashlib.sha256(structure.encode())
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(directory: Union[str, Path], step: int, state: Any, keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint of ``step`` in ``directory``; keep the newest ``keep`` (0: keep all).

    Returns the checkpoint's path. Replaces an existing checkpoint of the same step.
    """
    if not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: List[Tuple[np.ndarray, Dict[str, Any]]] = []
    structure = json.dumps(_encode(state, arrays, "state"), allow_nan=True, sort_keys=True)
    final = _checkpoint_path(directory, int(step))
    with atomic_path(final) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["step"] = np.int64(step)
        f.attrs["structure"] = structure
        f.attrs["sha256"] = _digest(structure, [a for a, _ in arrays])
        g = f.create_group("arrays")
        for i, (a, _) in enumerate(arrays):
            g.create_dataset(str(i), data=a, track_times=False)
    if keep > 0:
        for _, old in list_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    return final


def load_checkpoint(path: Union[str, Path]) -> Checkpoint:
    """Read one checkpoint file, verifying its hash. Raises ValueError if it is not a complete checkpoint."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{path}: not a synthcore checkpoint")
            structure = str(f.attrs["structure"])
            step = int(f.attrs["step"])
            want = str(f.attrs["sha256"])
            g = f["arrays"]
            arrays = {int(k): g[k][()] for k in g}
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: unreadable checkpoint ({exc})") from None
    ordered = [np.asarray(arrays[i]) for i in range(len(arrays))]
    if _digest(structure, ordered) != want:
        raise ValueError(f"{path}: checkpoint content does not match its hash (damaged file)")
    return Checkpoint(step=step, state=_decode(json.loads(structure), dict(enumerate(ordered))), path=path)


def list_checkpoints(directory: Union[str, Path]) -> List[Tuple[int, Path]]:
    """``(step, path)`` of the checkpoint files in ``directory``, oldest first (by step, not by file time)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(directory: Union[str, Path]) -> Optional[Checkpoint]:
    """The newest checkpoint in ``directory`` that reads back whole, or None if there is none.

    Newest means the highest step. Files that fail to load are skipped with a warning.
    """
    for _, path in reversed(list_checkpoints(directory)):
        try:
            return load_checkpoint(path)
        except ValueError as exc:
            warnings.warn(f"skipping a damaged checkpoint: {exc}", RuntimeWarning, stacklevel=2)
    return None
