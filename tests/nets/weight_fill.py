"""The deterministic weight fill of ../shared/testdata/embedders/README.md ("The weight-fill recipe").

Each tensor is drawn from a generator seeded by the CRC-32 of its key, then scaled by a rule chosen from the key's
leaf name, rank and whether it belongs to a BatchNorm (a sibling ``running_var`` exists).
"""

import math
import zlib
from typing import Dict, Mapping, Sequence

import torch


def _role(key: str, shape: Sequence[int], keys: set) -> str:
    prefix, leaf = key.rsplit(".", 1)
    in_bn = f"{prefix}.running_var" in keys
    if leaf in ("running_mean", "running_var"):
        return f"bn_{leaf}"
    if leaf == "weight":
        if len(shape) == 4:
            return "conv_weight"
        if len(shape) == 2:
            return "linear_weight"
        return "bn_weight" if in_bn else "prelu_weight"
    if leaf == "bias":
        return "bn_bias" if in_bn else "linear_bias"
    raise ValueError(f"no fill rule for {key}")


def _scaled(z: torch.Tensor, role: str, shape: Sequence[int]) -> torch.Tensor:
    if role == "bn_running_mean":
        return 0.1 * z
    if role == "bn_running_var":
        return 1.0 + z.abs()
    if role == "conv_weight":
        return z * math.sqrt(1.0 / (shape[1] * shape[2] * shape[3]))
    if role == "linear_weight":
        return z * math.sqrt(1.0 / shape[1])
    if role == "bn_weight":
        return 1.0 + 0.1 * z
    if role == "bn_bias":
        return 0.1 * z
    if role == "prelu_weight":
        return 0.25 + 0.05 * z
    return 0.01 * z  # linear_bias


def fill(shapes: Mapping[str, Sequence[int]], offset: int = 0) -> Dict[str, torch.Tensor]:
    """Recipe values for every key of ``shapes`` (key -> shape); order does not matter."""
    keys = set(shapes)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.int64)
            continue
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")) + offset)
        z = torch.randn(tuple(shape), generator=gen, dtype=torch.float32)
        out[key] = _scaled(z, _role(key, shape, keys), shape)
    return out


def role(key: str, shapes: Mapping[str, Sequence[int]]) -> str:
    """The recipe's role name for ``key`` (``num_batches_tracked`` has none)."""
    return _role(key, shapes[key], set(shapes))
