"""Baseline reference-identity samplers: ``random`` (plain sampling) and ``reject`` (rejection sampling).

``random``: identity i is ``w_i = mapping(z_i, psi)``, z_i keyed by (seed, i); nothing keeps identities apart.

``reject``: candidates k = 0, 1, 2, ... (latent k drawn as above) are examined in order, and a candidate is accepted
when its embedding is at least ``ict`` radians from every identity accepted before it. Candidates are embedded
in batches, but acceptance is decided one candidate at a time in candidate order, so the result does not depend on
the batch size (beyond float rounding of the embeddings). It stops after ``num_identities`` acceptances, or with
an error after ``max_candidates``.
"""

import math
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from synthcore.identity.langevin import initial_latents
from synthcore.identity.metric import check_metric, distance_matrix
from synthcore.identity.pipeline import FacePipeline
from synthcore.ops import pairwise
from synthcore.progress import Progress

__all__ = ["RejectExhausted", "ReferenceSet", "sample_random", "sample_reject"]


class RejectExhausted(RuntimeError, ValueError):
    """``sample_reject`` ran out of candidates: the settings (``ict``, ``max_candidates``) ask too much. A
    ``ValueError`` too, so the command line reports it as a bad option rather than a bug."""


@dataclass
class ReferenceSet:
    z: torch.Tensor  # [N, z_dim]
    c: Optional[torch.Tensor]  # [N, c_dim] or None
    w: torch.Tensor  # [N, w_dim]
    embeddings: torch.Tensor  # [N, e] raw
    candidate: torch.Tensor  # [N] int64 index of the candidate each identity came from (its z row)
    stats: List[Dict[str, float]]


def sample_random(
    pipe: FacePipeline,
    num_identities: int,
    seed: int = 0,
    truncation_psi: float = 0.7,
    batch: int = 16,
    progress: bool = True,
) -> ReferenceSet:
    """``num_identities`` independent identities (see the module docstring)."""
    if num_identities < 1:
        raise ValueError(f"num_identities must be >= 1, got {num_identities}")
    z, c, w = initial_latents(pipe, num_identities, seed, truncation_psi)
    with Progress(num_identities, "random", enabled=progress) as bar:
        e = pipe.embed_batched(w, batch, bar)
    return ReferenceSet(z, c, w, e, torch.arange(num_identities), [])


def sample_reject(
    pipe: FacePipeline,
    num_identities: int,
    ict: float = 1.4,
    seed: int = 0,
    truncation_psi: float = 0.7,
    batch: int = 16,
    max_candidates: Optional[int] = None,
    impl: Optional[str] = None,
    progress: bool = True,
    metric: str = "angle",
) -> ReferenceSet:
    """Rejection sampling: every pair of accepted identities is at least ``ict`` apart (``metric``: the
    embedder's identity distance, radians for "angle"; see ``identity.metric``).

    ``max_candidates`` (default 1000 per identity) bounds the search; reaching it raises RuntimeError saying how
    many were accepted. Stats rows, one per accepted identity: ``candidates`` tried so far and ``time_total``.
    """
    if num_identities < 1:
        raise ValueError(f"num_identities must be >= 1, got {num_identities}")
    check_metric(metric)
    if metric == "angle" and not (math.isfinite(ict) and 0 <= ict <= math.pi):
        raise ValueError(f"ict must be an angle in [0, pi], got {ict}")
    if not (math.isfinite(ict) and ict >= 0):
        raise ValueError(f"ict must be a finite distance >= 0, got {ict}")
    limit = 1000 * num_identities if max_candidates is None else int(max_candidates)
    zs, cs, ws, es, picked, stats = [], [], [], [], [], []
    accepted: Optional[torch.Tensor] = None
    t0, tried = time.perf_counter(), 0
    with Progress(num_identities, "reject", enabled=progress) as bar:
        while len(picked) < num_identities:
            if tried >= limit:
                raise RejectExhausted(
                    f"reject: only {len(picked)} of {num_identities} identities found in {limit} candidates at "
                    f"ict={ict} rad; lower --ict or raise --max-candidates"
                )
            n = min(batch, limit - tried)
            z, c, w = initial_latents(pipe, n, seed, truncation_psi, row_offset=tried)
            e = pipe.embed_batched(w, batch)
            # Distance of each candidate to the identities accepted before this batch, then in-batch order.
            if accepted is None:
                to_prev = torch.full((n,), math.inf, device=e.device)
            else:
                to_prev = pairwise(e, accepted, metric=metric, r0=0.0, need_grad=False, impl=impl).dist_min
            within = distance_matrix(e, e, metric)
            taken: List[int] = []
            for k in range(n):
                if len(picked) + len(taken) == num_identities:
                    break
                if float(to_prev[k]) >= ict and all(float(within[k, j]) >= ict for j in taken):
                    taken.append(k)
                    stats.append({"candidates": float(tried + k + 1), "time_total": time.perf_counter() - t0})
            if taken:
                idx = torch.tensor(taken, device=e.device)
                zs.append(z[idx])
                cs.append(None if c is None else c[idx])
                ws.append(w[idx])
                es.append(e[idx])
                picked += [tried + k for k in taken]
                accepted = torch.cat(es)
                bar.update(len(taken))
            tried += n
    c_all = None if cs[0] is None else torch.cat(cs)
    return ReferenceSet(torch.cat(zs), c_all, torch.cat(ws), torch.cat(es), torch.tensor(picked), stats)
