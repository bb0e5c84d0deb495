"""Embedding images with a face-recognition network, and comparing embeddings.

Images use synthcore's convention throughout: float RGB in [-1, 1], [N, 3, H, W] (what the generator emits).
"""

from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from synthcore.align import five_point_crop, fixed_crop
from synthcore.nets.embedders import Embedder

# Idiap's angle: arccos of a slightly shrunk cosine, so the gradient stays finite at identical embeddings.
ANGLE_SCALE = 0.999999

Crop = Union[None, str, Callable[[torch.Tensor], torch.Tensor]]


def from_uint8(images: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """[N, H, W, 3] (or [H, W, 3]) uint8 RGB to float [N, 3, H, W] in [-1, 1], as (x/255 - 0.5)/0.5."""
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {t.dtype}")
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] RGB pixels, got {list(t.shape)}")
    # The same operations the recognition codebases use, so crops match their preprocessing bit for bit.
    return t.permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)


def prepare(
    images: torch.Tensor, size: int, crop: Crop = None, landmarks: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Bring generator-frame images to ``size`` x ``size`` recognition crops.

    ``crop``: None (images are already aligned crops), a preset of ``synthcore.align.fixed_crop`` (e.g.
    ``"arcface"`` for FFHQ-aligned generator output), or any callable. ``landmarks`` [N, 5, 2]: five-point
    alignment instead, each image with its own points.
    """
    if landmarks is not None:
        if crop is not None:
            raise ValueError("give either crop or landmarks, not both")
        return five_point_crop(images, landmarks, size)
    if crop is None:
        return images
    if isinstance(crop, str):
        out = fixed_crop(images, crop)
        if tuple(out.shape[-2:]) != (size, size):
            raise ValueError(f"crop preset {crop!r} gives {out.shape[-1]} px crops, the embedder needs {size}")
        return out
    return crop(images)


def embed(
    images: torch.Tensor,
    embedder: Embedder,
    crop: Crop = None,
    landmarks: Optional[torch.Tensor] = None,
    normalize: bool = True,
    flip: bool = False,
) -> torch.Tensor:
    """Embeddings [N, D] of [N, 3, H, W] RGB images in [-1, 1]; differentiable in ``images``.

    ``crop`` / ``landmarks``: see ``prepare``. ``flip`` adds the feature of the mirrored crop before
    normalising (the flip fusion of the verification protocols). ``normalize=False`` returns raw features.
    """
    x = prepare(images, embedder.input_size, crop, landmarks)
    feats = embedder(x)
    if flip:
        feats = feats + embedder(x.flip(-1))
    return F.normalize(feats, dim=-1) if normalize else feats


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine between matching rows of ``a`` and ``b`` (broadcast over leading dimensions)."""
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=-1)


def cosine_matrix(a: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[N, M] cosines between every row of ``a`` [N, D] and every row of ``b`` [M, D] (``b`` defaults to ``a``)."""
    a = F.normalize(a, dim=-1)
    b = a if b is None else F.normalize(b, dim=-1)
    return a @ b.transpose(-1, -2)


def _angle(cos: torch.Tensor) -> torch.Tensor:
    return torch.arccos(ANGLE_SCALE * cos.clamp(-1.0, 1.0))


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians between matching rows, ``arccos(0.999999 * cos)``: finite gradients everywhere."""
    return _angle(cosine_similarity(a, b))


def angle_matrix(a: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """[N, M] angles in radians between rows of ``a`` and rows of ``b`` (defaults to ``a``)."""
    return _angle(cosine_matrix(a, b))
