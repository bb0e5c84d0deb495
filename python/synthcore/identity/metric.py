"""How identities are compared in an embedder's space, and the algorithm defaults that follow from it.

Every embedder family states its natural ``metric`` and same-person ``threshold`` (attributes of the embedder;
``synthcore.nets.embedders``): ArcFace-type networks (iResNet, AdaFace, evoLVe) compare features by angle, with
the published inter-class threshold 1.4 rad; dlib's ResNet by Euclidean distance between raw descriptors,
same person below 0.6. The identity algorithms take their distance, repulsion radius ``r0``, inter-class
threshold ``ict`` and histogram ranges from here instead of hard-wiring ArcFace's 1.4 rad:

- ``metric``: ``ops.pairwise``'s name for it (``"angle"`` or ``"l2"``);
- ``r0`` = ``ict`` = the threshold: the repulsion acts exactly on the pairs the recogniser would confuse and
  pushes them out to where it tells them apart (for ArcFace-type embedders this is the published 10k-run setting);
- ``hist_range``: angles over [0, pi]; Euclidean distances over [0, 2 x threshold] (dlib's descriptors of
  different people sit around 0.8-1.0, so twice the threshold holds the whole inter-class bulk).
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import torch

from synthcore.embedding import angle, angle_matrix

__all__ = [
    "METRICS",
    "IdentityMetric",
    "check_metric",
    "distance_matrix",
    "identity_metric",
    "require_embedder_metric",
    "row_distance",
    "squared_distance",
]

_ALIASES = {"angle": "angle", "cosine": "angle", "arccos": "angle", "euclidean": "l2", "l2": "l2"}
DEFAULT_ANGLE_THRESHOLD = 1.4  # rad: the published inter-class threshold (identity_diffusion.md section 3)


@dataclass(frozen=True)
class IdentityMetric:
    """An embedder's identity distance and the defaults that follow from it."""

    metric: str  # "angle" (radians between features) or "l2" (Euclidean distance of raw features)
    threshold: float  # same person below this distance
    unit: str  # how a distance is labelled ("rad", "Euclidean distance")

    @property
    def r0(self) -> float:
        """Default repulsion radius of Langevin (and of the external repulsion)."""
        return self.threshold

    @property
    def ict(self) -> float:
        """Default inter-class threshold (``prop_ict``, reject sampling)."""
        return self.threshold

    @property
    def hist_range(self) -> Tuple[float, float]:
        """Range of identity-distance histograms."""
        return (0.0, math.pi) if self.metric == "angle" else (0.0, 2.0 * self.threshold)

    def config_defaults(self, config_class: Any = None) -> Dict[str, Any]:
        """``metric``, ``r0`` and ``ict`` as keyword arguments of an algorithm config (only the fields
        ``config_class``, a dataclass such as ``LangevinConfig`` or ``DispersionConfig``, has; all when None)."""
        values = {"metric": self.metric, "r0": self.r0, "ict": self.ict}
        if config_class is None:
            return values
        fields = {f.name for f in dataclasses.fields(config_class)}
        return {k: v for k, v in values.items() if k in fields}


def identity_metric(embedder: Any) -> IdentityMetric:
    """The identity metric an embedder states (``metric`` / ``threshold`` attributes); an embedder that states
    none is taken as ArcFace-type (angle, 1.4 rad)."""
    name = str(getattr(embedder, "metric", "angle")).lower()
    if name not in _ALIASES:
        raise ValueError(f"embedder metric {name!r} is not one synthcore knows ({', '.join(sorted(_ALIASES))})")
    metric = _ALIASES[name]
    default = DEFAULT_ANGLE_THRESHOLD if metric == "angle" else None
    threshold = getattr(embedder, "threshold", default)
    if threshold is None or not (math.isfinite(float(threshold)) and float(threshold) > 0):
        raise ValueError(f"embedder threshold must be a positive number, got {threshold!r}")
    return IdentityMetric(metric, float(threshold), "rad" if metric == "angle" else "Euclidean distance")


METRICS = ("angle", "l2")


def check_metric(name: str, option: str = "metric") -> None:
    """Raise ValueError unless ``name`` is a metric the identity algorithms compute (``"angle"`` or ``"l2"``)."""
    if name not in METRICS:
        raise ValueError(f"{option} must be 'angle' or 'l2', got {name!r}")


def require_embedder_metric(metric: str, embedder_metric: IdentityMetric, what: str) -> None:
    """Refuse settings made for another embedder family's distance (e.g. the 1.4 rad defaults with dlib)."""
    if metric != embedder_metric.metric:
        raise ValueError(
            f"{what} measures identity by {metric!r}, but the embedder compares by {embedder_metric.metric!r} "
            f"(threshold {embedder_metric.threshold}); build the settings with identity_metric(embedder)."
            "config_defaults()"
        )


def distance_matrix(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """[N, M] identity distances between rows of ``a`` and ``b``: angles (``embedding.angle_matrix``) or
    Euclidean distances; differentiable."""
    if metric == "angle":
        return angle_matrix(a, b)
    return torch.cdist(a.unsqueeze(0), b.unsqueeze(0)).squeeze(0)


def row_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Identity distance between matching rows of ``a`` and ``b``."""
    return angle(a, b) if metric == "angle" else (a - b).norm(dim=-1)


def squared_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Squared identity distance between matching rows; for ``l2`` the plain sum of squares, so its gradient is
    finite where the rows meet."""
    return angle(a, b) ** 2 if metric == "angle" else (a - b).square().sum(dim=-1)
