"""Read model files without executing anything stored in them.

* ``.pth`` / ``.pt`` / ``.ckpt``: ``torch.load(weights_only=True)``. PyTorch Lightning checkpoints also pickle
  a few bookkeeping objects (hyper-parameter dicts, callback class names, numpy scalars); for those, and only
  those, a named allowlist maps each global to an inert stand-in. Anything else is refused with the list of
  globals the file wanted.
* ``.safetensors``: parsed here (a JSON header and raw little-endian buffers), no extra dependency.
"""

import argparse
import collections
import json
import math
import pickle
import struct
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Union

import numpy as np
import torch


class ModelFileError(ValueError):
    """The file cannot be read safely: unreadable, truncated, or it asks to run code."""


class LightningClassName:
    """Inert stand-in for Lightning callback classes, which old checkpoints use as dict keys."""


def _numpy_scalar() -> Callable:
    core = getattr(np, "_core", None) or np.core
    return core.multiarray.scalar


def _safe_globals() -> Dict[str, Any]:
    """Global name -> object allowed in its place. Each entry only builds plain data."""
    attribute_dict = collections.OrderedDict  # Lightning's AttributeDict is a dict with attribute access
    table: Dict[str, Any] = {
        "pytorch_lightning.utilities.parsing.AttributeDict": attribute_dict,
        "lightning.pytorch.utilities.parsing.AttributeDict": attribute_dict,
        "lightning_fabric.utilities.data.AttributeDict": attribute_dict,
        "lightning.fabric.utilities.data.AttributeDict": attribute_dict,
        "argparse.Namespace": argparse.Namespace,
        "numpy.core.multiarray.scalar": _numpy_scalar(),
        "numpy._core.multiarray.scalar": _numpy_scalar(),
        "numpy.dtype": np.dtype,
    }
    for callback in ("model_checkpoint.ModelCheckpoint", "early_stopping.EarlyStopping",
                     "lr_monitor.LearningRateMonitor", "progress.TQDMProgressBar"):  # fmt: skip
        for root in ("pytorch_lightning", "lightning.pytorch"):
            table[f"{root}.callbacks.{callback}"] = LightningClassName
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in ("Float64DType", "Float32DType", "Int64DType", "Int32DType", "BoolDType"):
            if hasattr(dtypes, name):
                table[f"numpy.dtypes.{name}"] = getattr(dtypes, name)
    return table


SAFE_GLOBALS = _safe_globals()


def _unreadable(path: Path, exc: BaseException) -> ModelFileError:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return ModelFileError(f"{path}: not a readable PyTorch file (truncated or corrupt?): {first}")


def _load(path: Path, allowed: List[Any]) -> Any:
    if not allowed:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    with torch.serialization.safe_globals(allowed):
        return torch.load(str(path), map_location="cpu", weights_only=True)


def load_torch_file(path: Union[str, Path]) -> Any:
    """``torch.load`` with ``weights_only=True``, plus the Lightning allowlist only when the file needs it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    # A damaged file can make torch raise nearly anything (KeyError, RuntimeError, EOFError, ...), hence the
    # broad handlers: every failure becomes one error that names the file.
    try:
        return _load(path, [])
    except pickle.UnpicklingError as exc:
        first_error: BaseException = exc
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, exc) from None
    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise ModelFileError(
            f"{path}: torch {torch.__version__} cannot read this file with weights_only=True; if it is a checkpoint "
            "that pickles more than tensors (e.g. a Lightning .ckpt), reading it safely needs torch >= 2.5"
        )
    try:
        needed = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001
        raise _unreadable(path, first_error) from None
    refused = [g for g in needed if g not in SAFE_GLOBALS]
    if refused:
        raise ModelFileError(
            f"{path}: refusing to unpickle {', '.join(refused)}: loading it could run code from the file. "
            "Re-save the weights as a plain state dict (torch.save(model.state_dict(), ...))"
        )
    if not needed:
        raise _unreadable(path, first_error)
    try:
        return _load(path, [(SAFE_GLOBALS[g], g) for g in needed])
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, exc) from None


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def _safetensors_entry(path: Path, name: str, info: Any) -> Tuple[torch.dtype, List[int], int, int]:
    """A header entry's dtype, shape and data offsets, checked against what the format allows."""
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: safetensors entry {name!r} is a JSON {type(info).__name__}, not an object")
    code = info.get("dtype")
    dtype = _SAFETENSORS_DTYPES.get(code) if isinstance(code, str) else None
    if dtype is None:
        raise ModelFileError(f"{path}: tensor {name} has unsupported dtype {code!r}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not _int_list(shape):
        raise ModelFileError(f"{path}: tensor {name} has shape {shape!r}; expected a list of sizes >= 0")
    if not _int_list(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise ModelFileError(f"{path}: tensor {name} has data_offsets {offsets!r}; expected [begin, end]")
    return dtype, shape, offsets[0], offsets[1]


def load_safetensors(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (8-byte header length, JSON header, then the raw buffers)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise ModelFileError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ModelFileError(f"{path}: safetensors header of {n} bytes runs past the end of the file (truncated?)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: bad safetensors header: {str(exc) or 'nested too deeply'}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: bad safetensors header: a JSON {type(header).__name__}, not an object")
    body = memoryview(data)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, begin, end = _safetensors_entry(path, name, info)
        if end > len(body):
            raise ModelFileError(f"{path}: tensor {name} lies past the end of the file (truncated?)")
        count = math.prod(shape)
        if (end - begin) != count * dtype.itemsize:
            raise ModelFileError(f"{path}: tensor {name} has {end - begin} bytes for shape {shape} of {dtype}")
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(shape)
    return out


def read_model_file(path: Union[str, Path]) -> Any:
    """The object stored in a model file, read safely (see the module docstring)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        return load_safetensors(path)
    return load_torch_file(path)
