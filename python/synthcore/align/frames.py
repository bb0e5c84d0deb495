"""Reference frames: where the eyes (or the five ArcFace points) sit in each image layout synthcore crops between.

x right, y down. The five-point template has pixel centres at integers, the convention of insightface and
``cv2.warpAffine``; the two-eye layouts are used the way the Idiap cropper uses them, as distances from the
image's top-left corner (``crops.fixed_crop_box``), so synthcore's fixed crops match that pipeline's boxes.
"Right eye" is the subject's right eye, i.e. the one on the image's left (smaller x).
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import torch

Point = Tuple[float, float]

# insightface's five-point template for 112x112 crops: eyes, nose tip, mouth corners (image left before right).
ARCFACE_TEMPLATE_112: Tuple[Point, ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


@dataclass(frozen=True)
class EyeFrame:
    """A square image layout defined by its size and its two eye centres."""

    size: int
    right_eye: Point  # image-left eye
    left_eye: Point  # image-right eye

    def scaled(self, width: float, height: float) -> "EyeFrame":
        """The same layout in an image of another size (eye positions scale with it)."""
        sx, sy = width / self.size, height / self.size
        r, l = self.right_eye, self.left_eye
        return EyeFrame(int(round(width)), (r[0] * sx, r[1] * sy), (l[0] * sx, l[1] * sy))


# The fixed two-eye layouts of the Idiap face_synthetics cropper (identity_diffusion.md section 9). "ffhq" is
# the FFHQ-aligned generator frame; it is scaled to the actual image size, so it also covers 512 and 256 px
# generators (ffhq256 and ffhq128 are exactly its quarter and eighth).
EYE_FRAMES: Dict[str, EyeFrame] = {
    "ffhq": EyeFrame(1024, (380.0, 480.0), (650.0, 480.0)),
    "ffhq256": EyeFrame(256, (95.0, 120.0), (162.5, 120.0)),
    "ffhq128": EyeFrame(128, (47.5, 60.0), (81.25, 60.0)),
    "arcface": EyeFrame(112, ARCFACE_TEMPLATE_112[0], ARCFACE_TEMPLATE_112[1]),
    "iresnet_bob": EyeFrame(112, (38.2946, 51.6), (73.5318, 51.6)),
    "synmultipie": EyeFrame(182, (60.67, 60.67), (121.33, 60.67)),
    "synface": EyeFrame(256, (95.0, 120.0), (162.5, 120.0)),
    "sf2_feat": EyeFrame(160, (53.0, 46.0), (107.0, 46.0)),
}


@dataclass(frozen=True)
class BoxCrop:
    """A fixed box of a square source frame (pixel edges, end exclusive), resized to ``out_size``."""

    frame_size: int
    box: Tuple[float, float, float, float]  # x0, y0, x1, y1
    out_size: int


# pSp/e4e-style identity losses: rows 35:223, columns 32:220 of a 256 px FFHQ-aligned image, pooled to 112.
BOX_CROPS: Dict[str, BoxCrop] = {"psp": BoxCrop(256, (32.0, 35.0, 220.0, 223.0), 112)}


def arcface_template(size: int = 112, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The five ArcFace points for a ``size`` x ``size`` crop, [5, 2].

    insightface's rule: sizes that are multiples of 112 scale the template; multiples of 128 scale by size/128
    and shift x by 8*size/128 (the template came from a 96x112 layout padded to 112 wide). Other sizes scale
    by size/112.
    """
    t = torch.tensor(ARCFACE_TEMPLATE_112, dtype=torch.float64)
    if size % 112 != 0 and size % 128 == 0:
        ratio = size / 128
        t = t * ratio
        t[:, 0] += 8 * ratio
    else:
        t = t * (size / 112)
    return t.to(dtype)
