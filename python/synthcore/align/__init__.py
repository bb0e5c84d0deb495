"""Differentiable crops from a generator frame to the frame a face-recognition network expects.

* ``fixed_crop``: fixed two-eye (or box) crops of FFHQ-aligned generator output, any resolution, no detector.
* ``five_point_crop``: per-image similarity warp from five landmarks onto the ArcFace template.

Gradients flow to the input images; shrinking is antialiased unless asked otherwise.
"""

from synthcore.align.crops import (
    CROP_PRESETS,
    five_point_crop,
    five_point_matrices,
    fixed_crop,
    fixed_crop_box,
    fixed_crop_grid,
    fixed_crop_matrix,
)
from synthcore.align.frames import ARCFACE_TEMPLATE_112, BOX_CROPS, EYE_FRAMES, arcface_template
from synthcore.align.resample import resample_axis_aligned, warp_affine
from synthcore.align.similarity import estimate_similarity

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "BOX_CROPS",
    "CROP_PRESETS",
    "EYE_FRAMES",
    "arcface_template",
    "estimate_similarity",
    "five_point_crop",
    "five_point_matrices",
    "fixed_crop",
    "fixed_crop_box",
    "fixed_crop_grid",
    "fixed_crop_matrix",
    "resample_axis_aligned",
    "warp_affine",
]
