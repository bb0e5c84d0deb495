"""The embedder architectures synthcore can build, and what each expects as input.

Three checkpoint families share one skeleton (stem, four residual stages of 64/128/256/512 channels, an output
layer to a 512-d feature) but differ in the order of layers inside a unit, in their state-dict names, and in the
channel order they were trained on. An ``ArchSpec`` pins all of that down for one depth of one family.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

# Units per stage for each depth name. The 100-layer configuration is called 100 by insightface and 101 by the
# IR codebases; the 200-layer one exists only for insightface (AdaFace's ir_152/ir_200 use a different unit).
UNITS: Dict[int, Tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    101: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
    200: (6, 26, 60, 6),
}

STAGE_CHANNELS: Tuple[int, int, int, int] = (64, 128, 256, 512)
INPUT_SIZE = 112
FEATURE_MAP = 7  # 112 px after four stride-2 stages

# Layouts (the module structure and key names):
#   "iresnet"    insightface arcface_torch: conv1/bn1/prelu, layer{1..4}, bn2, fc, features
#   "ir_adaface" AdaFace IR: BN-conv-BN-PReLU-conv-BN residual branch, BatchNorm1d without affine
#   "ir_evolve"  face.evoLVe / TreB1eN IR and IR-SE: BN-conv-PReLU-conv-BN(-SE), affine BatchNorm1d
LAYOUTS = ("iresnet", "ir_adaface", "ir_evolve")


@dataclass(frozen=True)
class ArchSpec:
    """One buildable architecture and its input convention."""

    name: str
    family: str  # the checkpoint family: "insightface", "adaface" or "evolve"
    layout: str
    depth: int
    se: bool
    channel_order: str  # what the released weights were trained on: "RGB" or "BGR"
    dropout: float  # the family's dropout before the Linear layer (identity in eval)

    @property
    def units(self) -> Tuple[int, int, int, int]:
        return UNITS[self.depth]


def _specs() -> Dict[str, ArchSpec]:
    out = {}
    for d in (18, 34, 50, 100, 200):
        out[f"iresnet{d}"] = ArchSpec(f"iresnet{d}", "insightface", "iresnet", d, False, "RGB", 0.0)
    for d in (18, 34, 50, 101):
        out[f"adaface_ir{d}"] = ArchSpec(f"adaface_ir{d}", "adaface", "ir_adaface", d, False, "BGR", 0.4)
    for d in (50, 101, 152):
        out[f"evolve_ir{d}"] = ArchSpec(f"evolve_ir{d}", "evolve", "ir_evolve", d, False, "RGB", 0.5)
        out[f"evolve_ir_se{d}"] = ArchSpec(f"evolve_ir_se{d}", "evolve", "ir_evolve", d, True, "RGB", 0.5)
    return out


ARCHS: Dict[str, ArchSpec] = _specs()


def get_arch(name: str) -> ArchSpec:
    """The spec called ``name`` (case-insensitive, '-' accepted for '_'); ValueError listing the choices."""
    key = name.strip().lower().replace("-", "_")
    if key not in ARCHS:
        raise ValueError(f"unknown embedder architecture {name!r}; known: {', '.join(ARCHS)}")
    return ARCHS[key]


def find_arch(layout: str, units: Tuple[int, ...], se: bool) -> ArchSpec:
    """The spec with this layout, unit count per stage and SE flag; ValueError if synthcore has none."""
    for spec in ARCHS.values():
        if spec.layout == layout and spec.units == tuple(units) and spec.se == se:
            return spec
    known = sorted({f"{s.depth}: {list(s.units)}" for s in ARCHS.values() if s.layout == layout and s.se == se})
    kind = layout + ("+SE" if se else "")
    raise ValueError(
        f"{kind} checkpoint with units per stage {list(units)} matches no supported depth "
        f"({'; '.join(known)}); is the file truncated or from another network?"
    )
