"""The step driver shared by the iterative identity algorithms (Langevin, Dispersion / DisCo).

An algorithm supplies the maths of one step (:class:`StepAlgorithm`); :func:`drive` owns everything around it:
the iteration loop, resuming from a checkpoint state (settings checked by name), the checkpoint cadence and the
state it hands out, the statistics rows (one per step, then one for the final latents without forces), and the
progress bar. :func:`euler_maruyama` is the update both algorithms end a step with, and :func:`add_force_stats`
the force columns of their statistics rows.

A resumed run computes exactly what the uninterrupted one would: the state holds the latents, what the algorithm
carries from step to step, and the statistics so far, and every random draw is keyed by (seed, step, global row).
"""

import abc
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from synthcore.identity.metric import check_metric
from synthcore.identity.pipeline import FacePipeline
from synthcore.identity.stats import NAN_FORCES, norm_stats
from synthcore.ops import langevin_noise
from synthcore.progress import Progress

__all__ = [
    "CheckpointFn",
    "IterationFn",
    "StepAlgorithm",
    "add_force_stats",
    "check_same_settings",
    "check_step_settings",
    "drive",
    "euler_maruyama",
]

CheckpointFn = Callable[[int, Dict[str, Any]], None]
IterationFn = Callable[[int, Dict[str, float]], None]


class StepAlgorithm(abc.ABC):
    """The per-step maths of one algorithm run, as :func:`drive` uses it.

    Subclasses set ``name`` (the checkpoint's ``algorithm``), ``label`` (the progress bar's), ``pipe``, ``cfg``
    (a frozen dataclass with ``iterations`` and ``to_dict()``) and ``batch`` (rows per network pass).
    """

    name: str
    label: str
    pipe: FacePipeline
    cfg: Any
    batch: int

    @abc.abstractmethod
    def initial(self) -> torch.Tensor:
        """The latents of step 0 (a fresh run)."""

    @abc.abstractmethod
    def restore(self, state: Dict[str, Any]) -> None:
        """Check that a checkpoint ``state`` (already checked for equal settings) fits this run, raising
        ValueError if not, and take back what the algorithm carries between steps."""

    def carry(self) -> Dict[str, Any]:
        """What the algorithm carries between steps, for the checkpoint state (CPU tensors, numbers, strings)."""
        return {}

    @abc.abstractmethod
    def step(self, w: torch.Tensor, t: int, bar: Progress) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Step t from latents w_t: (w_{t+1}, statistics row of step t)."""

    @abc.abstractmethod
    def embedding_row(self, t: int, e: torch.Tensor, w: torch.Tensor) -> Dict[str, float]:
        """The statistics of latents ``w`` with embeddings ``e`` that need no step (the final row's)."""

    @abc.abstractmethod
    def network_rows(self, start: int) -> int:
        """Rows that go through the networks from step ``start`` to the end, final pass included (the bar's total)."""


def check_step_settings(cfg: Any, nonnegative: Sequence[str]) -> None:
    """The settings every stepping algorithm validates the same way: ``metric`` one the algorithms compute,
    ``iterations`` >= 0, the fields named in ``nonnegative`` finite and >= 0, ``mu`` > 0, ``dt`` > 0 or None
    (adaptive), ``seed`` >= 0 (ValueError naming the field)."""
    check_metric(cfg.metric)
    if cfg.iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {cfg.iterations}")
    for name in nonnegative:
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    if not (math.isfinite(cfg.mu) and cfg.mu > 0):
        raise ValueError(f"mu must be > 0, got {cfg.mu}")
    if cfg.dt is not None and not (math.isfinite(cfg.dt) and cfg.dt > 0):
        raise ValueError(f"dt must be > 0 (or None for the adaptive step), got {cfg.dt}")
    if cfg.seed < 0:
        raise ValueError(f"seed must be >= 0, got {cfg.seed}")


def check_same_settings(state: Dict[str, Any], cfg: Any) -> None:
    """Refuse a checkpoint state made with other settings, naming every one that differs."""
    saved = state.get("config", {})
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {v!r}" for k, v in cfg.to_dict().items() if saved.get(k) != v]
    if diff:
        raise ValueError("the checkpoint was made with other settings (" + "; ".join(diff) + "); rerun with --force")


def drive(
    algo: StepAlgorithm,
    *,
    state: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[CheckpointFn] = None,
    checkpoint_every: int = 0,
    progress: bool = True,
    on_iteration: Optional[IterationFn] = None,
) -> Tuple[torch.Tensor, torch.Tensor, List[Dict[str, float]]]:
    """Run ``algo`` from step 0, or from a checkpoint ``state``, to ``algo.cfg.iterations``.

    ``checkpoint(step, state)`` is called after every ``checkpoint_every`` steps (0: never) with everything needed
    to resume bit-exactly; ``on_iteration(t, row)`` after every step and after the final pass.
    Returns (final latents, their embeddings, statistics rows: one per step and one for the final latents).
    """
    cfg, dev = algo.cfg, algo.pipe.device
    if state is None:
        w, start, stats = algo.initial(), 0, []
    else:
        check_same_settings(state, cfg)
        algo.restore(state)
        w, start, stats = state["w"].to(dev), int(state["step"]), [dict(r) for r in state["stats"]]

    found: Optional[torch.Tensor] = None  # faces in the frames of w (landmark pipelines), from the last check
    with Progress(algo.network_rows(start), algo.label, enabled=progress) as bar:
        for t in range(start, cfg.iterations):
            w_next, row = algo.step(w, t, bar)
            w, found = keep_faces(algo.pipe, w, w_next, found, row)
            stats.append(row)
            if on_iteration is not None:
                on_iteration(t, row)
            if checkpoint is not None and checkpoint_every > 0 and (t + 1) % checkpoint_every == 0:
                checkpoint(
                    t + 1,
                    {
                        "algorithm": algo.name,
                        "step": t + 1,
                        "w": w.cpu(),
                        **algo.carry(),
                        "stats": [dict(r) for r in stats],
                        "config": cfg.to_dict(),
                    },
                )
        # The last pass: embeddings and statistics of the final latents, no step.
        e = algo.pipe.embed_batched(w, algo.batch, bar)
        row = algo.embedding_row(cfg.iterations, e, w)
        if found is not None:
            row["prop_face"] = float(found.float().mean())
        row.update(NAN_FORCES)
        row["timestep"] = math.nan
        stats.append(row)
        if on_iteration is not None:
            on_iteration(cfg.iterations, row)
    return w, e, stats


def keep_faces(
    pipe: FacePipeline, w: torch.Tensor, w_next: torch.Tensor, found: Optional[torch.Tensor], row: Dict[str, float]
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Refuse the moves that take a face out of the face detector's reach: (latents after the step, found).

    On a landmark-aligned pipeline (a generator whose faces move in the frame, reached through detected
    landmarks), an identity whose frame holds a face keeps its latent when the update would give a frame in which
    the detector finds none: the repulsion must not buy distance by leaving the faces (a prototype without this
    lost 2 of 64 faces; the demo measured 62 -> 59). Frames that were no face move freely. ``found`` is the
    previous check's answer for ``w`` (None: check now, as on step 0 or after a resume; the answer is a function of
    the latents, so a resumed run refuses exactly what the uninterrupted one did). Adds ``prop_face`` (share of
    ``w``'s frames with a face) and ``face_refused`` (moves refused) to the step's statistics ``row``. Fixed-crop
    pipelines return ``w_next`` unchanged and None.
    """
    if not pipe.checks_faces:
        return w_next, None
    if found is None:
        found = pipe.faces_found(w)
    found_next = pipe.faces_found(w_next)
    refuse = found & ~found_next
    row["prop_face"] = float(found.float().mean())
    row["face_refused"] = float(refuse.sum())
    return torch.where(refuse[:, None], w, w_next), found_next | refuse


def euler_maruyama(
    w: torch.Tensor,
    force: torch.Tensor,
    w_avg: torch.Tensor,
    dt: Union[float, torch.Tensor],
    *,
    mu: float,
    k_l: float,
    eta: float,
    seed: int,
    step: int,
    runs: Sequence[Tuple[int, int, int]],
    impl: Optional[str] = None,
    confinement: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One Euler-Maruyama step ``w + dt/mu (F + C) + sqrt(dt)/mu eta xi``; returns (w_next, xi).

    ``C`` is ``confinement`` when given (the generator family's own, ``GeneratorFamily.confine``), else the
    pull to the mean latent ``k_l (w_avg - w)``.

    ``dt``: one step for every row, or a float64 tensor of one step per row. ``runs``: (row_lo, row_hi,
    global_row_offset) spans covering the rows; xi of a span is drawn from ``ops.langevin_noise`` keyed by
    (seed, step, global row), once, and serves both the update and the caller's noise statistics.

    The arithmetic is that of ``ops.langevin_update`` (coefficients dt/mu and sqrt(dt)/mu eta rounded to the
    latents' dtype, then each product and sum rounded in turn), which would draw the noise a second time.
    """
    rows = w.shape[0]
    dts = torch.as_tensor(dt, dtype=torch.float64).cpu().expand(rows)
    if not bool(torch.isfinite(dts).all()) or bool((dts < 0).any()):
        raise ValueError(f"Euler-Maruyama step {step}: the time step must be finite and >= 0, got {dts.unique()}")
    xi = torch.empty_like(w)
    for lo, hi, off in runs:
        xi[lo:hi] = langevin_noise(hi - lo, w.shape[1], seed, step, off, w.dtype, w.device, impl=impl)
    drift = (dts / mu).to(w.dtype).to(w.device)[:, None]
    diff = (dts.sqrt() / mu * eta).to(w.dtype).to(w.device)[:, None]
    if confinement is None:
        confinement = k_l * (w_avg.to(w.dtype) - w)
    total = force + confinement
    return w + drift * total + diff * xi, xi


def add_force_stats(
    row: Dict[str, float],
    *,
    interaction: torch.Tensor,
    latent: torch.Tensor,
    noise: torch.Tensor,
    total: torch.Tensor,
    timestep: float,
) -> Dict[str, float]:
    """Add a step's force columns to its statistics ``row`` (``intf``, ``latf``, ``rndf``, ``totf`` row-norm
    min/avg/max and ``timestep``) and return it."""
    for name, f in (("intf", interaction), ("latf", latent), ("rndf", noise), ("totf", total)):
        row.update(norm_stats(name, f))
    row["timestep"] = float(timestep)
    return row
