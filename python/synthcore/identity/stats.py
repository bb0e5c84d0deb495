"""Per-iteration statistics of the identity algorithms (one row of ``stats.h5`` per iteration).

Names follow the Idiap stats files so existing plotting habits carry over: ``dist_*`` embedding angles (radians),
``prop_ict`` fraction of pairs at or beyond the inter-class threshold, ``w2wd_*`` W-space L2 distances,
``wavg_avg`` mean distance to ``w_avg``, ``<force>_{min,avg,max}`` row norms of each force, ``timestep``.
Every statistic is over all rows (nothing is dropped when N is not a multiple of a block size).
"""

import math
from typing import Dict, Optional

import torch

from synthcore.ops import pairwise_stats

__all__ = ["distance_stats", "norm_stats", "NAN_FORCES"]

FORCE_NAMES = ("intf", "latf", "rndf", "totf")
# The last row (embeddings of the final latents, no step taken) has no forces.
NAN_FORCES: Dict[str, float] = {f"{f}_{s}": math.nan for f in FORCE_NAMES for s in ("min", "avg", "max")}


def norm_stats(name: str, x: torch.Tensor) -> Dict[str, float]:
    """``{name_min, name_avg, name_max}`` of the row norms of x [N, d]."""
    n = x.detach().double().norm(dim=1)
    if n.numel() == 0:
        return {f"{name}_min": math.nan, f"{name}_avg": math.nan, f"{name}_max": math.nan}
    return {f"{name}_min": float(n.min()), f"{name}_avg": float(n.mean()), f"{name}_max": float(n.max())}


def distance_stats(
    e: torch.Tensor,
    w: torch.Tensor,
    w_avg: torch.Tensor,
    threshold: float,
    groups: Optional[torch.Tensor] = None,
    impl: Optional[str] = None,
) -> Dict[str, float]:
    """Embedding-angle and W-distance statistics over all pairs (within ``groups`` when given)."""
    ang = pairwise_stats(e.float(), metric="angle", threshold=threshold, groups=groups, impl=impl)
    lat = pairwise_stats(w.float(), metric="l2", threshold=0.0, groups=groups, impl=impl)
    return {
        "dist_min": ang["min"],
        "dist_avg": ang["mean"],
        "dist_max": ang["max"],
        "prop_ict": ang["frac_beyond"],
        "w2wd_min": lat["min"],
        "w2wd_avg": lat["mean"],
        "w2wd_max": lat["max"],
        "wavg_avg": float((w.double() - w_avg.double().to(w.device)).norm(dim=1).mean()),
    }
