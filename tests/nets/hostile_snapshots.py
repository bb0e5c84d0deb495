"""Hostile snapshot files for the loader tests: small files built to make a naive reader exhaust time or memory.

``write_snapshot`` pickles a dict the way an official snapshot is written (records through
``torch_utils.persistence._reconstruct_persistent_obj``, tensors as ``_rebuild_tensor_v2`` views of legacy storage
streams), but lets a test give each tensor any storage, offset, size and stride. ``measure_load`` loads a file in a
fresh interpreter and reports the time and peak-memory growth of each load alone. ``opcodes`` assembles pickles
that Python's pickler cannot write (a 10,000-level list, a tuple doubled 60 times as a dict key).
"""

import collections
import io
import json
import os
import pickle
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from synthcore.nets.persistence import PersistentRecord

_PERSISTENCE = "torch_utils.persistence"


def _reconstruct_persistent_obj(meta: Any) -> Any:  # only its name is pickled
    raise AssertionError("never called")


_reconstruct_persistent_obj.__module__ = _PERSISTENCE


class View:
    """A tensor as stored: ``storage`` (1-D) viewed with ``size``, ``stride`` and ``offset``, unchecked."""

    def __init__(self, storage: "Storage", size: Tuple[int, ...], stride: Tuple[int, ...], offset: int = 0) -> None:
        self.storage, self.size, self.stride, self.offset = storage, tuple(size), tuple(stride), offset


class Storage:
    """A legacy ``torch.save`` storage stream, the form official snapshots keep tensor bytes in."""

    def __init__(self, values: torch.Tensor) -> None:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage is deprecated, but it is what old files hold
            torch.save(values.contiguous().storage(), buf, _use_new_zipfile_serialization=False)
        self.stream = buf.getvalue()


class WithState:
    """``obj`` pickled as usual, then given ``state`` by a BUILD opcode."""

    def __init__(self, obj: Any, state: Any) -> None:
        self.obj, self.state = obj, state


class _Writer(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, WithState):
            return (*self.reducer_override(obj.obj)[:2], obj.state)
        if isinstance(obj, PersistentRecord):
            meta = {"type": "class", "version": 6, "class_name": obj.class_name, "state": obj.state,
                    "module_src": "# omitted\n"}  # fmt: skip
            return _reconstruct_persistent_obj, (meta,)
        if isinstance(obj, View):
            return torch._utils._rebuild_tensor_v2, (obj.storage, obj.offset, obj.size, obj.stride, False,
                                                     collections.OrderedDict())  # fmt: skip
        if isinstance(obj, Storage):
            return torch.storage._load_from_bytes, (obj.stream,)
        if isinstance(obj, torch.Tensor):
            return self.reducer_override(View(Storage(obj.reshape(-1)), obj.shape, _contiguous_strides(obj.shape)))
        return NotImplemented


def _contiguous_strides(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def write_snapshot(path: Path, data: Dict[str, Any], protocol: int = 4) -> int:
    """Pickle ``data`` as an official snapshot would be written; returns the file size."""
    module = types.ModuleType(_PERSISTENCE)
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("torch_utils", _PERSISTENCE)}
    sys.modules["torch_utils"] = types.ModuleType("torch_utils")
    sys.modules[_PERSISTENCE] = module
    try:
        buf = io.BytesIO()
        _Writer(buf, protocol=protocol).dump(data)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    path.write_bytes(buf.getvalue())
    return path.stat().st_size


def record_tree(module: nn.Module, tensor: Any, init_kwargs: Optional[Dict[str, Any]] = None) -> PersistentRecord:
    """The persistence record of a synthcore module (built on any device): class names, structural attributes and
    tensor names as an official snapshot has them; ``tensor(name, t)`` gives what to store for each tensor."""
    state: Dict[str, Any] = {"training": False}
    for name in getattr(module, "STRUCT_ATTRS", ()) + getattr(module, "VALUE_ATTRS", ()):
        if hasattr(module, name):
            state[name] = getattr(module, name)
    state["_parameters"] = collections.OrderedDict((k, tensor(k, v)) for k, v in module._parameters.items())
    state["_buffers"] = collections.OrderedDict((k, tensor(k, v)) for k, v in module._buffers.items())
    state["_modules"] = collections.OrderedDict((k, record_tree(m, tensor)) for k, m in module._modules.items())
    if init_kwargs is not None:
        state["_init_args"], state["_init_kwargs"] = (), init_kwargs
    return PersistentRecord(type(module).__name__, state)


_MEASURE = """
import json, resource, sys, time
from synthcore.nets.generator_files import load_generator
from synthcore.nets.persistence import read_snapshot
target = {"generator": load_generator, "snapshot": read_snapshot}[sys.argv[1]]
out = []
for path in sys.argv[2:]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        target(path)
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    out.append({"seconds": seconds, "cpu_seconds": cpu_seconds, "grown_mb": grown / 1024, "error": error})
print(json.dumps(out))
"""


def measure_loads(paths: List[Path], how: str = "generator", timeout: float = 120.0) -> List[Dict[str, Any]]:
    """Load each of ``paths`` (``load_generator`` or ``read_snapshot``), one after the other in one fresh
    interpreter. Per file: ``seconds`` (wall clock) and ``cpu_seconds`` of the load, ``grown_mb`` the peak resident
    memory it added (from ``getrusage``: peaks only grow, so each load's growth is measured above the peak before
    it), and ``error`` (type and message) or None."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, how, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": f"{root / 'python'}{os.pathsep}{root}"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def opcodes(*parts: bytes) -> bytes:
    """A protocol-4 pickle from raw opcode bytes (``pickle.EMPTY_LIST``, ...), ending with STOP."""
    return pickle.PROTO + b"\x04" + b"".join(parts) + pickle.STOP


def text(value: str) -> bytes:
    """The opcode pushing a short string."""
    raw = value.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw
