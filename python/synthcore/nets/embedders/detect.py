"""Recognise an embedder checkpoint's architecture from its state-dict keys and shapes alone."""

import re
from typing import Dict, List, Mapping, Sequence, Tuple

from synthcore.nets.embedders.archs import FEATURE_MAP, STAGE_CHANNELS, ArchSpec, find_arch

Shapes = Mapping[str, Sequence[int]]


class CheckpointError(ValueError):
    """A model file that cannot be used as an embedder: unreadable, unrecognised or incomplete."""


def _units_per_stage(widths: List[int], what: str) -> Tuple[int, ...]:
    """Group consecutive units by output width; the widths must run through 64, 128, 256, 512 in order."""
    counts: Dict[int, int] = {}
    for w in widths:
        counts[w] = counts.get(w, 0) + 1
    if list(counts) != list(STAGE_CHANNELS) or widths != sorted(widths):
        raise CheckpointError(
            f"{what}: unit widths {sorted(counts)} do not form the 64/128/256/512 stages of an IR/iResNet network"
        )
    return tuple(counts[c] for c in STAGE_CHANNELS)


def _iresnet_units(shapes: Shapes) -> Tuple[int, ...]:
    widths = []
    for s in range(1, 5):
        i = 0
        while f"layer{s}.{i}.conv1.weight" in shapes:
            widths.append(int(shapes[f"layer{s}.{i}.conv1.weight"][0]))
            i += 1
        if i == 0:
            raise CheckpointError(f"insightface iResNet checkpoint without a layer{s}.0 unit")
    return _units_per_stage(widths, "insightface iResNet checkpoint")


def _ir_units(shapes: Shapes) -> Tuple[int, ...]:
    indices = sorted({int(m.group(1)) for k in shapes if (m := re.match(r"body\.(\d+)\.res_layer\.1\.weight$", k))})
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise CheckpointError(f"IR checkpoint: units {missing[:10]} of body.0..{indices[-1]} are missing")
    return _units_per_stage([int(shapes[f"body.{k}.res_layer.1.weight"][0]) for k in indices], "IR checkpoint")


def _embedding_size(shapes: Shapes, key: str) -> int:
    out_f, in_f = shapes[key]
    if in_f != STAGE_CHANNELS[-1] * FEATURE_MAP * FEATURE_MAP:
        raise CheckpointError(
            f"{key} takes {in_f} inputs, not 512*7*7 = 25088: synthcore's embedders are for 112x112 crops"
        )
    return int(out_f)


def detect_arch(shapes: Shapes) -> Tuple[ArchSpec, int]:
    """(architecture, embedding size) of an unwrapped state dict, given as key -> shape.

    insightface is told by ``layer1.0.bn1.weight``; the IR codebases by which layer of the first residual branch
    is a 1-D PReLU slope (index 3 after AdaFace's extra BatchNorm, index 2 in evoLVe/TreB1eN), and SE by
    ``fc1`` weights; the depth is the number of units per stage. Raises CheckpointError otherwise.
    """
    shapes = {k: tuple(v) for k, v in shapes.items()}
    if "layer1.0.bn1.weight" in shapes:
        layout, units, se = "iresnet", _iresnet_units(shapes), False
        linear = "fc.weight"
    elif "body.0.res_layer.1.weight" in shapes:
        if len(shapes.get("body.0.res_layer.3.weight", ())) == 1:
            layout = "ir_adaface"
        elif len(shapes.get("body.0.res_layer.2.weight", ())) == 1:
            layout = "ir_evolve"
        else:
            raise CheckpointError("IR checkpoint whose first unit has no PReLU at res_layer.2 or res_layer.3")
        units = _ir_units(shapes)
        se = any(re.match(r"body\.\d+\.res_layer\.\d+\.fc1\.weight$", k) for k in shapes)
        linear = "output_layer.3.weight"
    else:
        sample = ", ".join(list(shapes)[:6]) or "none"
        raise CheckpointError(
            "not a recognised face-recognition checkpoint: expected insightface iResNet keys (layer1.0.bn1.weight) "
            f"or IR keys (body.0.res_layer.*); first keys: {sample}"
        )
    if linear not in shapes or len(shapes[linear]) != 2:
        raise CheckpointError(f"{layout} checkpoint without its output Linear layer ({linear}); truncated?")
    try:
        spec = find_arch(layout, units, se)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return spec, _embedding_size(shapes, linear)
