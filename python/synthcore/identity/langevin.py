"""Langevin reference identities: W-space particles that repel each other in identity (embedding) space.

N latents ``w_i`` start at ``mapping(z_i, psi)``. Each iteration t:

1. embeddings ``e_j = E(crop(G(w_j)))`` of every latent, without gradients (the keys of this step);
2. interaction force ``F_int,i = -dU_i/dw_i`` with ``U_i = sum_{j != i} k/2 (r0 - d_ij)^2 [d_ij < r0]``, ``d_ij``
   the angle between ``e_i`` (with gradient) and the fixed key ``e_j``; plus the same soft-sphere term against an
   optional fixed set of external embeddings (e.g. real faces, to keep synthetic identities away from them);
3. confinement ``k_l (w_avg - w_i)``; time step fixed or adaptive,
   ``dt = tau mu min_{i<j} |w_i - w_j| / max_i |F_i|``;
4. Euler-Maruyama: ``w <- w + dt/mu F + sqrt(dt)/mu eta xi`` (``driver.euler_maruyama``, the arithmetic of
   ``synthcore.ops.langevin_update``; xi keyed by (seed, t, i), drawn once for the update and the statistics).

After ``iterations`` steps a last pass computes the final embeddings and statistics. The loop, checkpoints,
resume, statistics rows and progress are those of the step driver shared with Dispersion (``driver.py``).

**Batching is exact.** Every ``U_i`` uses the other identities' embeddings of step 1, held fixed, and each
embedding depends only on its own latent (networks in eval mode, constant synthesis noise). Hence for a batch B,
``d/dw_i sum_{b in B} U_b = dU_i/dw_i``: one backward pass per batch gives every identity's force, the same as the
per-identity loop of the published code (``interaction_forces_per_identity``, kept as the reference and tested
against the batched path).

When the autograd graphs of all N identities fit in memory (``hold_graphs``, by default one batch), the
with-gradient forwards also provide the keys, so a step costs one forward pass instead of two, with the same
maths.

**Single-forward variant** (``single_forward=True``, opt-in): the keys of step t are the embeddings computed by
the with-gradient pass of step t-1 instead of a separate no-gradient pass over ``w_t``. It saves one forward pass
per identity per step, but it is a different discretisation (each identity sees the others one step late), so it
is never the default.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch

from synthcore.identity import driver
from synthcore.identity.metric import distance_matrix, require_embedder_metric
from synthcore.identity.pipeline import FacePipeline, batches
from synthcore.identity.seeds import derive_seed, normal_rows
from synthcore.identity.stats import distance_stats, latent_pairs
from synthcore.ops import PairwiseResult, pairwise
from synthcore.progress import Progress

__all__ = [
    "LangevinConfig",
    "LangevinResult",
    "initial_latents",
    "interaction_forces",
    "interaction_forces_per_identity",
    "langevin_iteration",
    "run_langevin",
]


@dataclass(frozen=True)
class LangevinConfig:
    """Hyper-parameters. Defaults are those of the published 10k-identity run (identity_diffusion.md §3)."""

    num_identities: int = 100
    iterations: int = 100
    k: float = 1.0  # repulsion stiffness
    r0: float = 1.4  # repulsion radius (in the metric's unit; the ArcFace-type default: identity.metric)
    dt: Optional[float] = None  # fixed time step; None = adaptive
    tau: float = 0.3  # adaptive step: largest move / closest latent pair distance
    mu: float = 1.0  # viscosity
    eta: float = 0.01  # random force scale
    k_l: float = 0.1  # confinement to w_avg
    truncation_psi: float = 0.7  # of the initial latents
    ict: float = 1.4  # inter-class threshold of the prop_ict statistic (in the metric's unit)
    external_r0: Optional[float] = None  # repulsion radius from external embeddings (default r0)
    single_forward: bool = False
    seed: int = 0
    metric: str = "angle"  # identity distance of the embedder: "angle" (ArcFace-type) or "l2" (dlib)

    def __post_init__(self) -> None:
        if self.num_identities < 2:
            raise ValueError(f"Langevin needs at least 2 identities, got {self.num_identities}")
        driver.check_step_settings(self, ("k", "r0", "tau", "eta", "k_l", "ict"))
        if self.dt is None and self.tau <= 0:
            raise ValueError("the adaptive time step needs tau > 0")
        if self.external_r0 is not None and not (math.isfinite(self.external_r0) and self.external_r0 >= 0):
            raise ValueError(f"external_r0 must be >= 0, got {self.external_r0}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LangevinResult:
    w: torch.Tensor  # [N, w_dim] final latents
    embeddings: torch.Tensor  # [N, e] raw embeddings of the final latents
    c: Optional[torch.Tensor]  # [N, c_dim] labels drawn for a conditional generator, else None
    stats: List[Dict[str, float]]  # one row per iteration, iterations + 1 rows


def initial_latents(
    pipe: FacePipeline, n: int, seed: int, truncation_psi: float, row_offset: int = 0
) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """(z, c, w) for identities ``row_offset ..`` of a run: z ~ N(0, I) keyed by (seed, row); for a conditional
    generator a class drawn uniformly per identity (one-hot c), else c is None; w = mapping(z, c, psi)."""
    z = normal_rows(n, pipe.z_dim, seed, "z", row_offset, pipe.device)
    c = None
    if pipe.c_dim > 0:
        u = normal_rows(n, 1, seed, "class", row_offset, pipe.device)[:, 0].double()
        cls = (0.5 * (1 + torch.erf(u / math.sqrt(2))) * pipe.c_dim).long().clamp_(0, pipe.c_dim - 1)
        c = torch.nn.functional.one_hot(cls, pipe.c_dim).float()
    return z, c, pipe.map(z, c, truncation_psi)


def interaction_forces(
    pipe: FacePipeline,
    w: torch.Tensor,
    keys: Optional[torch.Tensor],
    cfg: LangevinConfig,
    batch: int,
    external: Optional[torch.Tensor] = None,
    impl: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batched interaction forces -dU_i/dw_i [N, w_dim] and the with-gradient embeddings [N, e] of ``w``.

    ``keys`` [N, e]: the fixed embeddings the identities repel from (row i is identity i itself, skipped).
    ``keys=None``: the keys are the embeddings of ``w`` themselves, taken from the with-gradient forward passes:
    every batch's forward runs first with its autograd graph held, then each batch is pulled back (memory: the
    graphs of all N rows at once).
    """
    ext_r0 = cfg.r0 if cfg.external_r0 is None else cfg.external_r0

    def embedding_grad(e: torch.Tensor, keys: torch.Tensor, lo: int) -> torch.Tensor:
        g = pairwise(e, keys, metric=cfg.metric, r0=cfg.r0, k=cfg.k, exclude_self=True, query_offset=lo, impl=impl).grad
        if external is not None and external.shape[0]:
            g = g + pairwise(e, external, metric=cfg.metric, r0=ext_r0, k=cfg.k, impl=impl).grad
        return g

    forces = torch.empty_like(w)
    spans = list(batches(w.shape[0], batch))
    if keys is None:
        held = [pipe.forward_with_graph(w[lo:hi]) for lo, hi in spans]
        embs = torch.cat([e.detach().float() for _, e in held]).to(w.device)
        for (lo, hi), (leaf, e) in zip(spans, held):
            forces[lo:hi] = -pipe.pull_back(leaf, e, embedding_grad(embs[lo:hi], embs, lo))
            if progress is not None:
                progress.update(hi - lo)
        return forces, embs
    embs = None
    for lo, hi in spans:
        e, g = pipe.backprop(w[lo:hi], lambda e, lo=lo: embedding_grad(e, keys, lo))
        if embs is None:
            embs = torch.empty(w.shape[0], e.shape[1], device=w.device)
        forces[lo:hi] = -g
        embs[lo:hi] = e
        if progress is not None:
            progress.update(hi - lo)
    return forces, embs


def interaction_forces_per_identity(
    pipe: FacePipeline,
    w: torch.Tensor,
    keys: torch.Tensor,
    cfg: LangevinConfig,
    external: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The published algorithm's force loop, for reference: one identity at a time (batch-1 gradients), the
    potential spelled out in plain torch over the other identities' fixed embeddings. Slow by construction."""
    ext_r0 = cfg.r0 if cfg.external_r0 is None else cfg.external_r0
    out = torch.empty_like(w)
    for i in range(w.shape[0]):
        wi = w[i : i + 1].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            ei = pipe.embed(wi)
            d = distance_matrix(ei, torch.cat([keys[:i], keys[i + 1 :]]), cfg.metric)
            u = torch.where(d < cfg.r0, 0.5 * cfg.k * (cfg.r0 - d) ** 2, torch.zeros_like(d)).sum()
            if external is not None and external.shape[0]:
                dc = distance_matrix(ei, external, cfg.metric)
                u = u + torch.where(dc < ext_r0, 0.5 * cfg.k * (ext_r0 - dc) ** 2, torch.zeros_like(dc)).sum()
            (g,) = torch.autograd.grad(u, wi)
        out[i] = -g[0]
    return out


def _embedding_row(
    e: torch.Tensor,
    w: torch.Tensor,
    w_avg: torch.Tensor,
    cfg: LangevinConfig,
    external: Optional[torch.Tensor],
    impl: Optional[str],
    latent: Optional[PairwiseResult] = None,
) -> Dict[str, float]:
    row = distance_stats(e, w, w_avg, cfg.ict, impl=impl, latent=latent, metric=cfg.metric)
    if external is not None and external.shape[0]:
        ext = pairwise(e, external, metric=cfg.metric, r0=0.0, need_grad=False, impl=impl)
        row["ext_dist_min"] = float(ext.dist_min.min())
    return row


def _adaptive_dt(d_min: float, drift: torch.Tensor, cfg: LangevinConfig) -> float:
    """tau mu min_{i<j} |w_i - w_j| / max_i |F_i|: the largest move is a fraction tau of the closest latent pair's
    distance (``ops.adaptive_timestep``, with the closest distance the step's statistics measured already)."""
    f_max = float(drift.detach().norm(dim=1).max())
    if f_max == 0:
        raise ValueError("adaptive_timestep: every force is zero, the step is unbounded")
    return cfg.tau * cfg.mu * d_min / f_max


def langevin_iteration(
    pipe: FacePipeline,
    w: torch.Tensor,
    t: int,
    cfg: LangevinConfig,
    *,
    batch: int,
    keys: Optional[torch.Tensor] = None,
    external: Optional[torch.Tensor] = None,
    impl: Optional[str] = None,
    progress: Optional[Progress] = None,
    per_identity: bool = False,
    hold_graphs: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, float], Optional[torch.Tensor]]:
    """Step t of Langevin from latents ``w`` = w_t [N, w_dim] (all forwards, backwards and the update).

    ``hold_graphs``: how many identities' autograd graphs may be held in memory at once (default ``batch``).
    When all N fit, the with-gradient forward passes also provide the keys and the step needs no separate
    no-gradient pass (same maths, one forward per identity instead of two).

    Returns (w_{t+1}, embeddings of w_t, stats row of step t, keys for step t+1). ``keys`` is only used by the
    single-forward variant (the previous step's with-gradient embeddings; None on its first step).
    ``per_identity=True`` computes the forces with the published per-identity loop instead of batches (the
    baseline of ``benchmarks/bench_langevin.py``; same maths).
    """
    n, dev = w.shape[0], w.device
    w_avg = pipe.w_avg.to(dev)
    if cfg.single_forward:
        if keys is None:  # first step of the run: keys of w_t itself
            keys = pipe.embed_batched(w, batch, progress)
        f_int, e = interaction_forces(pipe, w, keys, cfg, batch, external, impl, progress)
    elif n <= (batch if hold_graphs is None else hold_graphs) and not per_identity:
        # Every identity's graph fits in memory: the with-gradient forwards give the keys too (same maths).
        f_int, e = interaction_forces(pipe, w, None, cfg, batch, external, impl, progress)
    else:
        e = pipe.embed_batched(w, batch, progress)
        if per_identity:
            f_int = interaction_forces_per_identity(pipe, w, e, cfg, external)
            if progress is not None:
                progress.update(n)
        else:
            f_int, _ = interaction_forces(pipe, w, e, cfg, batch, external, impl, progress)
    # The W distances are measured once: for the statistics and for the adaptive step's closest pair.
    lat = latent_pairs(w, impl=impl)
    row = _embedding_row(e, w, w_avg, cfg, external, impl, lat)
    family = pipe.generator
    f_lat = family.confine(w, w_avg, cfg.k_l)
    drift = f_int + f_lat
    dt = cfg.dt if cfg.dt is not None else _adaptive_dt(float(lat.dist_min.min()), drift, cfg)
    w_next, xi = driver.euler_maruyama(
        w, f_int, w_avg, dt, mu=cfg.mu, k_l=cfg.k_l, eta=cfg.eta, seed=derive_seed(cfg.seed, "langevin"), step=t,
        runs=[(0, n, 0)], impl=impl, confinement=f_lat,
    )  # fmt: skip
    # Families whose faces live on a shell of the latent space (the DCGAN's Gaussian z) keep each latent's radius,
    # so identities move only across the shell; StyleGAN2 returns w_next unchanged.
    w_next = family.project(w_next, w.norm(dim=1))
    driver.add_force_stats(row, interaction=f_int, latent=f_lat, noise=cfg.eta * xi, total=drift, timestep=dt)
    return w_next, e, row, (e if cfg.single_forward else None)


class _Langevin(driver.StepAlgorithm):
    """Langevin's steps for :func:`drive`: carries the labels c and the single-forward variant's keys."""

    name = label = "langevin"

    def __init__(
        self,
        pipe: FacePipeline,
        cfg: LangevinConfig,
        batch: int,
        external: Optional[torch.Tensor],
        impl: Optional[str],
        hold_graphs: Optional[int],
    ) -> None:
        require_embedder_metric(cfg.metric, pipe.identity_metric, "the Langevin config")
        self.pipe, self.cfg, self.batch = pipe, cfg, batch
        self.external, self.impl, self.hold_graphs = external, impl, hold_graphs
        self.c: Optional[torch.Tensor] = None
        self.keys: Optional[torch.Tensor] = None

    def initial(self) -> torch.Tensor:
        _, self.c, w = initial_latents(self.pipe, self.cfg.num_identities, self.cfg.seed, self.cfg.truncation_psi)
        return w

    def restore(self, state: Dict[str, Any]) -> None:
        n, w_dim, dev = self.cfg.num_identities, self.pipe.w_dim, self.pipe.device
        if state["w"].shape != (n, w_dim):
            raise ValueError(f"checkpoint latents {list(state['w'].shape)} do not fit this generator (w_dim {w_dim})")
        self.c = None if state.get("c") is None else state["c"].to(dev)
        self.keys = None if state.get("keys") is None else state["keys"].to(dev)

    def carry(self) -> Dict[str, Any]:
        return {
            "c": None if self.c is None else self.c.cpu(),
            "keys": None if self.keys is None else self.keys.cpu(),
        }

    def network_rows(self, start: int) -> int:
        # Two passes per step (one with the single-forward variant or all graphs held), one at the end, and
        # the single-forward variant's first keys.
        cfg, n = self.cfg, self.cfg.num_identities
        remaining = cfg.iterations - start
        first_keys = int(cfg.single_forward and self.keys is None and remaining > 0)
        one_pass = cfg.single_forward or n <= (self.batch if self.hold_graphs is None else self.hold_graphs)
        return n * (remaining * (1 if one_pass else 2) + 1 + first_keys)

    def step(self, w: torch.Tensor, t: int, bar: Progress) -> Tuple[torch.Tensor, Dict[str, float]]:
        w, _, row, self.keys = langevin_iteration(
            self.pipe, w, t, self.cfg, batch=self.batch, keys=self.keys, external=self.external, impl=self.impl,
            progress=bar, hold_graphs=self.hold_graphs,
        )  # fmt: skip
        return w, row

    def embedding_row(self, t: int, e: torch.Tensor, w: torch.Tensor) -> Dict[str, float]:
        return _embedding_row(e, w, self.pipe.w_avg.to(w.device), self.cfg, self.external, self.impl)


def run_langevin(
    pipe: FacePipeline,
    cfg: LangevinConfig,
    *,
    batch: int = 16,
    external: Optional[torch.Tensor] = None,
    state: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[driver.CheckpointFn] = None,
    checkpoint_every: int = 10,
    impl: Optional[str] = None,
    progress: bool = True,
    on_iteration: Optional[driver.IterationFn] = None,
    hold_graphs: Optional[int] = None,
) -> LangevinResult:
    """Run (or resume) Langevin. See the module docstring for the algorithm.

    Args:
        pipe: generator + crop + embedder.
        cfg: hyper-parameters, identity count and seed.
        batch: identities per forward/backward pass (changes nothing but speed and memory).
        external: [M, e] fixed embeddings to repel from (e.g. of real faces), or None.
        state: a checkpoint dict from ``checkpoint`` to resume from (must come from the same ``cfg``).
        checkpoint: ``checkpoint(step, state)`` is called after every ``checkpoint_every`` steps with everything
            needed to resume bit-exactly (a dict of tensors, numbers and strings).
        impl: op implementation for pairwise, the noise and synthesis.
        progress: show progress bars on stderr.
        on_iteration: called with (iteration, stats row) after each iteration.
        hold_graphs: identities whose autograd graphs may be held at once (default ``batch``); when all N fit, a
            step runs one forward pass per identity instead of two, with the same result.
    """
    if external is not None:
        external = external.detach().float().to(pipe.device)
        if external.ndim != 2 or external.shape[1] != pipe._embedding_size():
            raise ValueError(
                f"external embeddings must be [M, {pipe._embedding_size()}] (the embedder's size), "
                f"got {list(external.shape)}"
            )
    algo = _Langevin(pipe, cfg, batch, external, impl, hold_graphs)
    w, e, stats = driver.drive(
        algo, state=state, checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=progress,
        on_iteration=on_iteration,
    )  # fmt: skip
    return LangevinResult(w=w, embeddings=e, c=algo.c, stats=stats)
