"""Per-image five-point landmarks the way dlib's own pipeline finds them: face detector, then shape predictor.

``detect_landmarks`` runs the MMOD CNN detector (:class:`synthcore.nets.dlib.mmod.MMODDetector`) on each image,
keeps the best-scoring detection and runs dlib's 5-point shape predictor
(:class:`synthcore.nets.dlib.shape_predictor.ShapePredictor`) in its box. Landmarks are computed once per image
and are not differentiable; ``synthcore.align.dlib_chip`` turns them into the differentiable warp.

Images where the detector finds no face get ``found = False``. Their landmarks are NaN, or, when the caller
passes ``fallback`` (e.g. the mean landmarks of the images that were found, or a generator family's fixed
landmarks), a copy of that [5, 2] set, so a batch can still be warped while the caller knows which images were
not faces to dlib.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

__all__ = ["detect_landmarks"]

ImagesLike = Union[np.ndarray, torch.Tensor, Sequence[np.ndarray]]


def _as_uint8_list(images: ImagesLike) -> list:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ValueError(f"images must be [N, H, W, 3] uint8 RGB, got shape {images.shape}")
        images = list(images)
    out = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {i} must be [H, W, 3] uint8 RGB, got {image.dtype} {image.shape}")
        out.append(image)
    return out


def detect_landmarks(
    images: ImagesLike,
    detector,
    predictor,
    upsample: int = 0,
    fallback: np.ndarray | None = None,
    chunk: int = 32,
) -> tuple:
    """Five-point landmarks of the best detected face in each image.

    Args:
        images: ``[N, H, W, 3]`` uint8 RGB (array or tensor), or a list of ``[H, W, 3]`` uint8 images of any sizes.
        detector: an ``MMODDetector`` (``detect_batch(images, upsample)``).
        predictor: a ``ShapePredictor`` (``predict(image, box) -> [P, 2]``).
        upsample: how many times the detector doubles each image first (64x64 generator frames need 1 or 2).
        fallback: optional ``[P, 2]`` landmarks given to images without a detection (default: NaN).
        chunk: images per detector pass (same-size images are batched).

    Returns:
        ``(landmarks [N, P, 2] float64 (x, y) pixels, found [N] bool)``.
    """
    frames = _as_uint8_list(images)
    points = int(getattr(predictor, "num_points", 5))
    if fallback is not None:
        fallback = np.asarray(fallback, dtype=np.float64)
        if fallback.shape != (points, 2) or not np.isfinite(fallback).all():
            raise ValueError(f"fallback landmarks must be a finite [{points}, 2] array, got shape {fallback.shape}")
    landmarks = np.full((len(frames), points, 2), np.nan, dtype=np.float64)
    found = np.zeros(len(frames), dtype=bool)
    # Same-size images share detector passes; the grouping keeps the output in input order.
    by_size: dict = {}
    for i, frame in enumerate(frames):
        by_size.setdefault(frame.shape, []).append(i)
    for indices in by_size.values():
        detections = detector.detect_batch(np.stack([frames[i] for i in indices]), upsample, chunk=chunk)
        for i, boxes in zip(indices, detections):
            if not boxes:
                continue
            best = max(boxes, key=lambda b: b[4])
            landmarks[i] = predictor.predict(frames[i], best[:4])
            found[i] = True
    if fallback is not None:
        landmarks[~found] = fallback
    return landmarks, found
