"""Every random draw of the identity algorithms, keyed by (seed, purpose, row).

All draws come from the counter-based generator of ``synthcore.ops.langevin_noise`` (Philox4x32-10 keyed by a
64-bit seed, counter = (column block, row, step)), so a row's values depend only on the run seed, what the draw
is for, and the row's global index: never on the batch size, thread count, device, or on a resume in between.
Each purpose gets its own 64-bit key, derived from the run seed by hashing, so the streams are independent.
"""

import hashlib
import math
from typing import Union

import torch

from synthcore.ops import langevin_noise

__all__ = ["derive_seed", "normal_rows", "uniform_rows"]


def derive_seed(seed: int, purpose: str) -> int:
    """A 64-bit key for one purpose ("z", "langevin", "dispersion-init", ...) of a run with ``seed``."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    digest = hashlib.blake2b(f"synthcore/{int(seed)}/{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def normal_rows(
    rows: int,
    dim: int,
    seed: int,
    purpose: str,
    row_offset: int = 0,
    device: Union[str, torch.device] = "cpu",
) -> torch.Tensor:
    """Standard normals [rows, dim] for global rows ``row_offset ..`` of the stream (seed, purpose)."""
    return langevin_noise(rows, dim, derive_seed(seed, purpose), 0, row_offset, torch.float32, device)


def uniform_rows(
    rows: int,
    dim: int,
    seed: int,
    purpose: str,
    low: float = -0.5,
    high: float = 0.5,
    row_offset: int = 0,
    device: Union[str, torch.device] = "cpu",
) -> torch.Tensor:
    """Uniforms on (low, high), [rows, dim]: the normal CDF of :func:`normal_rows` (exactly uniform in law;
    rounding to float32 can put the rarest extremes, |normal| > 5.4 with probability ~1e-7, on low or high)."""
    x = normal_rows(rows, dim, seed, purpose, row_offset, device).double()
    u = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    return (low + (high - low) * u).float()
