"""The aligned judge: dlib's own pipeline (detector, per-image 5 landmarks, chip, descriptor) over finished images.

Why a separate path: an optimisation that pushes identities apart through one recognition path learns to fool that
path (a fixed warp from the generator frame to the chip measured 13.6% -> 3.8% confusable pairs along the optimised
path but only 10.8% -> 8.6% through dlib's pipeline). So results are judged the way a user of the dataset would
see them: each image, as rendered to 8 bits, goes through the face detector; the best detection gets the 5-point
landmarks; the landmarks give the 150x150 chip; the chip gives the descriptor. An image without a detection has no
descriptor (it is not a face to the judge) and is reported as such.
"""

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch

from synthcore.embedding import from_uint8
from synthcore.imageio import to_uint8

__all__ = ["AlignedJudge", "JudgedImages", "confusable_pairs"]


@dataclass
class JudgedImages:
    """What the judge saw: ``found`` [N] bool, ``landmarks`` [N, 5, 2] (NaN where not found), ``descriptors`` [N, D]
    float32 (NaN rows where not found)."""

    found: np.ndarray
    landmarks: np.ndarray
    descriptors: np.ndarray

    @property
    def detection_rate(self) -> float:
        return float(self.found.mean()) if len(self.found) else float("nan")


def _to_uint8_frames(images: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """[N, 3, H, W] float in [-1, 1] (generator output) or [N, H, W, 3] uint8 to [N, H, W, 3] uint8, as rendered."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected float images [N, 3, H, W], got {list(images.shape)}")
        return to_uint8(images)
    frames = np.asarray(images)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


class AlignedJudge:
    """Detector + 5-point predictor + chip warp + embedder, applied to 8-bit images with no gradient.

    Args:
        detector: ``MMODDetector``; predictor: ``ShapePredictor``; embedder: a network taking [N, 3, S, S] RGB in
            [-1, 1] aligned chips (``DlibResNet``: S = 150); upsample: detector upsampling (64 px frames need 1);
        chip_size, padding: dlib's chip geometry; batch: chips per embedder pass.
    """

    def __init__(
        self, detector, predictor, embedder, upsample: int = 1, chip_size: int = 150, padding: float = 0.25,
        batch: int = 32,
    ) -> None:  # fmt: skip
        self.detector, self.predictor, self.embedder = detector, predictor, embedder
        self.upsample, self.chip_size, self.padding, self.batch = int(upsample), int(chip_size), float(padding), batch
        self.metric = getattr(embedder, "metric", "euclidean")
        self.threshold = float(getattr(embedder, "threshold", 0.6))

    @classmethod
    def load(cls, upsample: int = 1, device: Union[str, torch.device] = "cpu") -> "AlignedJudge":
        """dlib's pipeline from the installed model files (``synthcore models install`` names them)."""
        from synthcore.nets.dlib.files import dlib_model_file
        from synthcore.nets.dlib.mmod import MMODDetector
        from synthcore.nets.dlib.resnet import load_dlib_resnet
        from synthcore.nets.dlib.shape_predictor import ShapePredictor

        return cls(
            MMODDetector.load("dlib-mmod-detector"),
            ShapePredictor.load(dlib_model_file("dlib-shape-predictor-5")),
            load_dlib_resnet(dlib_model_file("dlib-resnet-v1"), device=device),
            upsample=upsample,
        )

    @torch.no_grad()
    def judge(self, images: Union[torch.Tensor, np.ndarray]) -> JudgedImages:
        """Judge images: generator output [N, 3, H, W] in [-1, 1] (quantised to 8 bits first) or uint8 [N, H, W, 3]."""
        from synthcore.align.dlib_chip import chip_transform, warp_to_chips
        from synthcore.align.face_landmarks import detect_landmarks

        frames = _to_uint8_frames(images)
        landmarks, found = detect_landmarks(frames, self.detector, self.predictor, upsample=self.upsample)
        device = next(self.embedder.parameters()).device
        descriptors = None
        rows = np.flatnonzero(found)
        for start in range(0, len(rows), self.batch):
            idx = rows[start : start + self.batch]
            x = from_uint8(frames[idx])
            t = chip_transform(torch.from_numpy(landmarks[idx]), self.chip_size, self.padding).float()
            chips = warp_to_chips(x, t, self.chip_size).to(device)
            d = self.embedder(chips).float().cpu().numpy()
            if descriptors is None:
                descriptors = np.full((len(frames), d.shape[1]), np.nan, dtype=np.float32)
            descriptors[idx] = d
        if descriptors is None:
            descriptors = np.full((len(frames), 0), np.nan, dtype=np.float32)
        return JudgedImages(found=found, landmarks=landmarks, descriptors=descriptors)


def confusable_pairs(
    descriptors: Union[np.ndarray, torch.Tensor], threshold: float, metric: str = "euclidean",
    valid: Optional[np.ndarray] = None,
) -> Tuple[float, int, int]:  # fmt: skip
    """Share of pairs (i < j) of valid rows that the recogniser confuses: distance under ``threshold``.

    ``metric``: ``"euclidean"`` (dlib: same person below 0.6) or ``"angle"`` (radians between the vectors). Rows
    that are not ``valid`` (default: rows without NaN) take part in no pair. Returns ``(share, confused, pairs)``;
    the share is NaN when there is no pair.
    """
    d = torch.as_tensor(np.asarray(descriptors), dtype=torch.float64)
    if d.ndim != 2:
        raise ValueError(f"descriptors must be [N, D], got {list(d.shape)}")
    keep = torch.isfinite(d).all(dim=1) if valid is None else torch.as_tensor(np.asarray(valid, dtype=bool))
    d = d[keep]
    n = d.shape[0]
    pairs = n * (n - 1) // 2
    if pairs == 0:
        return float("nan"), 0, 0
    if metric == "euclidean":
        dist = torch.cdist(d, d)
    elif metric == "angle":
        u = torch.nn.functional.normalize(d, dim=1)
        dist = torch.arccos((u @ u.T).clamp(-1, 1))
    else:
        raise ValueError(f"metric must be 'euclidean' or 'angle', got {metric!r}")
    iu = torch.triu_indices(n, n, offset=1)
    confused = int((dist[iu[0], iu[1]] < threshold).sum())
    return confused / pairs, confused, pairs
