"""Dispersion and DisCo: variations of each reference identity, spread in W while staying the same identity.

For reference identity i with latent ``w_ref,i`` and embedding ``e_ref,i``, A variations ``w_ia`` start at
``w_ref,i + sigma0 xi_ia`` (DisCo adds ``sum_d u_iad D_d``, u ~ U(-1/2, 1/2), D_d the latent-direction offsets of
``directions.py``). Each of ``iterations`` steps applies:

- embedding pull-back, through generator and embedder: ``U_e = sum_a k_e/4 d(e_ia, e_ref,i)^2`` (d the
  embedder's identity distance: angle, or Euclidean for dlib; ``identity.metric``);
- latent soft-sphere repulsion among the A variations of an identity, in W:
  ``U_w = sum_{a != b} k_w/4 (r_w - |w_ia - w_ib|)^2 [|w_ia - w_ib| < r_w]`` (ordered pairs; its gradient is the
  ``synthcore.ops.pairwise`` l2 gradient with stiffness k_w, restricted to each identity's group);
- confinement to the mean latent ``k_g (w_avg - w_ia)``;
- the Euler-Maruyama update ``w <- w + dt/mu F + sqrt(dt)/mu eta xi`` (``driver.euler_maruyama``, noise keyed
  by (seed, step, global row = identity * A + a)).

The published code adds its random force as ``dt/mu eta xi`` (not scaled by sqrt(dt), unlike its Langevin);
synthcore uses the consistent sqrt(dt) scaling, and its default ``eta = 0.05 sqrt(0.05)`` makes the per-step noise
at the default dt = 0.05 equal to the published runs'. With ``dt=None`` the step is adaptive per identity:
``tau mu min_{a<b} |w_ia - w_ib| / max_a |F_ia|``.

Every identity's trajectory depends only on its own rows, so batching over rows is exact. The loop, checkpoints
(the whole state every K steps, for a bit-exact resume), statistics rows and progress are those of the step
driver shared with Langevin (``driver.py``). The W repulsion's pairwise pass also gives the step's W-distance
statistics and the adaptive step's closest pairs (measured once).
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from synthcore.identity import driver
from synthcore.identity.metric import require_embedder_metric, row_distance, squared_distance
from synthcore.identity.pipeline import FacePipeline, batches
from synthcore.identity.seeds import derive_seed, normal_rows, uniform_rows
from synthcore.identity.stats import distance_stats
from synthcore.ops import PairwiseResult, pairwise
from synthcore.progress import Progress

__all__ = [
    "DispersionConfig",
    "DispersionResult",
    "dispersion_iteration",
    "embedding_forces",
    "initial_variations",
    "latent_repulsion",
    "run_dispersion",
    "variation_labels",
]


@dataclass(frozen=True)
class DispersionConfig:
    """Hyper-parameters. Defaults: the published 10k x 64 run (identity_diffusion.md §4), with the noise rescaled
    to the consistent sqrt(dt) update (same noise per step at the default dt)."""

    num_variations: int = 64
    iterations: int = 20
    k_e: float = 20.0  # embedding pull-back stiffness
    k_w: float = 1.0  # latent repulsion stiffness
    r_w: float = 12.0  # latent repulsion radius (W-space L2)
    k_g: float = 1.0  # confinement to w_avg
    eta: float = 0.05 * math.sqrt(0.05)  # random force scale (noise = sqrt(dt)/mu eta xi)
    mu: float = 1.0
    dt: Optional[float] = 0.05  # None = adaptive per identity
    tau: float = 0.3
    sigma0: float = 0.2  # initial spread around the reference latent
    ict: float = 1.4  # threshold of the prop_ict statistic (in the metric's unit)
    disco: bool = False  # DisCo initial offsets (needs directions)
    pose_scale: float = 1.0
    illumination_scale: float = 1.0
    expression_scale: float = 1.0
    seed: int = 0
    metric: str = "angle"  # identity distance of the embedder: "angle" (ArcFace-type) or "l2" (dlib)

    def __post_init__(self) -> None:
        driver.check_step_settings(self, ("k_e", "k_w", "r_w", "k_g", "eta", "tau", "sigma0", "ict"))
        if self.num_variations < 1:
            raise ValueError(f"num_variations must be >= 1, got {self.num_variations}")
        for name in ("pose_scale", "illumination_scale", "expression_scale"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if self.dt is None and (self.tau <= 0 or self.num_variations < 2):
            raise ValueError("the adaptive time step needs tau > 0 and at least 2 variations per identity")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def scales(self) -> Dict[str, float]:
        return {"pose": self.pose_scale, "illumination": self.illumination_scale, "expression": self.expression_scale}


@dataclass
class DispersionResult:
    w: torch.Tensor  # [N * A, w_dim], identity-major
    embeddings: torch.Tensor  # [N * A, e] raw embeddings of the final latents
    identity: torch.Tensor  # [N * A] int64 identity ids
    variation: torch.Tensor  # [N * A] int64 variation index a
    stats: List[Dict[str, float]]  # iterations + 1 rows

    @property
    def labels(self) -> List[str]:
        return variation_labels(self.variation)


def variation_labels(variation: torch.Tensor) -> List[str]:
    """Sample labels of variations: ``augmentation_<a>``, as in the Idiap data packages."""
    return [f"augmentation_{int(a)}" for a in variation.tolist()]


def _runs(ids: torch.Tensor, per_id: int) -> Iterator[Tuple[int, int, int]]:
    """(row_lo, row_hi, global_row_offset) for each maximal run of consecutive identity ids."""
    ids = ids.tolist()
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[i - 1] + 1:
            yield start * per_id, i * per_id, ids[start] * per_id
            start = i


def initial_variations(
    w_ref: torch.Tensor,
    ids: torch.Tensor,
    cfg: DispersionConfig,
    offsets: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Initial latents [N * A, w_dim]: ``w_ref + sigma0 xi`` (+ DisCo ``u @ offsets``), keyed by global row."""
    a, dim, dev = cfg.num_variations, w_ref.shape[1], w_ref.device
    w = w_ref.repeat_interleave(a, dim=0).clone()
    for lo, hi, off in _runs(ids, a):
        w[lo:hi] += cfg.sigma0 * normal_rows(hi - lo, dim, cfg.seed, "dispersion-init", off, dev)
        if offsets is not None:
            u = uniform_rows(hi - lo, offsets.shape[0], cfg.seed, "disco-coefficients", row_offset=off, device=dev)
            w[lo:hi] += u @ offsets.to(dev)
    return w


def embedding_forces(
    pipe: FacePipeline,
    w: torch.Tensor,
    e_ref_rows: torch.Tensor,
    k_e: float,
    batch: int,
    progress: Optional[Progress] = None,
    metric: str = "angle",
) -> Tuple[torch.Tensor, torch.Tensor]:
    """-dU_e/dw [R, w_dim] of the pull towards each row's reference embedding, and the embeddings of ``w``."""
    forces = torch.empty_like(w)
    embs = torch.empty(w.shape[0], e_ref_rows.shape[1], device=w.device)
    for lo, hi in batches(w.shape[0], batch):
        ref = e_ref_rows[lo:hi]
        e, g = pipe.backprop_potential(
            w[lo:hi], lambda e, ref=ref: (0.25 * k_e * squared_distance(e, ref, metric)).sum()
        )
        forces[lo:hi], embs[lo:hi] = -g, e
        if progress is not None:
            progress.update(hi - lo)
    return forces, embs


def _latent_pairs(
    w: torch.Tensor, groups: torch.Tensor, k_w: float, r_w: float, impl: Optional[str] = None
) -> PairwiseResult:
    return pairwise(w, None, metric="l2", r0=r_w, k=k_w, exclude_self=True, q_groups=groups, impl=impl)


def latent_repulsion(
    w: torch.Tensor, groups: torch.Tensor, k_w: float, r_w: float, impl: Optional[str] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(-dU_w/dw [R, w_dim], per-row minimum intra-group W distance [R]) of the soft-sphere repulsion in W."""
    res = _latent_pairs(w, groups, k_w, r_w, impl)
    return -res.grad, res.dist_min


def _adaptive_dt(d_min: torch.Tensor, drift: torch.Tensor, a: int, cfg: DispersionConfig) -> torch.Tensor:
    """Per-identity step [N]: tau mu (closest pair of its variations) / (largest force on them)."""
    dmin = d_min.view(-1, a).amin(1).double()
    fmax = drift.double().norm(dim=1).view(-1, a).amax(1)
    if bool((fmax == 0).any()):
        raise ValueError("adaptive time step: every force on an identity's variations is zero")
    return cfg.tau * cfg.mu * dmin / fmax


def _embedding_row(
    e: torch.Tensor,
    w: torch.Tensor,
    w_avg: torch.Tensor,
    e_ref_rows: torch.Tensor,
    groups: torch.Tensor,
    cfg: DispersionConfig,
    impl: Optional[str],
    latent: Optional[PairwiseResult] = None,
) -> Dict[str, float]:
    """Intra-identity statistics, and the distances to each row's reference (``refd_*``)."""
    row = distance_stats(e, w, w_avg, cfg.ict, groups=groups, impl=impl, latent=latent, metric=cfg.metric)
    ref_d = row_distance(e, e_ref_rows, cfg.metric).double()
    row.update({"refd_min": float(ref_d.min()), "refd_avg": float(ref_d.mean()), "refd_max": float(ref_d.max())})
    return row


def dispersion_iteration(
    pipe: FacePipeline,
    w: torch.Tensor,
    t: int,
    cfg: DispersionConfig,
    e_ref: torch.Tensor,
    identity_ids: torch.Tensor,
    *,
    batch: int,
    impl: Optional[str] = None,
    progress: Optional[Progress] = None,
    per_identity: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, float]]:
    """Step t of Dispersion from latents ``w`` [N * A, w_dim] (identity-major, float32) with reference embeddings
    ``e_ref`` [N, e] and identity ids [N]. Returns (w_{t+1}, embeddings of w_t, stats row).

    ``per_identity=True`` runs the networks one identity at a time with its A variations as the batch, as the
    published code does (the baseline of ``benchmarks/bench_langevin.py``; same maths).
    """
    a, dev = cfg.num_variations, w.device
    n = w.shape[0] // a
    w_avg = pipe.w_avg.to(dev)
    e_ref_rows = e_ref.to(dev).repeat_interleave(a, dim=0)
    groups = torch.arange(n, device=dev).repeat_interleave(a)
    if per_identity:
        f_e, e = torch.empty_like(w), torch.empty_like(e_ref_rows)
        for i in range(n):
            sl = slice(i * a, (i + 1) * a)
            f_e[sl], e[sl] = embedding_forces(pipe, w[sl], e_ref_rows[sl], cfg.k_e, a, progress, cfg.metric)
    else:
        f_e, e = embedding_forces(pipe, w, e_ref_rows, cfg.k_e, batch, progress, cfg.metric)
    # One pairwise pass over the W pairs: the repulsion, the W-distance statistics and the closest pairs.
    lat = _latent_pairs(w, groups, cfg.k_w, cfg.r_w, impl)
    row = _embedding_row(e, w, w_avg, e_ref_rows, groups, cfg, impl, lat)
    f_w = -lat.grad
    family = pipe.generator
    f_g = family.confine(w, w_avg, cfg.k_g)
    drift = f_e + f_w + f_g
    if cfg.dt is not None:
        dts = torch.full((n,), float(cfg.dt), dtype=torch.float64)
    else:
        dts = _adaptive_dt(lat.dist_min, drift, a, cfg).cpu()
    w_new, xi = driver.euler_maruyama(
        w, f_e + f_w, w_avg, dts.repeat_interleave(a), mu=cfg.mu, k_l=cfg.k_g, eta=cfg.eta,
        seed=derive_seed(cfg.seed, "dispersion"), step=t, runs=list(_runs(identity_ids.cpu(), a)), impl=impl,
        confinement=f_g,
    )  # fmt: skip
    # A shell family's variations keep their radius, moving only across the shell (StyleGAN2: unchanged).
    w_new = family.project(w_new, w.norm(dim=1))
    driver.add_force_stats(
        row, interaction=f_e, latent=f_w + f_g, noise=cfg.eta * xi, total=drift, timestep=float(dts.mean())
    )
    return w_new, e, row


class _Dispersion(driver.StepAlgorithm):
    """Dispersion's (or DisCo's) steps for :func:`drive`: carries nothing but the identity ids."""

    label = "dispersion"

    def __init__(
        self,
        pipe: FacePipeline,
        cfg: DispersionConfig,
        batch: int,
        w_ref: torch.Tensor,
        e_ref: torch.Tensor,
        ids: torch.Tensor,
        offsets: Optional[torch.Tensor],
        impl: Optional[str],
    ) -> None:
        require_embedder_metric(cfg.metric, pipe.identity_metric, "the Dispersion config")
        self.name = "disco" if cfg.disco else "dispersion"
        self.pipe, self.cfg, self.batch = pipe, cfg, batch
        self.w_ref, self.e_ref, self.ids, self.offsets, self.impl = w_ref, e_ref, ids, offsets, impl

    def initial(self) -> torch.Tensor:
        return initial_variations(self.w_ref, self.ids.to(self.pipe.device), self.cfg, self.offsets)

    def restore(self, state: Dict[str, Any]) -> None:
        if not torch.equal(state["identity_ids"].cpu(), self.ids.cpu()):
            raise ValueError("the checkpoint was made for other reference identities; rerun with --force")

    def carry(self) -> Dict[str, Any]:
        return {"identity_ids": self.ids.clone()}

    def network_rows(self, start: int) -> int:
        return self.ids.shape[0] * self.cfg.num_variations * (self.cfg.iterations - start + 1)

    def step(self, w: torch.Tensor, t: int, bar: Progress) -> Tuple[torch.Tensor, Dict[str, float]]:
        w, _, row = dispersion_iteration(
            self.pipe, w, t, self.cfg, self.e_ref, self.ids, batch=self.batch, impl=self.impl, progress=bar
        )
        return w, row

    def embedding_row(self, t: int, e: torch.Tensor, w: torch.Tensor) -> Dict[str, float]:
        a, dev = self.cfg.num_variations, w.device
        groups = torch.arange(self.ids.shape[0], device=dev).repeat_interleave(a)
        e_ref_rows = self.e_ref.repeat_interleave(a, dim=0)
        return _embedding_row(e, w, self.pipe.w_avg.to(dev), e_ref_rows, groups, self.cfg, self.impl)


def run_dispersion(
    pipe: FacePipeline,
    cfg: DispersionConfig,
    w_ref: torch.Tensor,
    e_ref: torch.Tensor,
    *,
    identity_ids: Optional[torch.Tensor] = None,
    directions: Optional[torch.Tensor] = None,
    batch: int = 64,
    impl: Optional[str] = None,
    progress: bool = True,
    state: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[driver.CheckpointFn] = None,
    checkpoint_every: int = 5,
    on_iteration: Optional[driver.IterationFn] = None,
) -> DispersionResult:
    """Run (or resume) Dispersion, or DisCo when ``cfg.disco`` (see the module docstring).

    Args:
        w_ref, e_ref: reference latents [N, w_dim] and raw embeddings [N, e].
        identity_ids: [N] distinct identity ids (default 0..N-1); random draws are keyed by them, so a subset of
            identities gets the same variations as in a run over all of them.
        directions: DisCo offsets [n, w_dim] (``directions.disco_offsets``); required iff ``cfg.disco``.
        batch: rows (variations) per forward/backward pass.
        state / checkpoint / checkpoint_every: resume from / write checkpoint dicts, as in ``run_langevin``.
    """
    n, a, dev = w_ref.shape[0], cfg.num_variations, pipe.device
    if w_ref.ndim != 2 or w_ref.shape[1] != pipe.w_dim:
        raise ValueError(f"reference latents must be [N, {pipe.w_dim}], got {list(w_ref.shape)}")
    if e_ref.ndim != 2 or e_ref.shape[0] != n:
        raise ValueError(f"reference embeddings must be [{n}, e], got {list(e_ref.shape)}")
    ids = torch.arange(n) if identity_ids is None else torch.as_tensor(identity_ids).long().cpu()
    if ids.shape != (n,) or len(set(ids.tolist())) != n or (n and int(ids.min()) < 0):
        raise ValueError(f"identity_ids must be {n} distinct ids >= 0")
    if cfg.disco != (directions is not None):
        raise ValueError("DisCo needs latent directions" if cfg.disco else "directions given but cfg.disco is off")
    w_ref, e_ref = w_ref.detach().float().to(dev), e_ref.detach().float().to(dev)
    offsets = None if directions is None else directions.detach().float()
    algo = _Dispersion(pipe, cfg, batch, w_ref, e_ref, ids, offsets, impl)
    w, e, stats = driver.drive(
        algo, state=state, checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=progress,
        on_iteration=on_iteration,
    )  # fmt: skip
    variation = torch.arange(a).repeat(n)
    return DispersionResult(w=w, embeddings=e, identity=ids.repeat_interleave(a), variation=variation, stats=stats)
