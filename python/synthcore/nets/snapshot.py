"""Turn the persistence records of an official snapshot into synthcore modules.

A record's constructor arguments (``_init_kwargs``) build the synthcore class of the same name; then every
parameter and buffer is copied from the record, the stored gains and clamps replace the re-derived ones, and
the structure (children, tensor names and shapes, structural attributes such as ``architecture``) is checked
against the record, so a file that does not fit is reported in one error listing what differs.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from torch import nn

from synthcore.nets import stylegan2
from synthcore.nets.discriminator import Discriminator
from synthcore.nets.persistence import PersistentRecord, SnapshotError, read_snapshot

__all__ = ["discriminator_from_record", "generator_from_record", "load_network_pickle", "load_into", "NETWORK_KEYS"]

NETWORK_KEYS = ("G_ema", "G", "D")
_DISCRIMINATOR_ARGS = ("c_dim", "img_resolution", "img_channels")
_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
_SHOWN = 8  # problems listed in one error message


def _stylegan3_reason(rec: PersistentRecord) -> Optional[str]:
    """StyleGAN3 generators reuse the StyleGAN2 class names; tell them apart by structure (README section 8)."""
    synthesis = rec.children.get("synthesis")
    if isinstance(synthesis, PersistentRecord):
        if "input" in synthesis.children or "layer_names" in synthesis.state:
            return "a StyleGAN3 generator (its synthesis network has an 'input' layer and 'layer_names')"
    return None


def _init_kwargs(rec: PersistentRecord, names: tuple) -> Dict[str, Any]:
    kwargs = dict(rec.init_kwargs)
    args = rec.init_args
    if len(args) > len(names):
        raise SnapshotError(f"{rec.class_name} record has {len(args)} positional constructor arguments")
    for name, value in zip(names, args):
        if name in kwargs:
            raise SnapshotError(f"{rec.class_name} record gives {name} both positionally and by keyword")
        kwargs[name] = value
    return kwargs


def _fmt(v: Any) -> str:
    return repr(v) if not isinstance(v, float) else f"{v:.9g}"


def _compare(module: nn.Module, rec: PersistentRecord, path: str, problems: List[str]) -> None:
    where = path or "<root>"
    if type(module).__name__ != rec.class_name:
        problems.append(f"{where}: file has a {rec.class_name}, synthcore builds a {type(module).__name__}")
        return
    state = rec.state
    for name in getattr(module, "STRUCT_ATTRS", ()):
        if name in state and state[name] != getattr(module, name):
            problems.append(f"{where}.{name}: file {_fmt(state[name])} != {_fmt(getattr(module, name))}")
    for name in getattr(module, "VALUE_ATTRS", ()):
        if name in state:
            v = state[name]
            if v is not None and not isinstance(v, (int, float)):
                problems.append(f"{where}.{name}: expected a number, file has {type(v).__name__}")
            else:
                setattr(module, name, v)

    ours = {k: v for k, v in list(module._parameters.items()) + list(module._buffers.items()) if v is not None}
    theirs = {k: v for k, v in rec.tensors().items() if v is not None}
    for name in sorted(set(ours) | set(theirs)):
        full = f"{path}.{name}" if path else name
        if name not in theirs:
            problems.append(f"{full}: missing from the file")
        elif name not in ours:
            problems.append(f"{full}: in the file but not in the synthcore network")
        elif not isinstance(theirs[name], torch.Tensor):
            problems.append(f"{full}: not a tensor in the file")
        elif tuple(theirs[name].shape) != tuple(ours[name].shape):
            problems.append(f"{full}: shape {list(theirs[name].shape)} in the file, expected {list(ours[name].shape)}")
        else:
            t = theirs[name].detach().to(ours[name].dtype).contiguous()
            if name in module._parameters:
                module._parameters[name] = nn.Parameter(t, requires_grad=False)
            else:
                module._buffers[name] = t

    our_children = {k: m for k, m in module._modules.items() if m is not None}
    their_children = {k: r for k, r in rec.children.items() if r is not None}
    for name in sorted(set(our_children) | set(their_children)):
        full = f"{path}.{name}" if path else name
        if name not in their_children:
            problems.append(f"{full}: missing from the file")
        elif name not in our_children:
            problems.append(f"{full}: in the file ({their_children[name].class_name}) but not in the synthcore network")
        elif not isinstance(their_children[name], PersistentRecord):
            problems.append(f"{full}: not a network record in the file")
        else:
            _compare(our_children[name], their_children[name], full, problems)


def load_into(module: nn.Module, rec: PersistentRecord, source: str) -> None:
    """Put a record tree's tensors and stored values into ``module`` (built on any device, typically meta: its
    tensors are replaced, not copied into); raise if the two do not fit."""
    problems: List[str] = []
    _compare(module, rec, "", problems)
    if not problems:
        problems = [f"{k}: not in the file" for k, v in module.state_dict().items() if v.is_meta]
    if problems:
        more = f" (+{len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise SnapshotError(f"{source}: the stored {rec.class_name} does not fit: {'; '.join(problems[:_SHOWN])}{more}")


def _freeze(module: nn.Module) -> nn.Module:
    # Loaded networks are for inference and for gradients with respect to their inputs (ws), never weights.
    return module.eval().requires_grad_(False)


def generator_from_record(rec: PersistentRecord, source: str = "snapshot") -> stylegan2.Generator:
    """A frozen, eval-mode synthcore Generator holding the weights of an official ``Generator`` record."""
    if not isinstance(rec, PersistentRecord) or rec.class_name != "Generator":
        found = rec.class_name if isinstance(rec, PersistentRecord) else type(rec).__name__
        raise SnapshotError(f"{source}: expected a Generator record, found {found}")
    reason = _stylegan3_reason(rec)
    if reason:
        raise SnapshotError(f"{source}: {reason}; synthcore runs StyleGAN2 generators only")
    kwargs = _init_kwargs(rec, _GENERATOR_ARGS)
    try:
        with torch.device("meta"):  # shapes only: the file's tensors are put in place, nothing is allocated twice
            G = stylegan2.Generator(**kwargs, init=False)
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"{source}: cannot build the generator from its stored arguments: {exc}") from None
    load_into(G, rec, source)
    return _freeze(G)


def discriminator_from_record(rec: PersistentRecord, source: str = "snapshot") -> Discriminator:
    """A frozen, eval-mode synthcore Discriminator holding the weights of an official ``Discriminator`` record."""
    kwargs = _init_kwargs(rec, _DISCRIMINATOR_ARGS)
    try:
        with torch.device("meta"):
            D = Discriminator(**kwargs, init=False)
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"{source}: cannot build the discriminator from its stored arguments: {exc}") from None
    load_into(D, rec, source)
    return _freeze(D)


def _convert(key: str, value: Any, source: str) -> Any:
    if not isinstance(value, PersistentRecord):
        return value
    if value.class_name == "Generator":
        return generator_from_record(value, f"{source} [{key}]")
    if value.class_name == "Discriminator":
        return discriminator_from_record(value, f"{source} [{key}]")
    return value  # AugmentPipe and anything else: kept as an inert record


def load_network_pickle(path: Union[str, Path], keys: Optional[List[str]] = None) -> Dict[str, Any]:
    """Read an official snapshot: ``G``/``G_ema`` become Generators, ``D`` a Discriminator; other records
    (``augment_pipe``) stay inert :class:`PersistentRecord`; ``training_set_kwargs`` is a plain dict. Missing
    optional keys read as None.

    ``keys``: convert only these networks (the others are returned as records).
    """
    data = read_snapshot(path)
    out: Dict[str, Any] = {"training_set_kwargs": None, "augment_pipe": None}
    for key, value in data.items():
        wanted = keys is None or key in keys
        out[key] = _convert(key, value, str(path)) if wanted else value
    return out
