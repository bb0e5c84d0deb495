"""From whatever a checkpoint file holds to the bare backbone state dict.

Released face-recognition weights come wrapped in different ways: Lightning dicts (``state_dict`` with a
``model.`` prefix and a margin head), insightface training checkpoints (``state_dict_backbone``), DDP
(``module.``), Hugging Face wrappers (``net.``). This module undoes all of them.
"""

from typing import Any, Dict, List, Mapping, Tuple

import torch

from synthcore.nets.embedders.detect import CheckpointError

# Entries that hold the weights, most specific first (insightface's training checkpoint also stores its
# classifier under ``state_dict_softmax_fc``, which must not win).
WRAPPER_ENTRIES = ("state_dict_backbone", "state_dict", "model")
# Longest first, so "model.net." is tried before "model.".
PREFIXES = ("model.net.", "module.", "model.", "backbone.", "net.")
# First name component of classifier / margin-head entries that are not part of the backbone.
HEAD_ROOTS = ("head", "heads", "classifier", "margin", "partial_fc", "loss")
_WRAPPER_NAMES = {p.rstrip(".") for p in PREFIXES} | {"net"}


def _is_head(key: str) -> bool:
    parts = key.split(".")
    while len(parts) > 1 and parts[0] in _WRAPPER_NAMES:
        parts = parts[1:]
    return parts[0] in HEAD_ROOTS


def _descend(obj: Any, source: str) -> Mapping:
    for _ in range(8):  # a handful of nested wrappers at most; guards against self-referencing dicts
        if not isinstance(obj, Mapping):
            raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict")
        inner = next((obj[n] for n in WRAPPER_ENTRIES if isinstance(obj.get(n), Mapping)), None)
        if inner is None:
            return obj
        obj = inner
    raise CheckpointError(f"{source}: state dict nested too deeply")


def _strip_prefixes(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    changed = True
    while changed and sd:
        changed = False
        for p in PREFIXES:
            if all(k.startswith(p) for k in sd):
                sd = {k[len(p) :]: v for k, v in sd.items()}
                changed = True
                break
    return sd


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """(backbone state dict, keys dropped as heads).

    Descends into ``state_dict_backbone`` / ``state_dict`` / ``model`` entries, drops classifier heads and
    non-tensor entries, then strips a wrapper prefix that every remaining key carries.
    """
    mapping = _descend(obj, source)
    tensors = {str(k): v for k, v in mapping.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        entries = ", ".join(map(str, list(mapping)[:8])) or "none"
        raise CheckpointError(f"{source}: no tensors found (top-level entries: {entries})")
    heads = sorted(k for k in tensors if _is_head(k))
    kept = {k: v for k, v in tensors.items() if k not in heads}
    return _strip_prefixes(kept), heads
