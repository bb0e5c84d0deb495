"""dlib's face chip from 5 landmarks: the geometry of ``get_face_chip_details`` and a differentiable warp.

The geometry was established by measuring dlib's own library (dlib-bin 20.0.1: ``get_face_chip_details`` on many
random 5-point shapes, and ``get_face_chip`` on coordinate-ramp images); the model below reproduces its chip
rectangles and angles to 1e-11 pixels for any size and padding:

1. The 5 points are fitted by a least-squares similarity ``S`` that maps the template (``TEMPLATE5``, in a unit
   square, padded: ``T = size * (t + padding) / (1 + 2 * padding)``) onto the landmarks.
2. The chip rectangle is centred on ``S(size / 2, size / 2)`` with side ``size * scale(S)`` in dlib's inclusive
   rectangle convention, i.e. ``size * scale - 1`` between its first and last pixel centre, and rotated by ``S``'s
   angle.
3. Chip pixel ``c`` (pixel centres at integers) samples the image at
   ``centre + (size * scale - 1) / (size - 1) * R(angle) (c - (size - 1) / 2)``, bilinearly; dlib then truncates to
   uint8 (``warp_to_chips`` returns the float values).

``chip_transform`` returns the map from image pixels to chip pixels (the convention of ``synthcore.align``'s other
crops), ``warp_to_chips`` samples it with ``grid_sample``. Gradients flow to the images (and to the transforms).
When a chip shrinks the image strongly, dlib first builds an image pyramid; ``antialias=True`` averages each chip
pixel's footprint instead (the astronaut chip is upsampled, where both are plain bilinear).
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from synthcore.align.resample import invert_affine, warp_affine
from synthcore.align.similarity import estimate_similarity

__all__ = ["TEMPLATE5", "chip_transform", "warp_to_chips"]

# dlib's 5-point chip template in the unit square (x, y), in the shape predictor's point order: outer and inner
# corner of the image-right eye, outer and inner corner of the image-left eye, bottom of the nose. Measured.
TEMPLATE5 = (
    (0.8595674596, 0.2134981538),
    (0.6460604764, 0.2289674388),
    (0.1205750621, 0.2137274527),
    (0.3340850614, 0.2290642403),
    (0.4901123136, 0.6277975316),
)

Points = Union[np.ndarray, torch.Tensor]


def chip_transform(landmarks5: Points, size: int = 150, padding: float = 0.25) -> torch.Tensor:
    """[..., 2, 3] float64 maps from image pixel coordinates to dlib chip pixel coordinates.

    ``landmarks5``: [5, 2] or [N, 5, 2] (x, y) points from dlib's 5-point shape predictor. The result has the
    same leading shape ([2, 3] or [N, 2, 3]).
    """
    if size < 2:
        raise ValueError(f"chip size must be at least 2, got {size}")
    if not padding >= 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    pts = torch.as_tensor(landmarks5, dtype=torch.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    if pts.ndim != 3 or tuple(pts.shape[1:]) != (5, 2):
        raise ValueError(f"expected 5 landmarks [5, 2] or [N, 5, 2], got {list(torch.as_tensor(landmarks5).shape)}")
    if not bool(torch.isfinite(pts).all()):
        raise ValueError("landmarks contain NaN or infinite values")
    template = torch.tensor(TEMPLATE5, dtype=torch.float64, device=pts.device)
    template = size * (template + padding) / (1 + 2 * padding)
    fit = estimate_similarity(template[None].expand(pts.shape[0], 5, 2), pts)  # [N, 2, 3] template -> image
    lin = fit[:, :, :2]
    scale = lin[:, :, 0].norm(dim=1)  # |(a, b)|
    if bool((scale * size <= 1).any()):
        raise ValueError("landmarks of at least one face coincide (or span under a pixel): no chip is defined")
    centre = lin @ torch.full((2, 1), size / 2, dtype=torch.float64) + fit[:, :, 2:]  # [N, 2, 1]
    # chip -> image: centre + k R (c - (size - 1) / 2), with R = lin / scale and k the pixel pitch of the rectangle.
    k = (size * scale - 1) / (size - 1)
    rot_k = lin * (k / scale)[:, None, None]
    half = torch.full((2, 1), (size - 1) / 2, dtype=torch.float64)
    to_image = torch.cat([rot_k, centre - rot_k @ half], dim=2)
    out = invert_affine(to_image)
    return out[0] if single else out


def warp_to_chips(
    images: torch.Tensor, transforms: torch.Tensor, size: int = 150, antialias: bool = False
) -> torch.Tensor:
    """Bilinear chips [N, C, size, size] of float images [N, C, H, W] (any value range; zero outside the image).

    ``transforms``: [N, 2, 3] (or [2, 3] for every image) from ``chip_transform``. Differentiable.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {list(images.shape)}")
    t = torch.as_tensor(transforms)
    if t.ndim == 2:
        t = t[None].expand(images.shape[0], 2, 3)
    if tuple(t.shape) != (images.shape[0], 2, 3):
        raise ValueError(f"expected transforms [{images.shape[0]}, 2, 3] (one per image), got {list(t.shape)}")
    return warp_affine(images, t.to(images.device), (size, size), antialias=antialias)
