"""Pairwise soft-sphere repulsion between query rows and key rows, and whole-set distance statistics.

For query rows ``Q (N, d)`` and key rows ``K (M, d)`` (``K=None`` means the queries themselves), with distance
``dist`` either the angle between rows (``metric="angle"``: rows L2-normalised, ``dist = arccos(0.999999 cos)``)
or the Euclidean distance (``metric="l2"``), the energy of query row i is

    E_i = sum_j  k/2 (r0 - dist_ij)^2  over valid pairs with dist_ij < r0,

where a pair is valid if both rows have the same group id (when ``groups`` are given) and it is not the row
itself (when ``exclude_self``: key ``i + query_offset`` for query ``i``). :func:`pairwise` returns the gradient of
``U = sum_i E_i`` with respect to the query rows, keys held fixed (so with ``K=None`` each row feels the force of
the others, as in the identity algorithms), the energies, and per-row distance statistics over valid pairs.

Three implementations share these semantics:
- :func:`pairwise_reference`: the plain N x M computation, gradient by autograd; it defines the right answer;
- :func:`pairwise_chunked`: pure torch, rows in chunks against all keys (memory O(chunk M)); the baseline;
- native (``impl="native"``): tiles of both rows and keys; each similarity tile is one matrix product, and a
  native epilogue turns it in place into force coefficients, energies and statistics in a single pass. With
  ``K=None`` only tiles on or above the diagonal are computed and each feeds both its rows and its columns;
  tiles with no pair inside the cutoff skip the force product, sparse ones use a native sparse accumulation;
  tiles whose (sorted) group ranges do not meet are skipped. Memory O((N + M) d + tile^2).
"""

import math
from typing import List, NamedTuple, Optional

import torch

from synthcore import _native
from synthcore.ops import _backend

__all__ = [
    "PairwiseResult",
    "pairwise",
    "pairwise_chunked",
    "pairwise_reference",
    "pairwise_stats",
    "pairwise_summary",
]

ANGLE_SCALE = 0.999999  # keeps arccos (and its derivative) finite for identical directions
_METRICS = {"angle": 0, "l2": 1}
_SPARSE_DENSITY = 0.02  # below this fraction of inside pairs a tile's force is accumulated sparsely


class PairwiseResult(NamedTuple):
    grad: Optional[torch.Tensor]  # dU/dQ, [N, d] (None when need_grad=False)
    energy: torch.Tensor  # E_i, [N]
    dist_min: torch.Tensor  # [N], +inf for a row without valid pairs
    dist_mean: torch.Tensor  # [N], NaN for a row without valid pairs
    dist_max: torch.Tensor  # [N], -inf for a row without valid pairs
    count_within: torch.Tensor  # [N] int64: valid pairs with dist < r_count
    num_valid: torch.Tensor  # [N] int64: valid pairs


def _validate(Q, K, metric, r0, k, r_count, q_groups, k_groups, query_offset):
    op = "pairwise"
    _backend.require_tensor(op, "Q", Q, (2,))
    if K is not None:
        _backend.require_tensor(op, "K", K, (2,))
        _backend.require_same_device(op, "K", K, "Q", Q)
        if K.shape[1] != Q.shape[1]:
            raise ValueError(f"pairwise: Q has {Q.shape[1]} features but K has {K.shape[1]}")
        if K.dtype != Q.dtype:
            raise TypeError(f"pairwise: K has dtype {K.dtype} but Q has {Q.dtype}")
    if metric not in _METRICS:
        raise ValueError(f"pairwise: metric must be 'angle' or 'l2', got {metric!r}")
    for name, v in (("r0", r0), ("k", k), ("r_count", r_count)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"pairwise: {name} must be a finite number >= 0, got {v!r}")
    if K is not None and (q_groups is None) != (k_groups is None):
        raise ValueError("pairwise: give groups for both queries and keys, or for neither")
    m = Q.shape[0] if K is None else K.shape[0]
    for name, g, n in (("q_groups", q_groups, Q.shape[0]), ("k_groups", k_groups, m)):
        if g is None:
            continue
        if not isinstance(g, torch.Tensor) or g.ndim != 1 or g.shape[0] != n:
            raise ValueError(f"pairwise: {name} must be a 1-D tensor of {n} group ids")
        if g.dtype.is_floating_point or g.dtype == torch.bool:
            raise TypeError(f"pairwise: {name} must hold integer group ids, got {g.dtype}")
        _backend.require_same_device("pairwise", name, g, "Q", Q)
    if query_offset < 0 or (query_offset and query_offset + Q.shape[0] > m):
        raise ValueError(f"pairwise: query_offset {query_offset} does not fit {Q.shape[0]} queries into {m} keys")


def _same_rows(Q: torch.Tensor, K: Optional[torch.Tensor], query_offset: int) -> bool:
    """Whether query i is key i + query_offset itself (K is None, or Q is that slice of K's memory)."""
    if K is None:
        return True
    return (
        Q.shape[0] > 0
        and Q.shape[0] + query_offset <= K.shape[0]
        and Q.stride() == K.stride()
        and Q.data_ptr() == K[query_offset].data_ptr()
    )


# --- reference ---------------------------------------------------------------------------------------------


def _distances(Q: torch.Tensor, K: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "angle":
        c = torch.nn.functional.normalize(Q, dim=1, eps=0) @ torch.nn.functional.normalize(K, dim=1, eps=0).T
        return torch.arccos((ANGLE_SCALE * c).clamp(-1, 1))
    return torch.cdist(Q, K, compute_mode="donot_use_mm_for_euclid_dist")


def _valid_mask(n, m, q_groups, k_groups, exclude_self, query_offset, device):
    valid = torch.ones(n, m, dtype=torch.bool, device=device)
    if q_groups is not None:
        valid &= q_groups[:, None] == k_groups[None, :]
    if exclude_self:
        i = torch.arange(n, device=device)
        valid[i, i + query_offset] = False
    return valid


def pairwise_reference(
    Q: torch.Tensor,
    K: Optional[torch.Tensor] = None,
    *,
    metric: str = "angle",
    r0: float = 1.4,
    k: float = 1.0,
    r_count: Optional[float] = None,
    exclude_self: bool = False,
    q_groups: Optional[torch.Tensor] = None,
    k_groups: Optional[torch.Tensor] = None,
    query_offset: int = 0,
    need_grad: bool = True,
) -> PairwiseResult:
    """Plain N x M definition; the gradient comes from autograd of the energy with the keys detached."""
    r_count = r0 if r_count is None else r_count
    if K is None:
        K, k_groups = Q, q_groups
    q = Q.detach().requires_grad_(need_grad)
    with torch.enable_grad():
        dist = _distances(q, K.detach(), metric)
        valid = _valid_mask(q.shape[0], K.shape[0], q_groups, k_groups, exclude_self, query_offset, Q.device)
        inside = valid & (dist < r0)
        energy = torch.where(inside, 0.5 * k * (r0 - dist) ** 2, torch.zeros_like(dist)).sum(1)
        grad = torch.autograd.grad(energy.sum(), q)[0] if need_grad else None
    dist = dist.detach()
    inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
    num_valid = valid.sum(1)
    return PairwiseResult(
        grad=grad,
        energy=energy.detach(),
        dist_min=torch.where(valid, dist, inf).amin(1) if dist.shape[1] else inf.expand(dist.shape[0]).clone(),
        dist_mean=torch.where(valid, dist, torch.zeros_like(dist)).sum(1) / num_valid,
        dist_max=torch.where(valid, dist, -inf).amax(1) if dist.shape[1] else (-inf).expand(dist.shape[0]).clone(),
        count_within=(valid & (dist < r_count)).sum(1),
        num_valid=num_valid,
    )


# --- chunked pure torch -------------------------------------------------------------------------------------


def pairwise_chunked(
    Q: torch.Tensor,
    K: Optional[torch.Tensor] = None,
    *,
    metric: str = "angle",
    r0: float = 1.4,
    k: float = 1.0,
    r_count: Optional[float] = None,
    exclude_self: bool = False,
    q_groups: Optional[torch.Tensor] = None,
    k_groups: Optional[torch.Tensor] = None,
    query_offset: int = 0,
    need_grad: bool = True,
    chunk: int = 1024,
) -> PairwiseResult:
    """Pure torch, query rows in chunks against all keys, analytic gradient: O(chunk M) memory."""
    r_count = r0 if r_count is None else r_count
    same_rows = _same_rows(Q, K, query_offset)
    if K is None:
        K, k_groups = Q, q_groups
    n = Q.shape[0]
    if metric == "angle":
        qn = Q.norm(dim=1, keepdim=True)
        Qh, Kh = Q / qn, K / K.norm(dim=1, keepdim=True)
    else:
        Qh, Kh = Q, K
        k_sq = (K * K).sum(1)
    out = {name: [] for name in ("grad", "energy", "dmin", "dsum", "dmax", "within", "valid")}
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        S = Qh[lo:hi] @ Kh.T
        if same_rows:  # a row with itself: restore the exact cosine 1 / squared norm the expansion loses
            i = torch.arange(hi - lo, device=Q.device)
            S[i, i + lo + query_offset] = 1.0 if metric == "angle" else (Qh[lo:hi] * Qh[lo:hi]).sum(1)
        if metric == "angle":
            x = (ANGLE_SCALE * S).clamp_(-1, 1)
            dist = torch.arccos(x)
        else:
            dist = ((Qh[lo:hi] * Qh[lo:hi]).sum(1, keepdim=True) + k_sq - 2 * S).clamp_(min=0).sqrt_()
            if same_rows:
                dist[i, i + lo + query_offset] = 0.0
        valid = torch.ones_like(dist, dtype=torch.bool)
        if q_groups is not None:
            valid &= q_groups[lo:hi, None] == k_groups[None, :]
        if exclude_self:
            i = torch.arange(hi - lo, device=Q.device)
            valid[i, i + lo + query_offset] = False
        inside = valid & (dist < r0)
        gap = torch.where(inside, r0 - dist, torch.zeros_like(dist))
        out["energy"].append((0.5 * k) * (gap * gap).sum(1))
        if need_grad:
            if metric == "angle":
                coef = (k * ANGLE_SCALE) * gap * torch.rsqrt(1 - x * x)
                g = coef @ Kh - (coef * S).sum(1, keepdim=True) * Qh[lo:hi]
                out["grad"].append(g / qn[lo:hi])
            else:
                coef = torch.where(inside & (dist > 0), k * gap / dist, torch.zeros_like(dist))
                out["grad"].append(coef @ Kh - coef.sum(1, keepdim=True) * Qh[lo:hi])
        inf = torch.full_like(dist, float("inf"))
        out["dmin"].append(torch.where(valid, dist, inf).amin(1))
        out["dmax"].append(torch.where(valid, dist, -inf).amax(1))
        out["dsum"].append(torch.where(valid, dist, torch.zeros_like(dist)).sum(1))
        out["within"].append((valid & (dist < r_count)).sum(1))
        out["valid"].append(valid.sum(1))
    cat = {name: torch.cat(v) if v else None for name, v in out.items()}
    if n == 0:
        empty = Q.new_zeros(0)
        cat = {name: empty for name in out}
        cat["grad"] = Q.new_zeros(0, Q.shape[1]) if need_grad else None
    return PairwiseResult(
        cat["grad"],
        cat["energy"],
        cat["dmin"],
        cat["dsum"] / cat["valid"],
        cat["dmax"],
        cat["within"].long(),
        cat["valid"].long(),
    )


# --- native ---------------------------------------------------------------------------------------------------


def _group_ranges(g: Optional[torch.Tensor], tile: int, n: int):
    if g is None:
        return None
    return [(int(g[lo : lo + tile].min()), int(g[lo : lo + tile].max())) for lo in range(0, n, tile)]


def _pairwise_native(Q, K, metric, r0, k, r_count, exclude_self, q_groups, k_groups, query_offset, need_grad, tile):
    C = _native.native_module()
    threads = _backend.num_threads()
    stream = _backend.cuda_stream(Q)
    symmetric = K is None and query_offset == 0
    same_rows = _same_rows(Q, K, query_offset)
    if K is None:
        k_groups = q_groups
    Q = Q.contiguous()
    Kx = Q if K is None else K.contiguous()
    n, m, dim = Q.shape[0], Kx.shape[0], Q.shape[1]
    dev = Q.device
    if metric == "angle":
        qn = Q.norm(dim=1)
        Qh = Q / qn[:, None]
        Kh = Qh if K is None else Kx / Kx.norm(dim=1, keepdim=True)
        q_sq = k_sq = None
    else:
        Qh, Kh = Q, Kx
        q_sq = (Q * Q).sum(1)
        k_sq = q_sq if K is None else (Kx * Kx).sum(1)
    qg = None if q_groups is None else q_groups.to(torch.int64).contiguous()
    kg = None if k_groups is None else (qg if K is None else k_groups.to(torch.int64).contiguous())

    def accumulators(size):
        return (
            torch.zeros(size, dtype=torch.float64, device=dev),
            torch.zeros(size, dtype=torch.float64, device=dev),
            torch.zeros(size, dtype=torch.float64, device=dev),
            torch.full((size,), float("inf"), dtype=torch.float32, device=dev),
            torch.full((size,), float("-inf"), dtype=torch.float32, device=dev),
            torch.zeros(size, dtype=torch.int64, device=dev),
            torch.zeros(size, dtype=torch.int64, device=dev),
        )

    acc = accumulators(n)
    F = torch.zeros(n, dim, dtype=torch.float32, device=dev) if need_grad else None
    buf = torch.empty(min(tile, n) * min(tile, m), dtype=torch.float32, device=dev)
    q_ranges, k_ranges = _group_ranges(qg, tile, n), _group_ranges(kg, tile, m)
    for bi, i0 in enumerate(range(0, n, tile)):
        i1 = min(n, i0 + tile)
        j_start = i0 if symmetric else 0
        for bj, j0 in enumerate(range(j_start, m, tile), start=j_start // tile):
            j1 = min(m, j0 + tile)
            if q_ranges is not None:
                (qa, qb), (ka, kb) = q_ranges[bi], k_ranges[bj]
                if qb < ka or kb < qa:
                    continue  # no shared group id between these row and key blocks
            diag = symmetric and i0 == j0
            both = symmetric and not diag
            S = buf[: (i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0)
            torch.mm(Qh[i0:i1], Kh[j0:j1].T, out=S)
            inside = C.pairwise_epilogue(
                _backend.to_native(S),
                None if q_sq is None else _backend.to_native(q_sq),
                None if k_sq is None else _backend.to_native(k_sq),
                None if qg is None else _backend.to_native(qg),
                None if kg is None else _backend.to_native(kg),
                tuple(_backend.to_native(a) for a in acc),
                tuple(_backend.to_native(a) for a in acc) if both else None,
                i0,
                j0,
                _METRICS[metric],
                float(r0),
                float(k),
                float(r_count),
                ANGLE_SCALE,
                bool(exclude_self),
                int(query_offset),
                both,
                same_rows,
                threads,
                stream,
            )
            if not need_grad or inside == 0:
                continue
            if inside > 0 and inside < _SPARSE_DENSITY * S.numel():
                C.pairwise_sparse_accumulate(
                    _backend.to_native(S),
                    _backend.to_native(Kh[j0:j1]),
                    _backend.to_native(Qh[i0:i1]),
                    _backend.to_native(F[i0:i1]),
                    _backend.to_native(F[j0:j1]) if both else None,
                    threads,
                )
            else:
                F[i0:i1].addmm_(S, Kh[j0:j1])
                if both:
                    F[j0:j1].addmm_(S.T, Qh[i0:i1])
    energy, dsum, coef, dmin, dmax, valid, within = acc
    grad = None
    if need_grad:
        # In place: at 100k rows each [N, d] temporary is another 200 MB.
        coef32 = coef.to(torch.float32)[:, None]
        if metric == "angle":
            grad = F.addcmul_(coef32, Qh, value=-1).div_(qn[:, None])
        else:
            grad = F.addcmul_(coef32, Q, value=-1)
    return PairwiseResult(grad, energy.to(torch.float32), dmin, (dsum / valid).to(torch.float32), dmax, within, valid)


def pairwise(
    Q: torch.Tensor,
    K: Optional[torch.Tensor] = None,
    *,
    metric: str = "angle",
    r0: float = 1.4,
    k: float = 1.0,
    r_count: Optional[float] = None,
    exclude_self: bool = False,
    q_groups: Optional[torch.Tensor] = None,
    k_groups: Optional[torch.Tensor] = None,
    query_offset: int = 0,
    need_grad: bool = True,
    tile: int = 2048,
    impl: Optional[str] = None,
) -> PairwiseResult:
    """Soft-sphere repulsion gradient, energies and per-row distance statistics (see the module docstring).

    Args:
        Q: [N, d] query rows. K: [M, d] key rows, or None for the queries themselves.
        metric: "angle" (radians between rows) or "l2".
        r0, k: cutoff radius and stiffness of the potential k/2 (r0 - dist)^2.
        r_count: radius for ``count_within`` (default r0).
        exclude_self: skip the pair (i, i + query_offset).
        q_groups, k_groups: integer group ids; only pairs in the same group interact and count. With K=None give
            q_groups only. Sorted ids let the native path skip whole tiles.
        query_offset: index in K of the first query row, when Q is a slice of K (batched identity updates).
        need_grad: also return dU/dQ (keys held fixed).
        tile: native tile side (rows and keys).
        impl: "native" (float32), "reference" (the plain N x M computation), or None.
    """
    r_count = r0 if r_count is None else r_count
    _validate(Q, K, metric, r0, k, r_count, q_groups, k_groups, query_offset)
    if K is None and k_groups is not None:
        raise ValueError("pairwise: with K=None give q_groups only")
    if tile < 1:
        raise ValueError(f"pairwise: tile must be >= 1, got {tile}")
    choice = _backend.choose_impl("pairwise", impl, Q, (torch.float32,))
    args = dict(
        metric=metric,
        r0=r0,
        k=k,
        r_count=r_count,
        exclude_self=exclude_self,
        q_groups=q_groups,
        k_groups=k_groups,
        query_offset=query_offset,
        need_grad=need_grad,
    )
    if choice == "reference":
        return pairwise_reference(Q, K, **args)
    out = _pairwise_op(
        Q.detach(),
        None if K is None else K.detach(),
        q_groups,
        k_groups,
        _METRICS[metric],
        float(r0),
        float(k),
        float(r_count),
        bool(exclude_self),
        int(query_offset),
        bool(need_grad),
        int(tile),
    )
    return PairwiseResult(out[0] if need_grad else None, *out[1:])


# The whole tiled computation is one custom op (with a fake kernel), so torch.compile traces through it. It
# returns gradients itself and is not differentiable.
@torch.library.custom_op("synthcore::pairwise", mutates_args=())
def _pairwise_op(
    Q: torch.Tensor,
    K: Optional[torch.Tensor],
    q_groups: Optional[torch.Tensor],
    k_groups: Optional[torch.Tensor],
    metric: int,
    r0: float,
    k: float,
    r_count: float,
    exclude_self: bool,
    query_offset: int,
    need_grad: bool,
    tile: int,
) -> List[torch.Tensor]:
    name = "angle" if metric == 0 else "l2"
    with torch.no_grad():
        res = _pairwise_native(
            Q, K, name, r0, k, r_count, exclude_self, q_groups, k_groups, query_offset, need_grad, tile
        )
    grad = res.grad if need_grad else Q.new_empty(0, Q.shape[1])
    return [grad, *res[1:]]


@_pairwise_op.register_fake
def _(Q, K, q_groups, k_groups, metric, r0, k, r_count, exclude_self, query_offset, need_grad, tile):
    n = Q.shape[0]
    grad = Q.new_empty(n if need_grad else 0, Q.shape[1])
    return [grad] + [Q.new_empty(n) for _ in range(4)] + [Q.new_empty(n, dtype=torch.int64) for _ in range(2)]


def pairwise_stats(
    X: torch.Tensor,
    *,
    metric: str = "angle",
    threshold: float = 1.4,
    groups: Optional[torch.Tensor] = None,
    impl: Optional[str] = None,
) -> dict:
    """Statistics over all pairs i != j of the rows of X (within groups, if given): min, mean and max distance,
    and the fraction of pairs at distance >= threshold. Every row takes part (no rows are dropped)."""
    res = pairwise(
        X,
        None,
        metric=metric,
        r0=0.0,
        r_count=threshold,
        exclude_self=True,
        q_groups=groups,
        need_grad=False,
        impl=impl,
    )
    return pairwise_summary(res)


def pairwise_summary(res: PairwiseResult) -> dict:
    """Whole-set min, mean and max distance over the valid pairs of a :func:`pairwise` result, and the fraction
    at or beyond its ``r_count`` (what :func:`pairwise_stats` returns; callers that already hold the result of a
    force computation reduce it instead of computing every distance again)."""
    pairs = int(res.num_valid.sum())
    if pairs == 0:
        return {"min": float("nan"), "mean": float("nan"), "max": float("nan"), "frac_beyond": float("nan"), "pairs": 0}
    valid_rows = res.num_valid > 0
    total = float((res.dist_mean[valid_rows].double() * res.num_valid[valid_rows].double()).sum())
    return {
        "min": float(res.dist_min.min()),
        "mean": total / pairs,
        "max": float(res.dist_max.max()),
        "frac_beyond": 1.0 - float(res.count_within.sum()) / pairs,
        "pairs": pairs,
    }
