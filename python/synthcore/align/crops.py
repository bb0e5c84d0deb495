"""Crops from a generator frame to a recognition frame: fixed (FFHQ-aligned output) or from five landmarks."""

from typing import Tuple

import torch

from synthcore.align.frames import BOX_CROPS, EYE_FRAMES, arcface_template
from synthcore.align.resample import resample_axis_aligned, warp_affine
from synthcore.align.similarity import estimate_similarity

CROP_PRESETS: Tuple[str, ...] = tuple(EYE_FRAMES) + tuple(BOX_CROPS)

# (out_width, out_height), (step_x, step_y), (start_x, start_y): output pixel (u, v) samples the source at
# (start_x + step_x * u, start_y + step_y * v).
Grid = Tuple[Tuple[int, int], Tuple[float, float], Tuple[float, float]]


def _box_grid(box: Tuple[float, float, float, float], out_size: int) -> Grid:
    """Grid resizing a box given in edge coordinates (0 at the image's top-left corner) to out_size squared."""
    x0, y0, x1, y1 = box
    step = ((x1 - x0) / out_size, (y1 - y0) / out_size)
    # Output pixel u covers [x0 + u*step, x0 + (u+1)*step); its centre, in pixel-centre coordinates:
    start = (x0 + 0.5 * step[0] - 0.5, y0 + 0.5 * step[1] - 0.5)
    return (out_size, out_size), step, start


def fixed_crop_box(preset: str, width: int, height: int, source: str = "ffhq") -> Tuple[float, float, float, float]:
    """The source box (x0, y0, x1, y1; edges measured from the top-left corner) a fixed crop resizes.

    Eye presets use the Idiap cropper's rule: scale s = (x_left_out - x_right_out) / (x_left_in - x_right_in),
    box corner = right_eye_in - right_eye_out / s, side = size_out / s; no rotation (so a preset whose eyes
    differ in height, like ``arcface``, is matched on the image-left eye). FFHQ 1024 to ``arcface`` gives
    columns 86.6-944.8, rows 83.9-942.0. Box presets (``psp``) scale their fixed box with the image.
    """
    if preset in BOX_CROPS:
        crop = BOX_CROPS[preset]
        sx, sy = width / crop.frame_size, height / crop.frame_size
        x0, y0, x1, y1 = crop.box
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    if preset not in EYE_FRAMES:
        raise ValueError(f"unknown crop preset {preset!r}; known: {', '.join(CROP_PRESETS)}")
    if source not in EYE_FRAMES:
        raise ValueError(f"unknown source frame {source!r}; known: {', '.join(EYE_FRAMES)}")
    src = EYE_FRAMES[source].scaled(width, height)
    dst = EYE_FRAMES[preset]
    side = dst.size * (src.left_eye[0] - src.right_eye[0]) / (dst.left_eye[0] - dst.right_eye[0])
    x0 = src.right_eye[0] - dst.right_eye[0] * side / dst.size
    y0 = src.right_eye[1] - dst.right_eye[1] * side / dst.size
    return (x0, y0, x0 + side, y0 + side)


def fixed_crop_grid(preset: str, width: int, height: int, source: str = "ffhq") -> Grid:
    """Sampling grid of a fixed crop of a ``width`` x ``height`` image laid out as ``source``."""
    out = BOX_CROPS[preset].out_size if preset in BOX_CROPS else None
    box = fixed_crop_box(preset, width, height, source)
    return _box_grid(box, out if out is not None else EYE_FRAMES[preset].size)


def fixed_crop_matrix(preset: str, width: int, height: int, source: str = "ffhq") -> torch.Tensor:
    """[2, 3] float64 map from source to crop pixel coordinates (cv2's convention), e.g. to move landmarks."""
    _, (ax, ay), (bx, by) = fixed_crop_grid(preset, width, height, source)
    return torch.tensor([[1 / ax, 0.0, -bx / ax], [0.0, 1 / ay, -by / ay]], dtype=torch.float64)


def fixed_crop(
    images: torch.Tensor, preset: str = "arcface", source: str = "ffhq", kernel: str = "cubic", antialias: bool = True
) -> torch.Tensor:
    """Crop [N, C, H, W] generator output (FFHQ-aligned by default, any size) to the ``preset`` layout.

    E.g. ``fixed_crop(img1024, "arcface")`` gives the 112x112 ArcFace crop. Differentiable in ``images``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got {list(images.shape)}")
    out_size, step, start = fixed_crop_grid(preset, images.shape[-1], images.shape[-2], source)
    return resample_axis_aligned(images, out_size, step, start, kernel, antialias)


def five_point_matrices(landmarks: torch.Tensor, size: int = 112) -> torch.Tensor:
    """[N, 2, 3] similarity maps from each image's five landmarks ([N, 5, 2]) to the ArcFace template."""
    if landmarks.ndim != 3 or tuple(landmarks.shape[1:]) != (5, 2):
        raise ValueError(f"expected landmarks [N, 5, 2], got {list(landmarks.shape)}")
    dtype = landmarks.dtype if landmarks.is_floating_point() else torch.float64
    landmarks = landmarks.to(dtype)
    return estimate_similarity(landmarks, arcface_template(size, dtype).to(landmarks.device))


def five_point_crop(
    images: torch.Tensor,
    landmarks: torch.Tensor,
    size: int = 112,
    antialias: bool = True,
) -> torch.Tensor:
    """ArcFace-aligned ``size`` x ``size`` crops of [N, C, H, W] images, each from its own landmarks [N, 5, 2].

    Landmarks (a tensor or nested lists): eye on the image's left, eye on the image's right, nose tip, mouth
    corners (left, right), in source pixel coordinates. ``antialias=False`` reproduces insightface's
    ``norm_crop`` (plain bilinear).
    """
    landmarks = torch.as_tensor(landmarks, device=images.device)
    if landmarks.ndim == 2:
        landmarks = landmarks[None]
    if landmarks.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {landmarks.shape[0]} landmark sets")
    matrices = five_point_matrices(landmarks.to(torch.float64), size).to(images.dtype)
    return warp_affine(images, matrices, (size, size), antialias)
