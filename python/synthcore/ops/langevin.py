"""Overdamped Langevin (Euler-Maruyama) update with counter-based noise, and the adaptive time step.

    w <- w + dt/mu * (F + k_l (w_avg - w)) + sqrt(dt)/mu * eta * xi

``xi[i, j]`` is a standard normal that depends only on ``(seed, step, row_offset + i, j)``: Philox4x32-10 keyed by
the seed, with the counter (column block, row, step), then Box-Muller. A run is therefore the same whatever the
batch split, thread count or device. The reference below computes the same generator in plain torch.
"""

import math
from typing import Optional, Union

import torch

from synthcore import _native
from synthcore.ops import _backend
from synthcore.ops.pairwise import pairwise

__all__ = [
    "adaptive_timestep",
    "langevin_noise",
    "langevin_noise_reference",
    "langevin_update",
    "langevin_update_reference",
]

_NATIVE_DTYPES = (torch.float32, torch.float64)
_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _check_seed_step(seed: int, step: int, row_offset: int) -> None:
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be in [0, 2^64), got {seed}")
    if not 0 <= int(step) < 2**32:
        raise ValueError(f"step must be in [0, 2^32), got {step}")
    if int(row_offset) < 0:
        raise ValueError(f"row_offset must be >= 0, got {row_offset}")


def _mulhilo32(a: int, b: torch.Tensor):
    """High and low 32-bit words of a * b for a constant a < 2^32 and int64 b < 2^32, without overflow."""
    p_hi = a * (b >> 16)  # < 2^48
    p_lo = a * (b & 0xFFFF)  # < 2^48
    t = ((p_hi & 0xFFFF) << 16) + p_lo  # < 2^49
    return (p_hi >> 16) + (t >> 32), t & _MASK32


def langevin_noise_reference(
    rows: int,
    dim: int,
    seed: int,
    step: int,
    row_offset: int = 0,
    dtype: torch.dtype = torch.float32,
    device: Union[str, torch.device] = "cpu",
):
    """Plain-torch Philox4x32-10 + Box-Muller: the definition of the noise the native kernels draw."""
    _check_seed_step(seed, step, row_offset)
    blocks = (dim + 3) // 4
    row = torch.arange(row_offset, row_offset + rows, dtype=torch.int64, device=device)[:, None].expand(rows, blocks)
    c0 = torch.arange(blocks, dtype=torch.int64, device=device)[None, :].expand(rows, blocks)
    c1, c2 = row & _MASK32, row >> 32
    c3 = torch.full_like(c0, int(step) & _MASK32)
    k0, k1 = int(seed) & _MASK32, int(seed) >> 32
    for _ in range(10):
        hi0, lo0 = _mulhilo32(_PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo32(_PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _PHILOX_W[0]) & _MASK32, (k1 + _PHILOX_W[1]) & _MASK32
    scale = 2.0**-24
    out = []
    for a, b in ((c0, c1), (c2, c3)):
        u1 = ((a >> 8) + 1).to(dtype) * scale
        u2 = (b >> 8).to(dtype) * scale
        r = torch.sqrt(-2 * torch.log(u1))
        th = (2 * math.pi) * u2
        out += [r * torch.cos(th), r * torch.sin(th)]
    return torch.stack(out, dim=2).reshape(rows, blocks * 4)[:, :dim].contiguous()


def langevin_update_reference(
    w: torch.Tensor,
    F: torch.Tensor,
    w_avg: Optional[torch.Tensor] = None,
    *,
    dt: float,
    mu: float = 1.0,
    k_l: float = 0.0,
    eta: float = 0.0,
    seed: int = 0,
    step: int = 0,
    row_offset: int = 0,
) -> torch.Tensor:
    force = F if w_avg is None else F + k_l * (w_avg - w)
    xi = langevin_noise_reference(w.shape[0], w.shape[1], seed, step, row_offset, w.dtype, w.device)
    return w + (dt / mu) * force + (math.sqrt(dt) / mu * eta) * xi


def _validate_update(w, F, w_avg, dt, mu, k_l, eta):
    op = "langevin_update"
    _backend.require_tensor(op, "w", w, (2,))
    _backend.require_tensor(op, "F", F, (2,))
    _backend.require_same_device(op, "F", F, "w", w)
    if F.shape != w.shape:
        raise ValueError(f"langevin_update: F has shape {list(F.shape)} but w has {list(w.shape)}")
    if F.dtype != w.dtype:
        raise TypeError(f"langevin_update: F has dtype {F.dtype} but w has {w.dtype}")
    if w_avg is not None:
        _backend.require_tensor(op, "w_avg", w_avg, (1,))
        _backend.require_same_device(op, "w_avg", w_avg, "w", w)
        if w_avg.shape[0] != w.shape[1] or w_avg.dtype != w.dtype:
            raise ValueError(f"langevin_update: w_avg must be [{w.shape[1]}] of dtype {w.dtype}")
    if not (math.isfinite(dt) and dt >= 0):
        raise ValueError(f"langevin_update: dt must be finite and >= 0, got {dt}")
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"langevin_update: mu must be finite and > 0, got {mu}")
    if not (math.isfinite(k_l) and math.isfinite(eta)):
        raise ValueError("langevin_update: k_l and eta must be finite")


def langevin_update(
    w: torch.Tensor,
    F: torch.Tensor,
    w_avg: Optional[torch.Tensor] = None,
    *,
    dt: float,
    mu: float = 1.0,
    k_l: float = 0.0,
    eta: float = 0.0,
    seed: int = 0,
    step: int = 0,
    row_offset: int = 0,
    impl: Optional[str] = None,
) -> torch.Tensor:
    """One Euler-Maruyama step (see the module docstring); returns the new latents, [N, d].

    ``row_offset`` is the global index of ``w``'s first row, so a batch of rows draws the same noise as it would
    inside the whole set. ``w_avg=None`` turns the confinement term off.
    """
    _validate_update(w, F, w_avg, float(dt), float(mu), float(k_l), float(eta))
    _check_seed_step(seed, step, row_offset)
    if _backend.choose_impl("langevin_update", impl, w, _NATIVE_DTYPES) == "reference":
        return langevin_update_reference(
            w, F, w_avg, dt=dt, mu=mu, k_l=k_l, eta=eta, seed=seed, step=step, row_offset=row_offset
        )
    return _langevin_op(
        w.detach(),
        F.detach(),
        None if w_avg is None else w_avg.detach(),
        float(dt),
        float(mu),
        float(k_l),
        float(eta),
        str(int(seed)),
        int(step),
        int(row_offset),
    )


# A custom op (with a fake kernel) so torch.compile traces through the update. The seed travels as a string:
# the op schema's int is signed 64-bit, and seeds use all 64 bits.
@torch.library.custom_op("synthcore::langevin_update", mutates_args=())
def _langevin_op(
    w: torch.Tensor,
    F: torch.Tensor,
    w_avg: Optional[torch.Tensor],
    dt: float,
    mu: float,
    k_l: float,
    eta: float,
    seed: str,
    step: int,
    row_offset: int,
) -> torch.Tensor:
    w_c, F_c = w.contiguous(), F.contiguous()
    avg = None if w_avg is None else w_avg.contiguous()
    out = torch.empty_like(w_c)
    _native.native_module().langevin(
        _backend.to_native(w_c),
        _backend.to_native(F_c),
        None if avg is None else _backend.to_native(avg),
        _backend.to_native(out),
        dt,
        mu,
        k_l,
        eta,
        int(seed),
        step,
        row_offset,
        False,
        _backend.num_threads(),
        _backend.cuda_stream(w_c),
    )
    return out


@_langevin_op.register_fake
def _(w, F, w_avg, dt, mu, k_l, eta, seed, step, row_offset):
    return torch.empty_like(w, memory_format=torch.contiguous_format)


def langevin_noise(
    rows: int,
    dim: int,
    seed: int,
    step: int,
    row_offset: int = 0,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    impl: Optional[str] = None,
) -> torch.Tensor:
    """The standard normals xi[rows, dim] a step draws (rows row_offset .. row_offset + rows)."""
    _check_seed_step(seed, step, row_offset)
    if rows < 0 or dim < 0:
        raise ValueError("langevin_noise: rows and dim must be >= 0")
    out = torch.empty(rows, dim, dtype=dtype, device=device)
    if _backend.choose_impl("langevin_noise", impl, out, _NATIVE_DTYPES) == "reference":
        return langevin_noise_reference(rows, dim, seed, step, row_offset, dtype, torch.device(device))
    _native.native_module().langevin(
        None,
        None,
        None,
        _backend.to_native(out),
        0.0,
        1.0,
        0.0,
        0.0,
        int(seed),
        int(step),
        int(row_offset),
        True,
        _backend.num_threads(),
        _backend.cuda_stream(out),
    )
    return out


def adaptive_timestep(
    w: torch.Tensor, F: torch.Tensor, tau: float = 0.3, mu: float = 1.0, impl: Optional[str] = None
) -> float:
    """dt = tau * mu * min_{i<j} |w_i - w_j| / max_i |F_i|: the largest move is a fraction tau of the closest
    latent pair's distance. The minimum distance comes from the tiled pairwise reduction (no N x N matrix)."""
    if w.shape[0] < 2:
        raise ValueError("adaptive_timestep: needs at least two latents")
    stats = pairwise(w.detach().float(), None, metric="l2", r0=0.0, exclude_self=True, need_grad=False, impl=impl)
    d_min = float(stats.dist_min.min())
    f_max = float(F.detach().norm(dim=1).max())
    if f_max == 0:
        raise ValueError("adaptive_timestep: every force is zero, the step is unbounded")
    return tau * mu * d_min / f_max
