"""Generator files: ``load_generator`` for official snapshots and synthcore's own format, and ``save_generator``.

synthcore's format (``synthcore.generator/1``) holds the constructor config, the state dict (official tensor
names) and the stored gains/clamps of every layer, as either
- ``.pt``: ``torch.save`` of a dict of plain data and tensors, read back with ``torch.load(weights_only=True)``;
- ``.safetensors``: the tensors, with config, attributes and metadata as JSON strings in ``__metadata__``.
Neither can carry code. Files are written atomically.

Integrity: both carry ``content_sha256``, a SHA-256 over the config, attributes, metadata and every tensor (name,
dtype, shape, bytes) in a canonical order (:func:`content_digest`); loading verifies it, so a damaged weight that
still parses is reported instead of generating different images. Files written before the hash existed load
unverified.
"""

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from synthcore.fileio import atomic_path, write_bytes_atomic
from synthcore.nets import stylegan2
from synthcore.nets.model_files import ModelFileError, load_safetensors, load_torch_file
from synthcore.nets.persistence import SnapshotError, check_graph
from synthcore.nets.snapshot import load_network_pickle

__all__ = ["FORMAT", "GeneratorFileError", "content_digest", "load_generator", "save_generator", "file_kind"]

FORMAT = "synthcore.generator/1"
_TORCH_TYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


class GeneratorFileError(ModelFileError):
    """A generator file in synthcore's format that cannot be used (wrong format tag, bad config, ...)."""


_HASHED = ("format", "config", "attributes", "metadata")  # payload fields covered by content_sha256


def content_digest(payload: Dict[str, Any], tensors: Dict[str, torch.Tensor]) -> str:
    """SHA-256 of a generator file's content, independent of the container (.pt or .safetensors): the payload
    fields as canonical JSON, then per tensor in name order its name, dtype, shape and raw bytes."""
    h = hashlib.sha256()
    fields = {k: payload.get(k) for k in _HASHED}
    h.update(json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=True).encode("utf-8"))
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(json.dumps([name, str(t.dtype), list(tensors[name].shape)]).encode("utf-8"))
        if t.numel():
            h.update(t.view(torch.uint8).numpy())  # the bytes as stored, for every dtype (bfloat16 included)
    return h.hexdigest()


def _verify(path: Path, stored: Any, payload: Dict[str, Any], tensors: Dict[str, torch.Tensor]) -> None:
    if stored is None:
        return  # written before synthcore stored hashes: nothing to check against
    try:
        actual = content_digest(payload, tensors)
    except (TypeError, ValueError, RecursionError):  # a damaged config that is no longer JSON data
        actual = "(not computable)"
    if stored != actual:
        raise GeneratorFileError(
            f"{path}: damaged: its content does not match the checksum stored in it (stored "
            f"{str(stored)[:16]}..., content {actual[:16]}...); re-create it with synthcore convert "
            "from the snapshot it came from (with --overwrite)"
        )


def file_kind(path: Union[str, Path]) -> str:
    """The kind of network file: "pickle" (official snapshot), "torch" (zip archive from torch.save) or
    "safetensors", from its first bytes (the extension only decides for files too short to tell)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"network file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(10)
    if head[:2] == b"PK":
        return "torch"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return "pickle"
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in (".pt", ".pth"):
        return "torch"
    raise ModelFileError(f"{path}: not a network file synthcore knows (official .pkl, synthcore .pt or .safetensors)")


def _build(config: Any, state_dict: Dict[str, torch.Tensor], attributes: Any, source: str) -> stylegan2.Generator:
    if not isinstance(config, dict):
        raise GeneratorFileError(f"{source}: the config is missing or not a dict")
    try:
        with torch.device("meta"):  # shapes only; the file's tensors are assigned below
            G = stylegan2.Generator(**config, init=False)
    except (TypeError, ValueError) as exc:
        raise GeneratorFileError(f"{source}: bad generator config: {exc}") from None
    expected = G.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {list(state_dict[k].shape)} != {list(v.shape)}" for k, v in expected.items()
             if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or unexpected or wrong:
        parts = [f"{t} ({len(ks)}): {', '.join(ks[:6])}" for t, ks in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if ks]  # fmt: skip
        raise GeneratorFileError(f"{source}: tensors do not fit the config; {'; '.join(parts)}")
    G.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()}, strict=True, assign=True)
    try:
        stylegan2.apply_value_attributes(G, attributes or {})
    except ValueError as exc:
        raise GeneratorFileError(f"{source}: {exc}") from None
    return G.eval().requires_grad_(False)


def _load_torch(path: Path) -> stylegan2.Generator:
    obj = load_torch_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise GeneratorFileError(f"{path}: not a synthcore generator file (format {found!r}, expected {FORMAT!r})")
    sd = obj.get("state_dict")
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise GeneratorFileError(f"{path}: state_dict is missing or holds non-tensors")
    try:  # shared or deeply nested containers in the config would make hashing and checking it explode
        check_graph(obj, sum(t.numel() for t in {id(t): t for t in sd.values()}.values()))
    except SnapshotError as exc:
        raise GeneratorFileError(f"{path}: {exc}") from None
    _verify(path, obj.get("content_sha256"), obj, sd)
    return _build(obj.get("config"), sd, obj.get("attributes"), str(path))


def _load_safetensors(path: Path) -> stylegan2.Generator:
    tensors = load_safetensors(path)
    meta = _safetensors_metadata(path)
    if meta.get("format") != FORMAT:
        raise GeneratorFileError(f"{path}: not a synthcore generator file (no {FORMAT!r} format tag)")
    if not isinstance(meta.get("config"), str) or not isinstance(meta.get("attributes", "{}"), str):
        raise GeneratorFileError(f"{path}: bad generator metadata: config and attributes must be JSON text")
    try:
        config = json.loads(meta["config"])
        attributes = json.loads(meta.get("attributes", "{}"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise GeneratorFileError(f"{path}: bad generator metadata: {str(exc) or 'nested too deeply'}") from None
    if "content_sha256" in meta:
        try:
            extras = json.loads(meta.get("metadata", "{}"))
        except (TypeError, json.JSONDecodeError, RecursionError):
            extras = None  # damaged: the hash check below reports it
        payload = {"format": meta.get("format"), "config": config, "attributes": attributes, "metadata": extras}
        _verify(path, meta["content_sha256"], payload, tensors)
    return _build(config, tensors, attributes, str(path))


def _safetensors_metadata(path: Path) -> Dict[str, str]:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def load_generator(
    path: Union[str, Path], device: Union[str, torch.device] = "cpu", key: str = "G_ema"
) -> stylegan2.Generator:
    """A frozen, eval-mode Generator from an official snapshot (``key``: G_ema by default, or G) or from a file in
    synthcore's format (``.pt`` / ``.safetensors``), moved to ``device``. Nothing stored in the file is executed."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "pickle":
        if key not in ("G_ema", "G"):
            raise ValueError(f"key must be 'G_ema' or 'G', got {key!r}")
        nets = load_network_pickle(path, keys=[key])
        if nets.get(key) is None:
            raise SnapshotError(f"{path}: the snapshot has no {key!r} network (keys: {', '.join(nets)})")
        G = nets[key]
    elif kind == "torch":
        G = _load_torch(path)
    else:
        G = _load_safetensors(path)
    return G.to(device)


def _payload(G: stylegan2.Generator, metadata: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "config": G.config,
        "attributes": stylegan2.value_attributes(G),
        "metadata": dict(metadata or {}),
    }


def _safetensors_bytes(tensors: Dict[str, torch.Tensor], meta: Dict[str, str]) -> bytes:
    header: Dict[str, Any] = {"__metadata__": meta}
    chunks, offset = [], 0
    for name, t in tensors.items():
        if t.dtype not in _TORCH_TYPES:
            raise ValueError(f"cannot store {name} of dtype {t.dtype} in safetensors")
        t = t.detach().cpu().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()  # numpy has no bfloat16
        header[name] = {
            "dtype": _TORCH_TYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def save_generator(G: stylegan2.Generator, path: Union[str, Path], metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write ``G`` in synthcore's format: ``.safetensors`` by that extension, else a ``torch.save`` file (``.pt``).

    ``metadata``: JSON-serialisable extras kept in the file (e.g. where the weights came from).
    """
    path = Path(path)
    payload = _payload(G, metadata)
    sd = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    try:
        json.dumps(payload)
    except TypeError as exc:
        raise ValueError(f"generator config/metadata must be JSON-serialisable: {exc}") from None
    payload["content_sha256"] = content_digest(payload, sd)
    if path.suffix.lower() == ".safetensors":
        meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in payload.items()}
        write_bytes_atomic(path, _safetensors_bytes(sd, meta))
        return
    with atomic_path(path) as tmp:
        torch.save({**payload, "state_dict": sd}, tmp)
