"""Dispersion and DisCo: variations of each reference identity, spread in W while staying the same identity.

For reference identity i with latent ``w_ref,i`` and embedding ``e_ref,i``, A variations ``w_ia`` start at
``w_ref,i + sigma0 xi_ia`` (DisCo adds ``sum_d u_iad D_d``, u ~ U(-1/2, 1/2), D_d the latent-direction offsets of
``directions.py``). Each of ``iterations`` steps applies:

- embedding pull-back, through generator and embedder: ``U_e = sum_a k_e/4 d(e_ia, e_ref,i)^2`` (angle d);
- latent soft-sphere repulsion among the A variations of an identity, in W:
  ``U_w = sum_{a != b} k_w/4 (r_w - |w_ia - w_ib|)^2 [|w_ia - w_ib| < r_w]`` (ordered pairs; its gradient is the
  ``synthcore.ops.pairwise`` l2 gradient with stiffness k_w, restricted to each identity's group);
- confinement to the mean latent ``k_g (w_avg - w_ia)``;
- the Euler-Maruyama update ``w <- w + dt/mu F + sqrt(dt)/mu eta xi`` (``langevin_update``, noise keyed by
  (seed, step, global row = identity * A + a)).

The published code adds its random force as ``dt/mu eta xi`` (not scaled by sqrt(dt), unlike its Langevin);
synthcore uses the consistent sqrt(dt) scaling, and its default ``eta = 0.05 sqrt(0.05)`` makes the per-step noise
at the default dt = 0.05 equal to the published runs'. With ``dt=None`` the step is adaptive per identity:
``tau mu min_{a<b} |w_ia - w_ib| / max_a |F_ia|``.

Every identity's trajectory depends only on its own rows, so batching over rows is exact, and the whole state is
checkpointed every K steps for a bit-exact resume.
"""

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

from synthcore.embedding import angle
from synthcore.identity.pipeline import FacePipeline, batches
from synthcore.identity.seeds import derive_seed, normal_rows, uniform_rows
from synthcore.identity.stats import NAN_FORCES, distance_stats, norm_stats
from synthcore.ops import langevin_noise, langevin_update, pairwise
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

CheckpointFn = Callable[[int, Dict[str, Any]], None]


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
    ict: float = 1.4  # threshold of the prop_ict statistic (radians)
    disco: bool = False  # DisCo initial offsets (needs directions)
    pose_scale: float = 1.0
    illumination_scale: float = 1.0
    expression_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_variations < 1:
            raise ValueError(f"num_variations must be >= 1, got {self.num_variations}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        for name in ("k_e", "k_w", "r_w", "k_g", "eta", "tau", "sigma0", "ict"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        for name in ("pose_scale", "illumination_scale", "expression_scale"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise ValueError(f"mu must be > 0, got {self.mu}")
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be > 0 (or None for the adaptive step), got {self.dt}")
        if self.dt is None and (self.tau <= 0 or self.num_variations < 2):
            raise ValueError("the adaptive time step needs tau > 0 and at least 2 variations per identity")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

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
) -> Tuple[torch.Tensor, torch.Tensor]:
    """-dU_e/dw [R, w_dim] of the pull towards each row's reference embedding, and the embeddings of ``w``."""
    forces = torch.empty_like(w)
    embs = torch.empty(w.shape[0], e_ref_rows.shape[1], device=w.device)
    for lo, hi in batches(w.shape[0], batch):
        ref = e_ref_rows[lo:hi]
        e, g = pipe.backprop_potential(w[lo:hi], lambda e, ref=ref: (0.25 * k_e * angle(e, ref) ** 2).sum())
        forces[lo:hi], embs[lo:hi] = -g, e
        if progress is not None:
            progress.update(hi - lo)
    return forces, embs


def latent_repulsion(
    w: torch.Tensor, groups: torch.Tensor, k_w: float, r_w: float, impl: Optional[str] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(-dU_w/dw [R, w_dim], per-row minimum intra-group W distance [R]) of the soft-sphere repulsion in W."""
    res = pairwise(w, None, metric="l2", r0=r_w, k=k_w, exclude_self=True, q_groups=groups, impl=impl)
    return -res.grad, res.dist_min


def _adaptive_dt(d_min: torch.Tensor, drift: torch.Tensor, a: int, cfg: DispersionConfig) -> torch.Tensor:
    """Per-identity step [N]: tau mu (closest pair of its variations) / (largest force on them)."""
    dmin = d_min.view(-1, a).amin(1).double()
    fmax = drift.double().norm(dim=1).view(-1, a).amax(1)
    if bool((fmax == 0).any()):
        raise ValueError("adaptive time step: every force on an identity's variations is zero")
    return cfg.tau * cfg.mu * dmin / fmax


def _embedding_row(t, e, w, w_avg, e_ref_rows, groups, cfg, impl) -> Dict[str, float]:
    """Intra-identity statistics of step t, and the angles to each row's reference (``refd_*``)."""
    row = distance_stats(e, w, w_avg, cfg.ict, groups=groups, impl=impl)
    ref_d = angle(e, e_ref_rows).double()
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
    """Step t of Dispersion from latents ``w`` [N * A, w_dim] (identity-major) with reference embeddings ``e_ref``
    [N, e] and identity ids [N]. Returns (w_{t+1}, embeddings of w_t, stats row).

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
            f_e[sl], e[sl] = embedding_forces(pipe, w[sl], e_ref_rows[sl], cfg.k_e, a, progress)
    else:
        f_e, e = embedding_forces(pipe, w, e_ref_rows, cfg.k_e, batch, progress)
    row = _embedding_row(t, e, w, w_avg, e_ref_rows, groups, cfg, impl)
    f_w, d_min = latent_repulsion(w, groups, cfg.k_w, cfg.r_w, impl)
    f_g = cfg.k_g * (w_avg - w)
    drift = f_e + f_w + f_g
    if cfg.dt is not None:
        dts = torch.full((n,), float(cfg.dt), dtype=torch.float64)
    else:
        dts = _adaptive_dt(d_min, drift, a, cfg).cpu()
    noise_seed = derive_seed(cfg.seed, "dispersion")
    w_new, xi = torch.empty_like(w), torch.empty_like(w)
    for lo, hi, off in _runs(identity_ids.cpu(), a):
        xi[lo:hi] = langevin_noise(hi - lo, w.shape[1], noise_seed, t, off, w.dtype, dev, impl=impl)
        # One update call per run of identities sharing a step (all of them, with a fixed dt).
        i_lo, i_hi = lo // a, hi // a
        steps = dts[i_lo:i_hi]
        cuts = [i_lo] + [i_lo + j for j in range(1, i_hi - i_lo) if steps[j] != steps[j - 1]] + [i_hi]
        for c_lo, c_hi in zip(cuts[:-1], cuts[1:]):
            r_lo, r_hi = c_lo * a, c_hi * a
            w_new[r_lo:r_hi] = langevin_update(
                w[r_lo:r_hi],
                f_e[r_lo:r_hi] + f_w[r_lo:r_hi],
                w_avg,
                dt=float(dts[c_lo]),
                mu=cfg.mu,
                k_l=cfg.k_g,
                eta=cfg.eta,
                seed=noise_seed,
                step=t,
                row_offset=off + (r_lo - lo),
                impl=impl,
            )
    row.update(norm_stats("intf", f_e))
    row.update(norm_stats("latf", f_w + f_g))
    row.update(norm_stats("rndf", cfg.eta * xi))
    row.update(norm_stats("totf", drift))
    row["timestep"] = float(dts.mean())
    return w_new, e, row


def _check_resume(state: Dict[str, Any], cfg: DispersionConfig, ids: torch.Tensor) -> None:
    saved = state.get("config", {})
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}" for k, v in cfg.to_dict().items() if saved.get(k) != v]
    if diff:
        raise ValueError("the checkpoint was made with other settings (" + "; ".join(diff) + "); rerun with --force")
    if not torch.equal(state["identity_ids"].cpu(), ids.cpu()):
        raise ValueError("the checkpoint was made for other reference identities; rerun with --force")


def run_dispersion(
    pipe: FacePipeline,
    cfg: DispersionConfig,
    w_ref: torch.Tensor,
    e_ref: torch.Tensor,
    *,
    identity_ids: Optional[torch.Tensor] = None,
    directions: Optional[torch.Tensor] = None,
    batch: int = 64,
    state: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[CheckpointFn] = None,
    checkpoint_every: int = 5,
    impl: Optional[str] = None,
    progress: bool = True,
    on_iteration: Optional[Callable[[int, Dict[str, float]], None]] = None,
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
    if state is None:
        offsets = None if directions is None else directions.detach().float()
        w, start, stats = initial_variations(w_ref, ids.to(dev), cfg, offsets), 0, []
    else:
        _check_resume(state, cfg, ids)
        w, start, stats = state["w"].to(dev), int(state["step"]), [dict(r) for r in state["stats"]]

    rows = n * a
    with Progress(rows * (cfg.iterations - start + 1), "dispersion", enabled=progress) as bar:
        for t in range(start, cfg.iterations):
            w, _, row = dispersion_iteration(pipe, w, t, cfg, e_ref, ids, batch=batch, impl=impl, progress=bar)
            stats.append(row)
            if on_iteration is not None:
                on_iteration(t, row)
            if checkpoint is not None and checkpoint_every > 0 and (t + 1) % checkpoint_every == 0:
                checkpoint(
                    t + 1,
                    {
                        "algorithm": "disco" if cfg.disco else "dispersion",
                        "step": t + 1,
                        "w": w.cpu(),
                        "identity_ids": ids.clone(),
                        "stats": [dict(r) for r in stats],
                        "config": cfg.to_dict(),
                    },
                )
        # The last pass: embeddings and statistics of the final latents, no step.
        e = pipe.embed_batched(w, batch, bar)
        groups = torch.arange(n, device=dev).repeat_interleave(a)
        row = _embedding_row(
            cfg.iterations, e, w, pipe.w_avg.to(dev), e_ref.repeat_interleave(a, dim=0), groups, cfg, impl
        )
        row.update(NAN_FORCES)
        row["timestep"] = math.nan
        stats.append(row)
        if on_iteration is not None:
            on_iteration(cfg.iterations, row)
    variation = torch.arange(a).repeat(n)
    return DispersionResult(w=w, embeddings=e, identity=ids.repeat_interleave(a), variation=variation, stats=stats)
