"""Read official StyleGAN2-ADA / StyleGAN3 network snapshots (``.pkl``) without executing anything in them.

An official snapshot is a pickle of a dict (``G``, ``D``, ``G_ema``, ``augment_pipe``, ``training_set_kwargs``).
Each network is a *persistence record*: the pickle calls ``torch_utils.persistence._reconstruct_persistent_obj``
with a dict holding the class name, the full source text of the module that defines the class, and the
module's ``__dict__`` (parameters, buffers, child records, constructor arguments, plain attributes). The
official loader executes that source; we never do. :class:`SnapshotUnpickler` resolves every global the file
names through a fixed table of inert stand-ins (see ``_ALLOWED``): the record hook becomes
:class:`PersistentRecord`, tensors are decoded from their legacy storage bytes by our own parser, numpy scalars
are decoded from their raw bytes. Any other global (``os.system``, ``builtins.eval``, ...) is refused with an
error naming it. Format: ``../shared/testdata/stylegan2/README.md`` section 6.
"""

import _compat_pickle
import collections
import io
import math
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from synthcore.nets.model_files import ModelFileError

__all__ = [
    "PersistentRecord",
    "SnapshotError",
    "UnsafePickleError",
    "read_snapshot",
    "loads_snapshot",
]


class SnapshotError(ModelFileError):
    """The snapshot cannot be read: truncated, corrupt, or not an official network pickle."""


class UnsafePickleError(SnapshotError):
    """The pickle names a global that is not on the allow-list (it would run code if loaded normally)."""


# --- persistence records --------------------------------------------------------------------------------------

PERSISTENCE_VERSION = 6  # the only version official loaders accept


@dataclass
class PersistentRecord:
    """One network module as stored in a snapshot: its class name and ``__dict__``, inert.

    ``module_src`` (the stored source text) is not kept; only its length is recorded, so a record holds data
    and nothing that could be run by mistake.
    """

    class_name: str
    state: Dict[str, Any]
    module_src_chars: int = 0
    _path: str = field(default="", repr=False)

    @property
    def init_args(self) -> Tuple[Any, ...]:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> Dict[str, Any]:
        return plain(self.state.get("_init_kwargs", {}))

    @property
    def children(self) -> Dict[str, Optional["PersistentRecord"]]:
        mods = self.state.get("_modules") or {}
        return dict(mods)

    def tensors(self) -> Dict[str, Optional[torch.Tensor]]:
        """Parameters and buffers by name (a frozen Conv2dLayer keeps its weights as buffers, so both count)."""
        out: Dict[str, Optional[torch.Tensor]] = {}
        for key in ("_parameters", "_buffers"):
            out.update(dict(self.state.get(key) or {}))
        return out

    def attributes(self) -> Dict[str, Any]:
        """Plain attributes: the state without torch's internal bookkeeping."""
        return {k: v for k, v in self.state.items() if not k.startswith("_") and k != "training"}

    def named_records(self, prefix: str = "") -> List[Tuple[str, "PersistentRecord"]]:
        """This record and every descendant, as (dotted path, record), depth first like ``named_modules``."""
        out = [(prefix, self)]
        for name, child in self.children.items():
            if isinstance(child, PersistentRecord):
                out += child.named_records(f"{prefix}.{name}" if prefix else name)
        return out


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: keeps the data, runs nothing."""
    if not isinstance(meta, dict):
        raise SnapshotError(f"persistence record: expected a dict, got {type(meta).__name__}")
    if meta.get("type") != "class":
        raise SnapshotError(f"persistence record of type {meta.get('type')!r}; only 'class' records are known")
    if meta.get("version") != PERSISTENCE_VERSION:
        raise SnapshotError(
            f"persistence record version {meta.get('version')!r}; only version {PERSISTENCE_VERSION} is supported"
        )
    name, state, src = meta.get("class_name"), meta.get("state"), meta.get("module_src")
    if not isinstance(name, str) or not isinstance(state, dict):
        raise SnapshotError("persistence record without a class_name string and a state dict")
    return PersistentRecord(name, state, len(src) if isinstance(src, str) else 0)


# --- tensors: legacy torch.save storage streams -----------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.<X>Storage`` inside a storage stream: only its dtype matters."""

    name: str
    dtype: torch.dtype


class _StorageStreamUnpickler(pickle.Unpickler):
    """Unpickler for the small pickles inside one legacy storage stream: plain data, storage types, and the
    persistent id that names the storage."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise UnsafePickleError(f"tensor storage stream refers to {module}.{name}, which is not a storage type")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise SnapshotError(f"tensor storage stream: unexpected persistent id {str(pid)[:80]}")
        _, stype, key, location, numel = pid[:5]
        if not isinstance(stype, _StorageType) or not isinstance(key, str) or not isinstance(location, str):
            raise SnapshotError("tensor storage stream: malformed storage record")
        if not isinstance(numel, int) or numel < 0:
            raise SnapshotError(f"tensor storage stream: bad element count {numel!r}")
        return ("storage", stype, key, numel)


def _read_pickle(f: io.BytesIO, what: str) -> Any:
    try:
        return _StorageStreamUnpickler(f).load()
    except (SnapshotError, UnsafePickleError):
        raise
    except Exception as exc:  # noqa: BLE001 - truncated bytes raise EOFError, UnpicklingError, ...
        raise SnapshotError(f"tensor storage stream: cannot read the {what} ({type(exc).__name__}: {exc})") from None


def _load_from_bytes(data: Any) -> torch.Tensor:
    """Stand-in for ``torch.storage._load_from_bytes``: parse a legacy (non-zip) ``torch.save`` stream of a single
    storage and return its elements as a 1-D tensor."""
    if not isinstance(data, (bytes, bytearray)):
        raise SnapshotError(f"tensor storage: expected bytes, got {type(data).__name__}")
    f = io.BytesIO(data)
    if _read_pickle(f, "magic number") != LEGACY_MAGIC:
        raise SnapshotError("tensor storage: not a legacy torch.save stream (bad magic number)")
    version = _read_pickle(f, "format version")
    if version != LEGACY_PROTOCOL:
        raise SnapshotError(f"tensor storage: legacy format version {version!r}, expected {LEGACY_PROTOCOL}")
    info = _read_pickle(f, "system info")
    little = info.get("little_endian", True) if isinstance(info, dict) else True
    obj = _read_pickle(f, "storage record")
    keys = _read_pickle(f, "storage keys")
    if not (isinstance(obj, tuple) and obj[:1] == ("storage",)):
        raise SnapshotError("tensor storage: the stream does not hold a storage")
    _, stype, key, numel = obj
    if not isinstance(keys, list) or keys != [key]:
        raise SnapshotError(f"tensor storage: expected the single key {key!r}, found {str(keys)[:80]}")
    head = f.read(8)
    if len(head) != 8:
        raise SnapshotError("tensor storage: data truncated before the element count")
    (count,) = struct.unpack("<q", head)
    if count != numel:
        raise SnapshotError(f"tensor storage: {count} elements stored but {numel} announced")
    itemsize = torch.empty((), dtype=stype.dtype).element_size()
    raw = f.read(count * itemsize)
    if len(raw) != count * itemsize:
        raise SnapshotError(f"tensor storage: data truncated ({len(raw)} of {count * itemsize} bytes)")
    if count == 0:
        return torch.empty(0, dtype=stype.dtype)
    arr = torch.frombuffer(bytearray(raw), dtype=stype.dtype)
    if not little and itemsize > 1:
        arr = torch.from_numpy(arr.numpy().byteswap().copy())
    return arr


def _check_storage(storage: Any, what: str) -> torch.Tensor:
    if not (isinstance(storage, torch.Tensor) and storage.ndim == 1):
        raise SnapshotError(f"{what}: expected a storage, got {type(storage).__name__}")
    return storage


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a bounds-checked strided view of a decoded storage."""
    storage = _check_storage(storage, "tensor")
    size, stride = tuple(size), tuple(stride)
    ints = (offset,) + size + stride
    if len(size) != len(stride) or not all(isinstance(v, int) and v >= 0 for v in ints):
        raise SnapshotError(f"tensor: bad geometry offset={offset!r} size={size!r} stride={stride!r}")
    if all(s > 0 for s in size):
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= storage.numel():
            raise SnapshotError(
                f"tensor of size {list(size)} (offset {offset}, stride {list(stride)}) lies outside its storage "
                f"of {storage.numel()} elements"
            )
    return storage.as_strided(size, stride, offset)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None, state: Any = None) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter(_with_state)``: the plain tensor (modules re-wrap it)."""
    if not isinstance(data, torch.Tensor):
        raise SnapshotError(f"parameter: expected a tensor, got {type(data).__name__}")
    return data


# --- numpy scalars and small arrays ------------------------------------------------------------------------------

_NUMPY_KINDS = set("biuf")  # bool, signed, unsigned, float: plain numbers only, never object dtypes


class _DType:
    """Stand-in for ``numpy.dtype`` as pickled (``dtype('f8', False, True)`` then BUILD with its byte order)."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str):
            raise SnapshotError(f"numpy dtype: expected a type code, got {type(spec).__name__}")
        try:
            dt = np.dtype(spec)
        except TypeError:
            raise SnapshotError(f"numpy dtype {spec!r} is not a known type code") from None
        if dt.kind not in _NUMPY_KINDS:
            raise UnsafePickleError(f"numpy dtype {spec!r} (kind {dt.kind!r}) is not a plain number type")
        self.dtype = dt

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state is (version, byte order, ...); the byte order is all that matters for numbers.
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "=", "|"):
            self.dtype = self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for ``numpy.core.multiarray.scalar``: decode one number from its raw bytes."""
    if not isinstance(dtype, _DType) or not isinstance(data, (bytes, bytearray)):
        raise SnapshotError("numpy scalar: expected a dtype and raw bytes")
    if len(data) != dtype.dtype.itemsize:
        raise SnapshotError(f"numpy scalar: {len(data)} bytes for dtype {dtype.dtype}")
    return np.frombuffer(bytes(data), dtype=dtype.dtype)[0].item()


class _NDArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct(ndarray, ...)`` + BUILD (small attribute arrays in
    StyleGAN3 pickles). ``value`` holds the decoded array; object arrays are refused."""

    def __init__(self) -> None:
        self.value: Optional[np.ndarray] = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise SnapshotError("numpy array: malformed state")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType) or not isinstance(raw, (bytes, bytearray)):
            raise SnapshotError("numpy array: expected a plain dtype and raw bytes")
        shape = tuple(int(s) for s in shape)
        count = math.prod(shape)
        if len(raw) != count * dtype.dtype.itemsize:
            raise SnapshotError(f"numpy array: {len(raw)} bytes for shape {list(shape)} of {dtype.dtype}")
        arr = np.frombuffer(bytes(raw), dtype=dtype.dtype)
        self.value = arr.reshape(shape, order="F" if fortran else "C").copy()


def _numpy_reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> _NDArray:
    if cls is not _NDArray:
        raise UnsafePickleError("numpy _reconstruct may only build an ndarray")
    return _NDArray()


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access): read as a plain dict."""

    def __setstate__(self, state: Any) -> None:  # the instance dict of an EasyDict is empty
        pass


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to carry bytes as latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is only allowed for latin-1 text (protocol-2 bytes)")
    return text.encode("latin-1")


def _ordered_dict(*args: Any) -> "collections.OrderedDict[Any, Any]":
    if args:
        raise SnapshotError("OrderedDict with constructor arguments in a snapshot")
    return collections.OrderedDict()


def _empty_set(*args: Any) -> set:
    # Protocol <= 3 pickles a set as REDUCE(builtins.set, ([items],)); only hashable plain items can occur.
    if len(args) > 1 or (args and not isinstance(args[0], list)):
        raise SnapshotError("builtins.set called with unexpected arguments")
    return set(args[0]) if args else set()


# Every global an official snapshot may name, and what we use in its place. Nothing here executes stored code.
_ALLOWED: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): _ordered_dict,
    ("builtins", "set"): _empty_set,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _DType,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): _NDArray,
    ("_codecs", "encode"): _codecs_encode,
}


class SnapshotUnpickler(pickle.Unpickler):
    """A pickle reader that resolves globals only through ``_ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 writes Python 2 names (__builtin__.set, ...); translate them as pickle itself does. The
        # translated name must still be on the allow-list.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: it is not part of an official network snapshot and "
                "loading it could run code from the file"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise SnapshotError("unexpected persistent id in a network snapshot (is this a torch.save zip file?)")


# --- clean-up after unpickling -----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Recursively turn the stand-ins into plain Python data: EasyDict/OrderedDict -> dict, arrays -> ndarray."""
    if isinstance(value, _NDArray):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def _finish(obj: Any) -> Any:
    """Replace stand-ins inside records' attribute values (records and tensors are kept as they are)."""
    if isinstance(obj, PersistentRecord):
        for key, value in list(obj.state.items()):
            if key in ("_parameters", "_buffers", "_modules"):
                obj.state[key] = {k: _finish(v) for k, v in dict(value or {}).items()}
            else:
                obj.state[key] = _finish(value)
        return obj
    if isinstance(obj, torch.Tensor) or obj is None:
        return obj
    if isinstance(obj, _NDArray):
        return obj.value
    if isinstance(obj, dict):
        return {k: _finish(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_finish(v) for v in obj)
    return obj


def loads_snapshot(data: bytes, source: str = "snapshot") -> Dict[str, Any]:
    """Unpickle snapshot bytes with the allow-list. Returns the top-level dict; networks are PersistentRecords."""
    if not data:
        raise SnapshotError(f"{source}: empty file")
    if data[:2] == b"PK":
        raise SnapshotError(f"{source}: this is a torch.save zip archive, not a network pickle")
    if data[0] != 0x80:
        raise SnapshotError(f"{source}: not a pickle (first byte 0x{data[0]:02x}); truncated or corrupt?")
    try:
        obj = SnapshotUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except SnapshotError as exc:
        raise SnapshotError(f"{source}: {exc}") from None
    except RecursionError:
        raise SnapshotError(f"{source}: nesting too deep; corrupt file?") from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes make pickle raise many types
        raise SnapshotError(
            f"{source}: not a readable network pickle (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(obj, dict):
        if isinstance(obj, tuple) and len(obj) == 3:
            raise SnapshotError(f"{source}: legacy TensorFlow network pickles are not supported")
        raise SnapshotError(f"{source}: expected a dict of networks, found {type(obj).__name__}")
    return {k: _finish(v) for k, v in obj.items()}


def read_snapshot(path: Union[str, Path]) -> Dict[str, Any]:
    """Read an official snapshot file safely (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"network file not found: {path}")
    return loads_snapshot(path.read_bytes(), str(path))
