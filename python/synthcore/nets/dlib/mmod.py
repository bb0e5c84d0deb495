"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``) in torch: file reader, network, detection.

The file (dlib's binary serialisation, read with :class:`~synthcore.nets.dlib.serialize.DlibReader`) holds, in
order: the loss layer's version (1), its tag ``loss_mmod_`` and options (detector windows as width/height, the
training losses, the truth-match IoU, the non-maximum-suppression overlap test, the ignore overlap test); one
version number per layer from the outermost inward (2 ... 2, then 3 for the layer on the input); the input layer
(``input_rgb_image_pyramid`` with its three channel means); then the layer bodies from the innermost outward
(``con_4`` convolutions, ``bn_con2`` batch norms that dlib runs as affine layers, ``relu_``), each followed by three
flags and three (empty) training tensors; the input-side layer also stores its sample expansion factor.

Detection, as dlib's ``loss_mmod`` does it:

1. The image is optionally upsampled (``upsample`` times by dlib's 2x pyramid step, :func:`pyramid_up`: uint8,
   corner-aligned bilinear onto ``2H + 1 x 2W + 2``).
2. An image pyramid (levels ``floor(5/6 n)``, dlib's ``pyramid_down<6>``) is packed into one tiled canvas
   (:func:`tiled_pyramid_layout`) so one CNN pass scores every scale. The canvas is built in network units:
   background 0 (the mean colour), level 0 ``(pixel - mean) / 256``, each further level a float bilinear
   (corner-aligned) resize of the previous one.
3. The CNN gives one score map per detector window. Every output cell scoring above ``adjust_threshold`` (0 by
   default, as dlib's ``net(img)``; the file stores no threshold) becomes a window of the stored size centred on
   the cell's input position (each convolution maps an output coordinate ``p`` to
   ``p * stride - padding + kernel // 2``; here ``8p + 14``).
4. The window is mapped from the canvas to the pyramid level nearest to its centre, then up to the image
   (``p * 6/5 + 0.3`` per level) and rounded to integer pixels (dlib's inclusive ``rectangle``).
5. Non-maximum suppression in score order with the stored overlap test (IoU above 0.338, or one box covering
   more than the stored fraction of the other), in the upsampled image; then the boxes go back down through the
   upsampling (``(p - (2.5, 1.5)) / 2`` per 2x step, rounded).

Agreement with dlib 20.0.1 (``dlib-bin``, measured once, not a dependency): identical boxes and scores within
2e-6 on ``skimage.data.astronaut()`` (upsample 0 and 1) and the reference chips; identical boxes on 200 of 200
random DCGAN frames at upsample 1, scores within 8e-4 (dlib's uint8 upsampling rounds a few exact-integer
pixels one level down, which this port does not copy). Details in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthcore.nets.dlib.files import dlib_model_file
from synthcore.nets.dlib.serialize import DlibFormatError, DlibReader

__all__ = [
    "Detection",
    "MMODDetector",
    "MMODNet",
    "MMODOptions",
    "pyramid_up",
    "read_mmod",
    "tiled_pyramid_layout",
]

Detection = tuple  # (left, top, right, bottom, score): inclusive integer pixel box and the CNN score

# Bounds that no real detector file exceeds; larger values mean a corrupt or hostile file.
_MAX_LAYERS = 1000
_MAX_WINDOWS = 64
_MAX_WINDOW_SIDE = 4096
_MAX_KERNEL = 64
_MAX_CHANNELS = 4096

# Tiled-pyramid geometry of dlib's ``input_rgb_image_pyramid`` (the file's input-layer version stores none, so
# dlib's defaults apply): padding between levels, padding around the canvas, smallest level height kept.
PYRAMID_PADDING = 10
PYRAMID_OUTER_PADDING = 11
PYRAMID_MIN_HEIGHT = 5
PYRAMID_RATIO = 6  # pyramid_down<6>: each level is 5/6 of the previous


@dataclass(frozen=True)
class MMODOptions:
    """The loss layer's stored options (what detection needs: windows and the non-max-suppression test)."""

    windows: tuple  # ((width, height), ...): one detector window per output channel
    loss_per_false_alarm: float
    loss_per_missed_target: float
    truth_match_iou_threshold: float
    nms_iou_threshold: float
    nms_percent_covered_threshold: float
    ignore_iou_threshold: float
    ignore_percent_covered_threshold: float


@dataclass
class _Conv:
    weight: np.ndarray  # [out, in, kh, kw]
    bias: np.ndarray  # [out]
    stride: tuple  # (y, x)
    padding: tuple  # (y, x)


@dataclass
class _Affine:
    scale: np.ndarray  # [C]
    shift: np.ndarray  # [C]


class _ReLU:
    pass


# --------------------------------------------------------------------------------------------- file reader


def _read_options(r: DlibReader) -> MMODOptions:
    count = r.read_count("detector windows", min_bytes_each=4)
    if not 1 <= count <= _MAX_WINDOWS:
        raise r.error(f"detector window count {count} is out of range (1..{_MAX_WINDOWS})")
    windows = tuple(
        (r.read_uint("window width", _MAX_WINDOW_SIDE), r.read_uint("window height", _MAX_WINDOW_SIDE))
        for _ in range(count)
    )
    if any(w < 1 or h < 1 for w, h in windows):
        raise r.error(f"empty detector window in {list(windows)}")
    values = [r.read_float(name) for name in ("loss per false alarm", "loss per missed target", "truth match IoU")]
    overlaps = [r.read_float(name) for name in ("nms IoU", "nms covered", "ignore IoU", "ignore covered")]
    for name, value in zip(("nms IoU", "nms covered", "ignore IoU", "ignore covered"), overlaps):
        if not 0.0 <= value <= 1.0:
            raise r.error(f"{name} threshold {value} is outside [0, 1]")
    return MMODOptions(windows, *values, *overlaps)


def _read_training_state(r: DlibReader, what: str) -> None:
    """The three flags and three training tensors dlib writes after every layer body (unused for inference)."""
    for flag in ("setup flag", "stale-gradient flag", "disabled-output flag"):
        r.read_bool(f"{what} {flag}")
    for tensor in ("input gradient", "cached output", "parameter gradient"):
        r.read_tensor(f"{what} {tensor}")


def _expect_alias(r: DlibReader, dims: tuple, what: str) -> None:
    """An alias tensor (version 1 and four dimensions): a view into the layer's parameters, checked for shape."""
    r.expect_int(1, f"{what} version")
    start = r.offset
    found = tuple(r.read_uint(f"{what} dimension", 1 << 40) for _ in range(4))
    if found != dims:
        raise r.error(f"{what} has shape {list(found)}, expected {list(dims)}", start)


def _read_conv(r: DlibReader, in_channels: int, what: str) -> _Conv:
    params = r.read_tensor(f"{what} parameters")
    start = r.offset
    filters = r.read_uint(f"{what} filters", _MAX_CHANNELS)
    kh, kw = r.read_uint(f"{what} rows", _MAX_KERNEL), r.read_uint(f"{what} columns", _MAX_KERNEL)
    sy, sx = r.read_uint(f"{what} stride y", _MAX_KERNEL), r.read_uint(f"{what} stride x", _MAX_KERNEL)
    py, px = r.read_uint(f"{what} padding y", _MAX_KERNEL), r.read_uint(f"{what} padding x", _MAX_KERNEL)
    if min(filters, kh, kw, sy, sx) < 1 or py >= kh or px >= kw:
        raise r.error(f"{what}: invalid geometry {filters} filters {kh}x{kw} stride {sy},{sx} pad {py},{px}", start)
    n_weight = filters * in_channels * kh * kw
    if params.size != n_weight + filters:
        raise r.error(f"{what}: {params.size} parameters, expected {n_weight + filters} for {in_channels} inputs")
    _expect_alias(r, (filters, in_channels, kh, kw), f"{what} filters")
    _expect_alias(r, (1, filters, 1, 1), f"{what} biases")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.read_float(f"{what} {name} multiplier")
    flat = params.reshape(-1)
    return _Conv(flat[:n_weight].reshape(filters, in_channels, kh, kw), flat[n_weight:], (sy, sx), (py, px))


def _read_bn_as_affine(r: DlibReader, channels: int, what: str) -> _Affine:
    """``bn_con2``: dlib replaces a batch norm by the affine layer its running statistics define."""
    params = r.read_tensor(f"{what} parameters")
    if params.size != 2 * channels:
        raise r.error(f"{what}: {params.size} parameters, expected {2 * channels} for {channels} channels")
    _expect_alias(r, (1, channels, 1, 1), f"{what} gamma")
    _expect_alias(r, (1, channels, 1, 1), f"{what} beta")
    stats = {}
    for name in ("means", "inverse stds", "running means", "running variances"):
        t = r.read_tensor(f"{what} {name}")
        if t.size != channels:
            raise r.error(f"{what}: {name} hold {t.size} values, expected {channels}")
        stats[name] = t.reshape(-1).astype(np.float64)
    r.read_uint(f"{what} update count")
    r.read_uint(f"{what} running window")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        r.read_float(f"{what} {name} multiplier")
    eps = r.read_float(f"{what} epsilon")
    variance = stats["running variances"] + eps
    if not np.all(variance > 0):
        raise r.error(f"{what}: running variance + epsilon is not positive")
    flat = params.reshape(-1).astype(np.float64)
    scale = flat[:channels] / np.sqrt(variance)
    return _Affine(scale, flat[channels:] - scale * stats["running means"])


def _read_affine(r: DlibReader, channels: int, what: str) -> _Affine:
    """``affine_``: gamma and beta stored directly, then the mode (1 = per channel, as after a convolution)."""
    params = r.read_tensor(f"{what} parameters")
    if params.size != 2 * channels:
        raise r.error(f"{what}: {params.size} parameters, expected {2 * channels} for {channels} channels")
    _expect_alias(r, (1, channels, 1, 1), f"{what} gamma")
    _expect_alias(r, (1, channels, 1, 1), f"{what} beta")
    r.expect_int(1, f"{what} mode (1 = convolutional)")
    flat = params.reshape(-1).astype(np.float64)
    return _Affine(flat[:channels], flat[channels:])


def read_mmod(path: Union[str, os.PathLike]) -> tuple:
    """Parse an MMOD detector file: ``(options, channel means (R, G, B), layers innermost first)``.

    Raises :class:`DlibFormatError` (a ``ValueError``) naming the file and offset for anything else."""
    r = DlibReader.from_file(path)
    r.expect_int(1, "loss layer version")
    r.expect_string("loss_mmod_", "loss layer tag")
    options = _read_options(r)
    depth = 0
    while True:
        start = r.offset
        version = r.read_int("layer version")
        depth += 1
        if version == 3:
            break
        if version != 2 or depth > _MAX_LAYERS:
            raise r.error(
                f"unsupported layer version {version} at depth {depth} (expected 2, or 3 for the input)", start
            )
    r.expect_string("input_rgb_image_pyramid", "input layer tag")
    means = tuple(r.read_float(f"{c} mean") for c in ("red", "green", "blue"))
    if not all(0.0 <= m <= 255.0 for m in means):
        raise r.error(f"channel means {means} are outside [0, 255]")
    layers: list = []
    channels = 3
    for index in range(depth):
        what = f"layer {index}"
        start = r.offset
        tag = r.read_string(f"{what} tag", max_length=64)
        if tag == "con_4":
            layer = _read_conv(r, channels, f"{what} (con_4)")
            channels = layer.weight.shape[0]
        elif tag == "bn_con2":
            layer = _read_bn_as_affine(r, channels, f"{what} (bn_con2)")
        elif tag == "affine_":
            layer = _read_affine(r, channels, f"{what} (affine_)")
        elif tag == "relu_":
            layer = _ReLU()
        else:
            raise r.error(f"unsupported layer {tag!r} (the MMOD reader knows con_4, bn_con2, affine_, relu_)", start)
        _read_training_state(r, what)
        if index == 0:
            r.expect_int(1, "sample expansion factor")
        layers.append(layer)
    r.require_end()
    if channels != len(options.windows):
        raise DlibFormatError(f"{path}: the network outputs {channels} channels for {len(options.windows)} windows")
    if not isinstance(layers[0], _Conv) or not isinstance(layers[-1], _Conv):
        raise DlibFormatError(f"{path}: the network must start and end with a convolution")
    return options, means, layers


# ----------------------------------------------------------------------------------------------- network


class MMODNet(nn.Module):
    """The detector CNN: convolutions (batch norm folded in), ReLUs; input ``(RGB pixel - means) / 256``.

    ``offset`` and ``scale`` map an output cell ``(x, y)`` to its input position ``offset + scale * (x, y)``."""

    def __init__(self, means: Sequence[float], layers: Sequence) -> None:
        super().__init__()
        self.register_buffer("means", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1))
        modules: list = []
        self.scale, self.offset = 1, 0
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, _Conv):
                weight, bias = layer.weight.astype(np.float64), layer.bias.astype(np.float64)
                # An affine right after a convolution folds into it: g * (W x + b) + s = (g W) x + (g b + s).
                while i + 1 < len(layers) and isinstance(layers[i + 1], _Affine):
                    aff = layers[i + 1]
                    weight = weight * aff.scale[:, None, None, None]
                    bias = bias * aff.scale + aff.shift
                    i += 1
                kh, kw = weight.shape[2:]
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], (kh, kw), layer.stride, layer.padding)
                conv.weight.data = torch.from_numpy(weight.astype(np.float32))
                conv.bias.data = torch.from_numpy(bias.astype(np.float32))
                modules.append(conv)
                # dlib's map from output to input: p * stride - padding + kernel // 2 (square geometry here).
                if layer.stride[0] != layer.stride[1] or layer.padding[0] != layer.padding[1] or kh != kw:
                    raise DlibFormatError("MMOD detector with non-square convolution geometry is not supported")
                self.offset += self.scale * (kh // 2 - layer.padding[0])
                self.scale *= layer.stride[0]
            elif isinstance(layer, _Affine):
                raise DlibFormatError("MMOD detector with an affine layer not after a convolution is not supported")
            else:
                modules.append(nn.ReLU())
            i += 1
        self.body = nn.Sequential(*modules)
        self.requires_grad_(False)

    def output_size(self, height: int, width: int) -> tuple:
        """Score-map size for an input of ``height x width`` (0 where the input is smaller than the network needs)."""
        for conv in self.body:
            if isinstance(conv, nn.Conv2d):
                (kh, kw), (sy, sx), (py, px) = conv.kernel_size, conv.stride, conv.padding
                height = max((height + 2 * py - kh) // sy + 1, 0)
                width = max((width + 2 * px - kw) // sx + 1, 0)
        return height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` normalised input -> ``[N, windows, h, w]`` detection scores."""
        return self.body(x)


# ---------------------------------------------------------------------------------------- image pyramid


def _bilinear_corner_aligned(images: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """dlib's ``resize_image`` (bilinear, first and last pixels aligned) over the last two axes, in float32.

    ``images``: ``[..., H, W]`` -> ``[..., out_h, out_w]``; the sample positions are ``i * (H - 1) / (out_h - 1)``."""
    h, w = images.shape[-2:]

    def axis(n_in: int, n_out: int) -> tuple:
        step = (n_in - 1) / max(n_out - 1, 1)
        pos = torch.arange(n_out, dtype=torch.float64) * step
        lo = pos.floor().long().clamp(0, n_in - 1)
        frac = (pos - lo).to(torch.float32)
        return lo, (lo + 1).clamp(max=n_in - 1), frac

    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    src = images.to(torch.float32)
    top, bottom = src[..., y0, :], src[..., y1, :]
    fy = fy.view(-1, 1)
    upper = (1 - fx) * top[..., x0] + fx * top[..., x1]
    lower = (1 - fx) * bottom[..., x0] + fx * bottom[..., x1]
    return (1 - fy) * upper + fy * lower


def pyramid_up(images: torch.Tensor) -> torch.Tensor:
    """dlib's ``pyramid_up`` with its 2x pyramid: ``[N, H, W, 3]`` uint8 -> ``[N, 2H + 1, 2W + 2, 3]`` uint8.

    The size is the rounded image of the last pixel under ``p -> 2p + (2.5, 1.5)`` (x, y), plus one; the pixels
    are a corner-aligned bilinear resize onto that size, truncated to integers."""
    _, h, w, _ = images.shape
    out_h = math.floor(2 * (h - 1) + 1.5 + 0.5) + 1
    out_w = math.floor(2 * (w - 1) + 2.5 + 0.5) + 1
    up = _bilinear_corner_aligned(images.permute(0, 3, 1, 2), out_h, out_w)
    return up.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()  # to(uint8) truncates


def _rect_down2(box: tuple) -> tuple:
    """A box in the 2x-upsampled image back to the image: ``(p - (2.5, 1.5)) / 2``, rounded to pixels."""
    left, top, right, bottom = box
    return (
        math.floor((left - 2.5) / 2 + 0.5),
        math.floor((top - 1.5) / 2 + 0.5),
        math.floor((right - 2.5) / 2 + 0.5),
        math.floor((bottom - 1.5) / 2 + 0.5),
    )


def _level_down(n: int) -> int:
    """Side of the next pyramid level: ``floor(n * 5/6)``, computed in double precision as dlib does."""
    return math.floor((PYRAMID_RATIO - 1.0) / PYRAMID_RATIO * n)


def tiled_pyramid_layout(height: int, width: int) -> tuple:
    """Where each pyramid level of an ``height x width`` image sits in dlib's tiled canvas.

    Returns ``(canvas_height, canvas_width, rects)`` with ``rects[i] = (left, top, width, height)`` of level i.
    Levels shrink by 5/6 until one would be empty or lower than 5 rows. They are stacked top-down in a first
    column (10 pixels apart, 11 pixels of margin) until the next level fits beside the previous one and the
    column holds at least half of the height all levels would need stacked; the remaining levels go, right-
    aligned, into a second column filled bottom-up, and any that would overlap level 0 are dropped. The canvas is
    as wide as the image plus the margins."""
    sizes = [(height, width)]
    h, w = height, width
    while True:
        h, w = _level_down(h), _level_down(w)
        if h * w == 0 or h < PYRAMID_MIN_HEIGHT:
            break
        sizes.append((h, w))
    pad, outer = PYRAMID_PADDING, PYRAMID_OUTER_PADDING
    stacked = sum(sh + pad for sh, _ in sizes) - 2 * pad
    column, prev_w = 0, 0
    for sh, sw in sizes:
        if sw <= width - prev_w - pad and (column - height) * 2 >= stacked - height:
            break
        column += sh + pad
        prev_w = sw
    column -= pad
    rects = []
    y = outer
    while y < column + outer and len(rects) < len(sizes):
        sh, sw = sizes[len(rects)]
        rects.append((outer, y, sw, sh))
        y += sh + pad
    y -= pad
    for sh, sw in sizes[len(rects) :]:
        left, top = outer + width - sw, y - sh
        # A level that would reach into the full-size image (very wide images) ends the list.
        if top < outer + height:
            break
        rects.append((left, top, sw, sh))
        y -= sh + pad
    return column + 2 * outer, width + 2 * outer, rects


def _tile(images: torch.Tensor, means: torch.Tensor) -> tuple:
    """``[N, H, W, 3]`` uint8 -> (network input ``[N, 3, Hc, Wc]``, level rects), as dlib's pyramid input layer.

    The canvas is zero in network units (the mean colour), level 0 is ``(pixel - mean) / 256`` and every further
    level is a bilinear resize of the previous one in those float units (no rounding to pixels)."""
    n, h, w, _ = images.shape
    canvas_h, canvas_w, rects = tiled_pyramid_layout(h, w)
    canvas = torch.zeros(n, 3, canvas_h, canvas_w, dtype=torch.float32, device=means.device)
    level = (images.permute(0, 3, 1, 2).to(means.device, torch.float32) - means) / 256.0
    for i, (left, top, lw, lh) in enumerate(rects):
        if i:
            # torch's corner-aligned bilinear resize samples where dlib's does (i * (H - 1) / (h - 1)).
            level = F.interpolate(level, size=(lh, lw), mode="bilinear", align_corners=True)
        canvas[:, :, top : top + lh, left : left + lw] = level
    return canvas, rects


def _round(v: float) -> int:
    return math.floor(v + 0.5)


def _canvas_to_image(rects: Sequence, box: tuple) -> tuple:
    """A (float) box on the canvas to the image: into the level nearest its centre, then up the pyramid."""
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2

    def distance(rect: tuple) -> float:
        rl, rt, rw, rh = rect
        dx = max(rl - cx, 0.0, cx - (rl + rw - 1))
        dy = max(rt - cy, 0.0, cy - (rt + rh - 1))
        return dx * dx + dy * dy

    level = min(range(len(rects)), key=lambda i: distance(rects[i]))
    rl, rt = rects[level][0], rects[level][1]
    coords = [left - rl, top - rt, right - rl, bottom - rt]
    up = PYRAMID_RATIO / (PYRAMID_RATIO - 1.0)
    for _ in range(level):
        coords = [c * up + 0.3 for c in coords]
    return tuple(_round(c) for c in coords)


def _overlaps(a: tuple, b: tuple, iou_threshold: float, covered_threshold: float) -> bool:
    """dlib's box overlap test on inclusive integer boxes: IoU above the threshold, or one box covered."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return False
    inter = iw * ih
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    if inter / (area_a + area_b - inter) > iou_threshold:
        return True
    return inter / area_a > covered_threshold or inter / area_b > covered_threshold


# -------------------------------------------------------------------------------------------- detector


class MMODDetector:
    """dlib's CNN face detector. ``detect`` takes one image, ``detect_batch`` many images of one size."""

    def __init__(self, options: MMODOptions, net: MMODNet, source: str = "") -> None:
        self.options = options
        self.net = net
        self.source = source

    @classmethod
    def load(cls, path: Union[str, os.PathLike] = "dlib-mmod-detector") -> MMODDetector:
        """Read ``mmod_human_face_detector.dat`` (a path, or the registered name ``dlib-mmod-detector``)."""
        file = dlib_model_file(path)
        options, means, layers = read_mmod(file)
        return cls(options, MMODNet(means, layers), str(file))

    def detect(self, image: np.ndarray, upsample: int = 0, adjust_threshold: float = 0.0) -> list:
        """Faces in one ``[H, W, 3]`` uint8 RGB image: ``[(left, top, right, bottom, score), ...]``, best first.

        Boxes are dlib's inclusive pixel rectangles in the input image (they may reach outside it)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detect expects an [H, W, 3] uint8 RGB image, got {image.dtype} {image.shape}")
        return self.detect_batch(image[None], upsample, adjust_threshold)[0]

    @torch.no_grad()
    def detect_batch(
        self, images: Union[np.ndarray, torch.Tensor], upsample: int = 0, adjust_threshold: float = 0.0, chunk: int = 32
    ) -> list:
        """Faces in each of ``[N, H, W, 3]`` uint8 RGB images (one size), ``chunk`` images per CNN pass.

        Same result per image as :meth:`detect` (each image gets its own canvas; they only share the pass)."""
        if not isinstance(images, torch.Tensor):
            images = torch.from_numpy(np.array(images, copy=True))  # a copy: the caller's array may be read-only
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"detect_batch expects [N, H, W, 3] uint8 RGB images, got {images.dtype} {images.shape}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        if not isinstance(upsample, int) or not 0 <= upsample <= 8:
            raise ValueError(f"upsample must be an integer in 0..8, got {upsample!r}")
        if min(images.shape[1:3]) < 1:
            return [[] for _ in range(images.shape[0])]
        out: list = []
        for start in range(0, images.shape[0], chunk):
            batch = images[start : start + chunk]
            for _ in range(upsample):
                batch = pyramid_up(batch)
            canvas, rects = _tile(batch, self.net.means)
            if min(self.net.output_size(*canvas.shape[2:])) < 1:  # too small for one detection window
                out.extend([] for _ in range(batch.shape[0]))
                continue
            scores = self.net(canvas).cpu()
            out.extend(self._boxes(scores[i], rects, upsample, adjust_threshold) for i in range(scores.shape[0]))
        return out

    def _boxes(self, scores: torch.Tensor, rects: Sequence, upsample: int, adjust_threshold: float) -> list:
        candidates = []
        for k, (ww, wh) in enumerate(self.options.windows):
            ys, xs = torch.nonzero(scores[k] > adjust_threshold, as_tuple=True)
            for y, x, s in zip(ys.tolist(), xs.tolist(), scores[k, ys, xs].tolist()):
                cx, cy = self.net.offset + self.net.scale * x, self.net.offset + self.net.scale * y
                # dlib's centred window of an inclusive size w spans w - 1 between its edge coordinates.
                half_w, half_h = (ww - 1) / 2, (wh - 1) / 2
                candidates.append((s, _canvas_to_image(rects, (cx - half_w, cy - half_h, cx + half_w, cy + half_h))))
        candidates.sort(key=lambda c: -c[0])
        kept: list = []
        o = self.options
        for s, box in candidates:
            if any(_overlaps(box, k, o.nms_iou_threshold, o.nms_percent_covered_threshold) for k, _ in kept):
                continue
            kept.append((box, s))
        out = []
        for box, s in kept:
            # Suppression happened in the upsampled image, as dlib's; the kept boxes then go back down.
            for _ in range(upsample):
                box = _rect_down2(box)
            out.append((*box, s))
        return out
