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

Work and memory are bounded by the file's real content, so a tiny hostile file cannot exhaust the machine:

* tensors: every view must be free of self-overlap (no stride 0 over a dimension longer than one, no strides
  that revisit an element), and the views of one storage together may not hold more elements than it has, so
  the tensors a file yields never hold more elements than the file stores;
* hashing: dictionary keys and set items must be plain atoms (text, bytes, small integers, floats, None), so
  building a dict can neither walk a deep shared structure nor be flooded with colliding hashes;
* shape of the data: after unpickling, one pass that visits each shared container once measures the object
  graph as later code would see it (shared containers counted every time they are referenced): more than
  ``MAX_DEPTH`` levels, more than ``MAX_EXPANDED`` elements, a container that holds itself, or tensors referenced
  so often that they would expand to over ``MAX_TENSOR_EXPANSION`` times the stored elements are refused, and
  the clean-up that follows converts each shared container once.

Every refusal is a :class:`SnapshotError` naming the file and the reason.
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
    "check_graph",
    "SnapshotError",
    "UnsafePickleError",
    "read_snapshot",
    "loads_snapshot",
]


class SnapshotError(ModelFileError):
    """The snapshot cannot be read: truncated, corrupt, or not an official network pickle."""


class UnsafePickleError(SnapshotError):
    """The pickle names a global that is not on the allow-list (it would run code if loaded normally)."""


# Limits on the unpickled data (see the module docstring). Official snapshots have 16 levels and under 10k
# elements (a 1024-pixel snapshot has a few times more), so these leave wide room for real files while
# keeping every later walk over the data (conversion, comparison, error messages) small.
MAX_DEPTH = 64
MAX_EXPANDED = 1_000_000
MAX_TENSOR_EXPANSION = 4  # elements of all tensor references / stored elements (official files: 1)
_MAX_DIMS = 64  # torch's own limit on tensor dimensions
_MAX_HASHED_INT = (1 << 61) - 2  # ints below the hash modulus hash to themselves: no collisions to flood a dict

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


def _hash_safe(value: Any) -> bool:
    """Whether ``value`` may be a dict key or set item: an atom whose hash is cheap and hard to collide."""
    if type(value) is int:
        return -_MAX_HASHED_INT <= value <= _MAX_HASHED_INT
    return value is None or type(value) in (str, bytes, bool, float)


def _check_keys(items: Any, what: str) -> None:
    for item in items:
        if not _hash_safe(item):
            raise SnapshotError(f"{what} is {_brief(item)}; network snapshots only use text, numbers and None there")


class _GuardedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """pickle's opcode interpreter with the opcodes that hash or set attributes checked first.

    The pure-Python interpreter is used (it is fast enough: a snapshot has a few ten thousand opcodes, the tensor
    bytes are single opcodes) because only it lets an opcode be checked before it runs: the C one would hash
    a hostile key before anything could look at it.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    # The interpreter keeps the items above the last MARK as ``self.stack`` and the stack below it (whose top is
    # the container being filled) as ``self.metastack[-1]``.
    def _marked_target(self) -> Any:
        return self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None

    def _setitem(self) -> None:
        if len(self.stack) < 3 or not isinstance(self.stack[-3], dict):
            raise SnapshotError("a SETITEM opcode outside a dictionary")
        _check_keys(self.stack[-2:-1], "a dictionary key")
        pickle._Unpickler.load_setitem(self)  # type: ignore[attr-defined]

    def _setitems(self) -> None:
        if not isinstance(self._marked_target(), dict):
            raise SnapshotError("a SETITEMS opcode outside a dictionary")
        _check_keys(self.stack[0::2], "a dictionary key")
        pickle._Unpickler.load_setitems(self)  # type: ignore[attr-defined]

    def _dict(self) -> None:
        _check_keys(self.stack[0::2], "a dictionary key")
        pickle._Unpickler.load_dict(self)  # type: ignore[attr-defined]

    def _additems(self) -> None:
        if type(self._marked_target()) is not set:
            raise SnapshotError("an ADDITEMS opcode outside a set")
        _check_keys(self.stack, "a set item")
        pickle._Unpickler.load_additems(self)  # type: ignore[attr-defined]

    def _frozenset(self) -> None:
        _check_keys(self.stack, "a set item")
        pickle._Unpickler.load_frozenset(self)  # type: ignore[attr-defined]

    def _build(self) -> None:
        # BUILD sets an object's state; only the stand-ins that define their own (checked) __setstate__ may get it.
        target = self.stack[-2] if len(self.stack) >= 2 else None
        if not isinstance(target, _STATEFUL):
            raise SnapshotError(f"a BUILD opcode sets the state of {_brief(target)}, which a snapshot never does")
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    def _append(self) -> None:
        if len(self.stack) < 2 or type(self.stack[-2]) is not list:
            raise SnapshotError("an APPEND opcode outside a list")
        pickle._Unpickler.load_append(self)  # type: ignore[attr-defined]

    def _appends(self) -> None:
        if type(self._marked_target()) is not list:
            raise SnapshotError("an APPENDS opcode outside a list")
        pickle._Unpickler.load_appends(self)  # type: ignore[attr-defined]

    for _op, _fn in (
        (pickle.SETITEM, _setitem),
        (pickle.SETITEMS, _setitems),
        (pickle.DICT, _dict),
        (pickle.ADDITEMS, _additems),
        (pickle.FROZENSET, _frozenset),
        (pickle.BUILD, _build),
        (pickle.APPEND, _append),
        (pickle.APPENDS, _appends),
    ):
        dispatch[_op[0]] = _fn
    del _op, _fn


class _StorageStreamUnpickler(_GuardedUnpickler):
    """Unpickler for the small pickles inside one legacy storage stream: plain data, storage types, and the
    persistent id that names the storage."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise UnsafePickleError(f"tensor storage stream refers to {module}.{name}, which is not a storage type")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise SnapshotError(f"tensor storage stream: unexpected persistent id ({_brief(pid)})")
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
    if not (isinstance(obj, tuple) and len(obj) == 4 and obj[0] == "storage"):
        raise SnapshotError("tensor storage: the stream does not hold a storage")
    _, stype, key, numel = obj
    if not (isinstance(keys, list) and len(keys) == 1 and keys[0] == key):
        raise SnapshotError(f"tensor storage: expected the single key {key!r}, found {_brief(keys)}")
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


def _self_overlapping(size: Tuple[int, ...], stride: Tuple[int, ...]) -> bool:
    """Whether a strided view can reach one storage element by two indices (stride 0 over a dimension longer
    than one, or strides that interleave). Dimensions are taken from the smallest stride up: each stride must
    step past everything the smaller dimensions reach."""
    reach = 0  # the largest offset the dimensions taken so far can reach
    for st, sz in sorted((st, sz) for sz, st in zip(size, stride) if sz > 1):
        if st <= reach:
            return True
        reach += (sz - 1) * st
    return False


class _TensorBudget:
    """The views of one storage may together hold no more elements than the storage: what a file yields as
    tensors is then bounded by the bytes it stores (a stride-0 or repeated view cannot multiply them)."""

    def __init__(self) -> None:
        self.used: Dict[int, int] = {}
        self._alive: List[torch.Tensor] = []  # keeps storages alive, so their ids stay unique
        self.stored = 0  # elements of all distinct storages

    def claim(self, storage: torch.Tensor, count: int) -> None:
        key = id(storage)
        if key not in self.used:
            self._alive.append(storage)
            self.used[key] = 0
            self.stored += storage.numel()
        if self.used[key] + count > storage.numel():
            raise SnapshotError(
                f"tensors viewing one storage of {storage.numel()} elements hold {self.used[key] + count} "
                "elements together (overlapping views are not part of a network snapshot)"
            )
        self.used[key] += count

    def rebuild_tensor_v2(self, storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> torch.Tensor:
        """Stand-in for ``torch._utils._rebuild_tensor_v2``: a bounds-checked, non-overlapping strided view of a
        decoded storage."""
        storage = _check_storage(storage, "tensor")
        if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))):
            raise SnapshotError("tensor: size and stride must be tuples")
        size, stride = tuple(size), tuple(stride)
        ints = (offset,) + size + stride
        ok = len(size) == len(stride) <= _MAX_DIMS and all(type(v) is int and 0 <= v < 2**62 for v in ints)
        if not ok:
            raise SnapshotError(
                f"tensor: bad geometry (offset {_brief(offset)}, size {_brief(size)}, stride {_brief(stride)})"
            )
        count = math.prod(size)
        if count:
            last = offset + sum((s - 1) * st for s, st in zip(size, stride))
            if last >= storage.numel():
                raise SnapshotError(
                    f"tensor of size {list(size)} (offset {offset}, stride {list(stride)}) lies outside its storage "
                    f"of {storage.numel()} elements"
                )
            if _self_overlapping(size, stride):
                raise SnapshotError(
                    f"tensor of size {list(size)} with stride {list(stride)} reads its storage elements more than "
                    "once (stride-0 or overlapping views are not part of a network snapshot)"
                )
            self.claim(storage, count)
        return storage.as_strided(size, stride, offset)


def _brief(value: Any) -> str:
    """A short description of untrusted data for an error message (never ``repr`` of a whole structure, which a
    shared nested container can make exponentially long)."""
    if isinstance(value, (str, bytes)):
        return repr(value[:60]) + ("..." if len(value) > 60 else "")
    if isinstance(value, (bool, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:60] + "..."
    try:
        return f"a {type(value).__name__} of {len(value)} items"
    except TypeError:
        return f"a {type(value).__name__}"


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Snapshots create it empty (NEWOBJ) and fill it with SETITEMS, whose keys are checked; items given to the
        # constructor would be hashed unchecked.
        if args or kwargs:
            raise SnapshotError("dnnlib.util.EasyDict called with arguments")
        super().__init__()

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
    if args:
        _check_keys(args[0], "a set item")
    return set(args[0]) if args else set()


# Every global an official snapshot may name, and what we use in its place. Nothing here executes stored code.
_ALLOWED: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
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


_STATEFUL = (_DType, _NDArray, _EasyDict)  # the stand-ins a BUILD opcode may give state to


class SnapshotUnpickler(_GuardedUnpickler):
    """A pickle reader that resolves globals only through ``_ALLOWED``; tensor views are checked against one
    :class:`_TensorBudget` per file."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.tensors = _TensorBudget()

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 writes Python 2 names (__builtin__.set, ...); translate them as pickle itself does. The
        # translated name must still be on the allow-list.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.tensors.rebuild_tensor_v2
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


def _children(obj: Any) -> Optional[Tuple[Any, ...]]:
    """The objects a container holds (dict keys are atoms, checked while unpickling), or None for a leaf."""
    if isinstance(obj, PersistentRecord):
        return (obj.state,)
    if isinstance(obj, dict):
        return tuple(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return tuple(obj)
    return None


def check_graph(root: Any, stored_elements: int) -> None:
    """Refuse unpickled data that later code could not walk in bounded time and memory.

    One pass visits each container once (shared containers are looked up, not walked again) and computes, for
    each, what a walk that does *not* share would see: its depth, its number of elements, and the elements of
    the tensors it references. More than ``MAX_DEPTH`` levels, ``MAX_EXPANDED`` elements or
    ``MAX_TENSOR_EXPANSION`` times ``stored_elements`` tensor elements, or a container inside itself, raise
    :class:`SnapshotError`. Work: linear in the number of distinct containers and their items.
    """
    done: Dict[int, Tuple[int, int, int]] = {}  # id -> (depth, elements, tensor elements) as a tree
    on_path: set = set()
    tensor_cap = MAX_TENSOR_EXPANSION * stored_elements
    stack: List[List[Any]] = []  # frames [container, its children, next child]

    def leaf(obj: Any) -> Tuple[int, int, int]:
        return (0, 1, obj.numel() if isinstance(obj, torch.Tensor) else 0)

    def enter(obj: Any) -> None:
        if id(obj) in on_path:
            raise SnapshotError(f"a {type(obj).__name__} contains itself; snapshots hold no cycles")
        if len(stack) >= MAX_DEPTH:  # already deeper than allowed: no need to walk further down
            raise SnapshotError(f"data nested more than {MAX_DEPTH} levels deep; network files have about 16")
        on_path.add(id(obj))
        stack.append([obj, _children(obj), 0])

    if _children(root) is None:
        return
    enter(root)
    while stack:
        frame = stack[-1]
        obj, kids, i = frame
        if i < len(kids):
            frame[2] = i + 1
            kid = kids[i]
            if id(kid) not in done and _children(kid) is not None:
                enter(kid)
            continue
        depth, count, tensor = 0, 1, 0
        for kid in kids:
            d, c, t = done.get(id(kid)) or leaf(kid)
            depth, count, tensor = max(depth, d + 1), count + c, tensor + t
        if depth > MAX_DEPTH:
            raise SnapshotError(f"data nested more than {MAX_DEPTH} levels deep; network files have about 16")
        if count > MAX_EXPANDED:
            raise SnapshotError(
                f"shared containers expand to over {MAX_EXPANDED:,} elements (the file repeats references to "
                "the same lists or dicts); network files have a few ten thousand"
            )
        if tensor > tensor_cap:
            raise SnapshotError(
                f"tensors are referenced so often that they expand to {tensor:,} elements, over "
                f"{MAX_TENSOR_EXPANSION}x the {stored_elements:,} the file stores"
            )
        done[id(obj)] = (depth, count, tensor)
        on_path.discard(id(obj))
        stack.pop()


def _convert(obj: Any, memo: Dict[int, Any], record_lists: bool) -> Any:
    """``obj`` with stand-ins replaced (arrays -> ndarray, dict subclasses -> dict), each shared container
    converted once (``memo``), so the result shares where the file shared. Depth is bounded by
    :func:`check_graph`. ``record_lists``: also finish records (their tensor/child tables) in place."""
    if isinstance(obj, _NDArray):
        return obj.value
    if isinstance(obj, torch.Tensor) or _children(obj) is None:
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, PersistentRecord):
        memo[key] = obj
        if record_lists:
            _finish_record(obj, memo)
        return obj
    if isinstance(obj, dict):
        new_dict: Dict[Any, Any] = {}
        memo[key] = new_dict
        new_dict.update((k, _convert(v, memo, record_lists)) for k, v in obj.items())
        return new_dict
    if isinstance(obj, list):
        new_list: List[Any] = []
        memo[key] = new_list
        new_list.extend(_convert(v, memo, record_lists) for v in obj)
        return new_list
    if isinstance(obj, (set, frozenset)):
        memo[key] = obj  # items are atoms
        return obj
    memo[key] = tuple(_convert(v, memo, record_lists) for v in obj)  # a tuple cannot hold itself: checked before
    return memo[key]


def _finish_record(rec: PersistentRecord, memo: Dict[int, Any]) -> None:
    for key, value in list(rec.state.items()):
        if key in ("_parameters", "_buffers", "_modules"):
            table = _convert(value or {}, memo, True)
            if not isinstance(table, dict):
                raise SnapshotError(f"{rec.class_name} record: {key} is {_brief(table)}, expected a dict")
            bad = [k for k in table if not isinstance(k, str)]
            if bad:
                raise SnapshotError(f"{rec.class_name} record: {key} has a name that is not text ({_brief(bad[0])})")
            rec.state[key] = dict(table)
        else:
            rec.state[key] = _convert(value, memo, True)


def plain(value: Any) -> Any:
    """Turn the stand-ins into plain Python data: EasyDict/OrderedDict -> dict, arrays -> ndarray (each shared
    container once)."""
    return _convert(value, {}, False)


def _finish(obj: Any, memo: Dict[int, Any]) -> Any:
    """Replace stand-ins inside records' attribute values (records and tensors are kept as they are)."""
    return _convert(obj, memo, True)


def loads_snapshot(data: bytes, source: str = "snapshot") -> Dict[str, Any]:
    """Unpickle snapshot bytes with the allow-list. Returns the top-level dict; networks are PersistentRecords."""
    if not data:
        raise SnapshotError(f"{source}: empty file")
    if data[:2] == b"PK":
        raise SnapshotError(f"{source}: this is a torch.save zip archive, not a network pickle")
    if data[0] != 0x80:
        raise SnapshotError(f"{source}: not a pickle (first byte 0x{data[0]:02x}); truncated or corrupt?")
    try:
        unpickler = SnapshotUnpickler(io.BytesIO(data))
        obj = unpickler.load()
        check_graph(obj, unpickler.tensors.stored)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except SnapshotError as exc:
        raise SnapshotError(f"{source}: {exc}") from None
    except RecursionError:
        raise SnapshotError(f"{source}: nesting too deep; corrupt file?") from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes make pickle raise many types
        raise SnapshotError(
            f"{source}: not a readable network pickle (truncated or corrupt?): {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    if not isinstance(obj, dict):
        if isinstance(obj, tuple) and len(obj) == 3:
            raise SnapshotError(f"{source}: legacy TensorFlow network pickles are not supported")
        raise SnapshotError(f"{source}: expected a dict of networks, found {type(obj).__name__}")
    memo: Dict[int, Any] = {}
    try:
        return {k: _finish(v, memo) for k, v in obj.items()}
    except SnapshotError as exc:
        raise SnapshotError(f"{source}: {exc}") from None


def read_snapshot(path: Union[str, Path]) -> Dict[str, Any]:
    """Read an official snapshot file safely (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"network file not found: {path}")
    return loads_snapshot(path.read_bytes(), str(path))
