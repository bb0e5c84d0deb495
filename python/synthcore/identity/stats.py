"""Per-iteration statistics of the identity algorithms (one row of ``stats.h5`` per iteration).

Names follow the Idiap stats files so existing plotting habits carry over: ``dist_*`` embedding angles (radians),
``prop_ict`` fraction of pairs at or beyond the inter-class threshold, ``w2wd_*`` W-space L2 distances,
``wavg_avg`` mean distance to ``w_avg``, ``<force>_{min,avg,max}`` row norms of each force, ``timestep``.
Every statistic is over all rows (nothing is dropped when N is not a multiple of a block size).
"""

import math
from typing import Dict, Optional

import torch

from synthcore.ops import PairwiseResult, pairwise, pairwise_stats, pairwise_summary

__all__ = ["NAN_FORCES", "distance_stats", "embedding_stats", "latent_pairs", "latent_stats", "norm_stats"]

FORCE_NAMES = ("intf", "latf", "rndf", "totf")
# The last row (embeddings of the final latents, no step taken) has no forces.
NAN_FORCES: Dict[str, float] = {f"{f}_{s}": math.nan for f in FORCE_NAMES for s in ("min", "avg", "max")}


def norm_stats(name: str, x: torch.Tensor) -> Dict[str, float]:
    """``{name_min, name_avg, name_max}`` of the row norms of x [N, d] (in float64; NaN for no rows)."""
    n = x.detach().double().norm(dim=1)
    if n.numel() == 0:
        return {f"{name}_min": math.nan, f"{name}_avg": math.nan, f"{name}_max": math.nan}
    return {f"{name}_min": float(n.min()), f"{name}_avg": float(n.mean()), f"{name}_max": float(n.max())}


def embedding_stats(
    e: torch.Tensor,
    threshold: float,
    groups: Optional[torch.Tensor] = None,
    impl: Optional[str] = None,
    metric: str = "angle",
) -> Dict[str, float]:
    """``dist_{min,avg,max}`` embedding distances over all pairs (within ``groups`` when given) and ``prop_ict``,
    the fraction of pairs at or beyond ``threshold``; ``metric``: the embedder's ("angle" radians, or "l2")."""
    ang = pairwise_stats(e.float(), metric=metric, threshold=threshold, groups=groups, impl=impl)
    return {"dist_min": ang["min"], "dist_avg": ang["mean"], "dist_max": ang["max"], "prop_ict": ang["frac_beyond"]}


def latent_pairs(w: torch.Tensor, groups: Optional[torch.Tensor] = None, impl: Optional[str] = None) -> PairwiseResult:
    """W-space L2 distances of every pair (within ``groups``), reduced per row, without forces: the input of
    :func:`latent_stats`, and of the adaptive time step (its ``dist_min``), so a step measures them once."""
    return pairwise(
        w.float(),
        None,
        metric="l2",
        r0=0.0,
        r_count=0.0,
        exclude_self=True,
        q_groups=groups,
        need_grad=False,
        impl=impl,
    )


def latent_stats(pairs: PairwiseResult, w: torch.Tensor, w_avg: torch.Tensor) -> Dict[str, float]:
    """``w2wd_{min,avg,max}`` from the W distances ``pairs`` of ``w`` (:func:`latent_pairs`, or the result of a W
    repulsion over the same pairs) and ``wavg_avg``, the mean distance to ``w_avg``."""
    lat = pairwise_summary(pairs)
    return {
        "w2wd_min": lat["min"],
        "w2wd_avg": lat["mean"],
        "w2wd_max": lat["max"],
        "wavg_avg": float((w.double() - w_avg.double().to(w.device)).norm(dim=1).mean()),
    }


def distance_stats(
    e: torch.Tensor,
    w: torch.Tensor,
    w_avg: torch.Tensor,
    threshold: float,
    groups: Optional[torch.Tensor] = None,
    impl: Optional[str] = None,
    latent: Optional[PairwiseResult] = None,
    metric: str = "angle",
) -> Dict[str, float]:
    """Embedding-angle and W-distance statistics over all pairs (within ``groups`` when given). ``latent``: the W
    distances of ``w`` when the caller already has them (default: measured here)."""
    if latent is None:
        latent = latent_pairs(w, groups, impl)
    return {**embedding_stats(e, threshold, groups, impl, metric), **latent_stats(latent, w, w_avg)}
