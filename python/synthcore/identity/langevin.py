"""Langevin reference identities: W-space particles that repel each other in identity (embedding) space.

N latents ``w_i`` start at ``mapping(z_i, psi)``. Each iteration t:

1. embeddings ``e_j = E(crop(G(w_j)))`` of every latent, without gradients (the keys of this step);
2. interaction force ``F_int,i = -dU_i/dw_i`` with ``U_i = sum_{j != i} k/2 (r0 - d_ij)^2 [d_ij < r0]``, ``d_ij``
   the angle between ``e_i`` (with gradient) and the fixed key ``e_j``; plus the same soft-sphere term against an
   optional fixed set of external embeddings (e.g. real faces, to keep synthetic identities away from them);
3. confinement ``k_l (w_avg - w_i)``; time step fixed or adaptive,
   ``dt = tau mu min_{i<j} |w_i - w_j| / max_i |F_i|``;
4. Euler-Maruyama: ``w <- w + dt/mu F + sqrt(dt)/mu eta xi`` (``synthcore.ops.langevin_update``; xi keyed by
   (seed, t, i)).

After ``iterations`` steps a last pass computes the final embeddings and statistics.

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
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from synthcore.embedding import angle_matrix
from synthcore.identity.pipeline import FacePipeline, batches
from synthcore.identity.seeds import derive_seed, normal_rows
from synthcore.identity.stats import NAN_FORCES, distance_stats, norm_stats
from synthcore.ops import adaptive_timestep, langevin_noise, langevin_update, pairwise
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

CheckpointFn = Callable[[int, Dict[str, Any]], None]


@dataclass(frozen=True)
class LangevinConfig:
    """Hyper-parameters. Defaults are those of the published 10k-identity run (identity_diffusion.md §3)."""

    num_identities: int = 100
    iterations: int = 100
    k: float = 1.0  # repulsion stiffness
    r0: float = 1.4  # repulsion radius (radians)
    dt: Optional[float] = None  # fixed time step; None = adaptive
    tau: float = 0.3  # adaptive step: largest move / closest latent pair distance
    mu: float = 1.0  # viscosity
    eta: float = 0.01  # random force scale
    k_l: float = 0.1  # confinement to w_avg
    truncation_psi: float = 0.7  # of the initial latents
    ict: float = 1.4  # inter-class threshold of the prop_ict statistic (radians)
    external_r0: Optional[float] = None  # repulsion radius from external embeddings (default r0)
    single_forward: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_identities < 2:
            raise ValueError(f"Langevin needs at least 2 identities, got {self.num_identities}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        for name in ("k", "r0", "tau", "eta", "k_l", "ict"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise ValueError(f"mu must be > 0, got {self.mu}")
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be > 0 (or None for the adaptive step), got {self.dt}")
        if self.dt is None and self.tau <= 0:
            raise ValueError("the adaptive time step needs tau > 0")
        if self.external_r0 is not None and not (math.isfinite(self.external_r0) and self.external_r0 >= 0):
            raise ValueError(f"external_r0 must be >= 0, got {self.external_r0}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

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
        g = pairwise(e, keys, r0=cfg.r0, k=cfg.k, exclude_self=True, query_offset=lo, impl=impl).grad
        if external is not None and external.shape[0]:
            g = g + pairwise(e, external, r0=ext_r0, k=cfg.k, impl=impl).grad
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
            d = angle_matrix(ei, torch.cat([keys[:i], keys[i + 1 :]]))
            u = torch.where(d < cfg.r0, 0.5 * cfg.k * (cfg.r0 - d) ** 2, torch.zeros_like(d)).sum()
            if external is not None and external.shape[0]:
                dc = angle_matrix(ei, external)
                u = u + torch.where(dc < ext_r0, 0.5 * cfg.k * (ext_r0 - dc) ** 2, torch.zeros_like(dc)).sum()
            (g,) = torch.autograd.grad(u, wi)
        out[i] = -g[0]
    return out


def _embedding_row(t, e, w, w_avg, cfg, external, impl) -> Dict[str, float]:
    row = distance_stats(e, w, w_avg, cfg.ict, impl=impl)
    if external is not None and external.shape[0]:
        row["ext_dist_min"] = float(pairwise(e, external, r0=0.0, need_grad=False, impl=impl).dist_min.min())
    return row


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
    row = _embedding_row(t, e, w, w_avg, cfg, external, impl)
    f_lat = cfg.k_l * (w_avg - w)
    drift = f_int + f_lat
    dt = cfg.dt if cfg.dt is not None else adaptive_timestep(w, drift, cfg.tau, cfg.mu, impl=impl)
    noise_seed = derive_seed(cfg.seed, "langevin")
    xi = langevin_noise(n, w.shape[1], noise_seed, t, 0, w.dtype, dev, impl=impl)
    row.update(norm_stats("intf", f_int))
    row.update(norm_stats("latf", f_lat))
    row.update(norm_stats("rndf", cfg.eta * xi))
    row.update(norm_stats("totf", drift))
    row["timestep"] = float(dt)
    w_next = langevin_update(
        w, f_int, w_avg, dt=dt, mu=cfg.mu, k_l=cfg.k_l, eta=cfg.eta, seed=noise_seed, step=t, impl=impl
    )
    return w_next, e, row, (e if cfg.single_forward else None)


def _check_resume(state: Dict[str, Any], cfg: LangevinConfig, w_dim: int) -> None:
    saved = state.get("config", {})
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}" for k, v in cfg.to_dict().items() if saved.get(k) != v]
    if diff:
        raise ValueError("the checkpoint was made with other settings (" + "; ".join(diff) + "); rerun with --force")
    if state["w"].shape != (cfg.num_identities, w_dim):
        raise ValueError(f"checkpoint latents {list(state['w'].shape)} do not fit this generator (w_dim {w_dim})")


def run_langevin(
    pipe: FacePipeline,
    cfg: LangevinConfig,
    *,
    batch: int = 16,
    external: Optional[torch.Tensor] = None,
    state: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[CheckpointFn] = None,
    checkpoint_every: int = 10,
    impl: Optional[str] = None,
    progress: bool = True,
    on_iteration: Optional[Callable[[int, Dict[str, float]], None]] = None,
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
        impl: op implementation for pairwise, the update and synthesis.
        progress: show progress bars on stderr.
        on_iteration: called with (iteration, stats row) after each iteration.
        hold_graphs: identities whose autograd graphs may be held at once (default ``batch``); when all N fit, a
            step runs one forward pass per identity instead of two, with the same result.
    """
    n, dev = cfg.num_identities, pipe.device
    if external is not None:
        external = external.detach().float().to(dev)
        if external.ndim != 2 or external.shape[1] != pipe._embedding_size():
            raise ValueError(
                f"external embeddings must be [M, {pipe._embedding_size()}] (the embedder's size), "
                f"got {list(external.shape)}"
            )
    if state is None:
        _, c, w = initial_latents(pipe, n, cfg.seed, cfg.truncation_psi)
        start, keys, stats = 0, None, []
    else:
        _check_resume(state, cfg, pipe.w_dim)
        w = state["w"].to(dev)
        c = None if state.get("c") is None else state["c"].to(dev)
        keys = None if state.get("keys") is None else state["keys"].to(dev)
        start, stats = int(state["step"]), [dict(r) for r in state["stats"]]

    # Rows through the networks: two passes per step (one with the single-forward variant), one at the end.
    remaining = cfg.iterations - start
    first_keys = int(cfg.single_forward and keys is None and remaining > 0)
    one_pass = cfg.single_forward or n <= (batch if hold_graphs is None else hold_graphs)
    total = n * (remaining * (1 if one_pass else 2) + 1 + first_keys)
    with Progress(total, "langevin", enabled=progress) as bar:
        for t in range(start, cfg.iterations):
            w, e, row, keys = langevin_iteration(
                pipe, w, t, cfg, batch=batch, keys=keys, external=external, impl=impl, progress=bar,
                hold_graphs=hold_graphs,
            )  # fmt: skip
            stats.append(row)
            if on_iteration is not None:
                on_iteration(t, row)
            if checkpoint is not None and checkpoint_every > 0 and (t + 1) % checkpoint_every == 0:
                checkpoint(
                    t + 1,
                    {
                        "algorithm": "langevin",
                        "step": t + 1,
                        "w": w.cpu(),
                        "c": None if c is None else c.cpu(),
                        "keys": None if keys is None else keys.cpu(),
                        "stats": [dict(r) for r in stats],
                        "config": cfg.to_dict(),
                    },
                )
        # The last pass: embeddings and statistics of the final latents, no step.
        e = pipe.embed_batched(w, batch, bar)
        row = _embedding_row(cfg.iterations, e, w, pipe.w_avg.to(dev), cfg, external, impl)
        row.update(NAN_FORCES)
        row["timestep"] = math.nan
        stats.append(row)
        if on_iteration is not None:
            on_iteration(cfg.iterations, row)
    return LangevinResult(w=w, embeddings=e, c=c, stats=stats)
