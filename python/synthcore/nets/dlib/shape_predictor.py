"""dlib's face landmark predictor (``shape_predictor_5_face_landmarks.dat``): a cascade of regression-tree forests.

The method is the ensemble of regression trees of Kazemi & Sullivan (2014). Shapes live in the face box's
normalised frame (0..1 across the box). Starting from the mean shape, each cascade level

1. places its feature points: each is an anchor landmark of the current shape plus an offset that is rotated
   and scaled by the similarity taking the mean shape onto the current shape;
2. reads the image's intensity (mean of R, G, B) at each point, rounded to the nearest pixel, 0 outside;
3. runs every tree of its forest: a node compares the difference of two feature intensities with its threshold
   (greater: left child ``2i+1``, else right ``2i+2``), and the reached leaf adds its shape delta.

File layout (dlib serialisation, all integers and (mantissa, exponent) floats): version 1; the initial shape
(a 2P x 1 matrix); per cascade level, its trees (splits: anchor feature indices and threshold; leaves: 2P x 1
shape deltas); per level the feature anchor indices; per level the feature offsets (x, y).

Landmarks are not differentiable (computed once per image); ``synthcore.align.dlib_chip`` makes the chip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import numpy as np

from synthcore.nets.dlib.serialize import DlibFormatError, DlibReader

__all__ = ["ShapePredictor", "read_shape_predictor"]

Box = Tuple[float, float, float, float]


@dataclass
class ShapePredictor:
    """A parsed dlib shape predictor. ``predict(image, box)`` -> [P, 2] float (x, y) landmarks in pixels.

    Arrays (C cascade levels, T trees per level, S splits and S + 1 leaves per tree, F features per level,
    P points): ``initial_shape`` [P, 2]; ``split_features`` [C, T, S, 2] int; ``split_thresholds`` [C, T, S];
    ``leaf_values`` [C, T, S + 1, P, 2]; ``anchors`` [C, F] int; ``offsets`` [C, F, 2].
    """

    initial_shape: np.ndarray
    split_features: np.ndarray
    split_thresholds: np.ndarray
    leaf_values: np.ndarray
    anchors: np.ndarray
    offsets: np.ndarray
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> ShapePredictor:
        """Read a dlib shape predictor file (or registered name, e.g. ``dlib-shape-predictor-5``)."""
        from synthcore.nets.dlib.files import dlib_model_file

        return read_shape_predictor(dlib_model_file(path))

    @property
    def num_points(self) -> int:
        return int(self.initial_shape.shape[0])

    def predict(self, image: np.ndarray, box: Union[Box, Sequence[float]]) -> np.ndarray:
        """Landmarks [P, 2] (x, y, float64 pixels) for an [H, W, 3] uint8 RGB image (or [H, W] grey) and a face box
        (left, top, right, bottom) in dlib's inclusive pixel convention, as the face detectors return it."""
        intensity = _intensity(image)
        if len(box) != 4:
            raise ValueError(f"box must be (left, top, right, bottom), got {box!r}")
        left, top, right, bottom = (float(v) for v in box)
        if not (right >= left and bottom >= top) or not np.isfinite([left, top, right, bottom]).all():
            raise ValueError(f"box (left, top, right, bottom) = {tuple(box)} is empty or not finite")
        origin = np.array([left, top])
        extent = np.array([right - left, bottom - top])
        h, w = intensity.shape
        shape = self.initial_shape.copy()
        levels, trees, splits = self.split_thresholds.shape
        depth = int(np.log2(splits + 1))
        tree_ids = np.arange(trees)
        for c in range(levels):
            m = _similarity_matrix(self.initial_shape, shape)
            points = self.offsets[c] @ m.T + shape[self.anchors[c]]
            pixels = np.floor(origin + points * extent + 0.5).astype(np.int64)  # nearest pixel, halves up
            x, y = pixels[:, 0], pixels[:, 1]
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            values = np.zeros(len(points), dtype=np.float64)
            values[inside] = intensity[y[inside], x[inside]]
            node = np.zeros(trees, dtype=np.int64)
            for _ in range(depth):
                f = self.split_features[c, tree_ids, node]
                go_left = values[f[:, 0]] - values[f[:, 1]] > self.split_thresholds[c, tree_ids, node]
                node = np.where(go_left, 2 * node + 1, 2 * node + 2)
            shape = shape + self.leaf_values[c, tree_ids, node - splits].sum(axis=0)
        return origin + shape * extent


def _intensity(image: np.ndarray) -> np.ndarray:
    """dlib's pixel intensity: the grey value, or the integer mean of R, G and B."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] RGB or [H, W] grey image, got shape {list(img.shape)}")
    return (img.astype(np.int32).sum(axis=2) // 3).astype(np.float64)


def _similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x2 scaled rotation of the least-squares similarity taking points ``src`` onto ``dst`` ([P, 2])."""
    s = src - src.mean(axis=0)
    d = dst - dst.mean(axis=0)
    spread = (s * s).sum()
    a = (s * d).sum() / spread
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / spread
    return np.array([[a, -b], [b, a]])


class _Ints:
    """A cursor over a file decoded into integers; errors name the byte offset of the integer at fault."""

    def __init__(self, reader: DlibReader) -> None:
        self.reader = reader
        self.values, self.offsets = reader.read_int_stream("shape predictor")
        self.pos = 0

    def error(self, message: str, at: Union[int, None] = None) -> DlibFormatError:
        i = self.pos if at is None else at
        offset = int(self.offsets[i]) if i < len(self.offsets) else self.reader.size
        return self.reader.error(message, offset)

    @property
    def remaining(self) -> int:
        return len(self.values) - self.pos

    def take(self, n: int, what: str) -> np.ndarray:
        if n > self.remaining:
            raise self.error(f"truncated: {what} need {n} integers but {self.remaining} remain")
        out = self.values[self.pos : self.pos + n]
        self.pos += n
        return out

    def one(self, what: str) -> int:
        return int(self.take(1, what)[0])

    def count(self, what: str, per_item: int) -> int:
        """A container length whose items take ``per_item`` integers each: it must fit in what remains."""
        at = self.pos
        n = self.one(f"{what} count")
        if n < 0 or n * per_item > self.remaining:
            raise self.error(f"truncated or absurd {what} count {n} for {self.remaining} remaining integers", at)
        return n

    def floats(self, n: int, what: str) -> np.ndarray:
        at = self.pos
        return self.reader.floats_from_pairs(self.take(2 * n, what), what, int(self.offsets[at]))

    def column_matrix(self, rows: Union[int, None], what: str) -> np.ndarray:
        """A ``rows`` x 1 matrix of floats (any even number of rows when ``rows`` is None)."""
        at = self.pos
        r, c = -self.one(f"{what} rows"), -self.one(f"{what} columns")
        if c != 1 or r <= 0 or (rows is not None and r != rows) or (rows is None and r % 2):
            want = f"{rows}x1" if rows is not None else "2P x 1"
            raise self.error(f"{what} must be a {want} matrix, got {r}x{c}", at)
        if 2 * r > self.remaining:
            raise self.error(f"truncated or absurd {what}: {r} values for {self.remaining} remaining integers", at)
        return self.floats(r, what)


def _read_forest(ints: _Ints, trees: int, points: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``trees`` complete binary trees of one depth: split feature indices, thresholds, leaf deltas."""
    at = ints.pos
    splits = ints.one("tree splits count")
    if splits < 1 or (splits + 1) & splits:
        raise ints.error(f"a tree with {splits} splits is not a complete binary tree", at)
    ints.pos = at
    # Layout of one tree in integers: splits, 4 per split (two feature indices, threshold mantissa and exponent),
    # leaves, then per leaf a matrix header (-2P, -1) and 2P floats.
    leaf_ints = 2 + 4 * points
    per_tree = 1 + 4 * splits + 1 + (splits + 1) * leaf_ints
    if trees * per_tree > ints.remaining:
        raise ints.error(f"truncated: {trees} trees of {splits} splits need {trees * per_tree} integers", at)
    block = ints.take(trees * per_tree, "trees").reshape(trees, per_tree)
    leaves = block[:, 2 + 4 * splits :].reshape(trees, splits + 1, leaf_ints)
    bad = (
        (block[:, 0] != splits)
        | (block[:, 1 + 4 * splits] != splits + 1)
        | np.any(leaves[:, :, 0] != -2 * points, axis=1)
        | np.any(leaves[:, :, 1] != -1, axis=1)
    )
    if bad.any():
        t = int(np.argmax(bad))
        raise ints.error(
            f"tree {t} does not match the first tree's layout ({splits} splits, {splits + 1} leaves of "
            f"{2 * points}x1; unequal depths are unsupported)",
            at + t * per_tree,
        )
    split_ints = block[:, 1 : 1 + 4 * splits].reshape(trees, splits, 4)
    features = split_ints[:, :, :2]
    if np.any(features < 0):
        raise ints.error("negative split feature index", at)
    where = int(ints.offsets[at])
    thresholds = ints.reader.floats_from_pairs(split_ints[:, :, 2:], "split thresholds", where).reshape(trees, splits)
    deltas = ints.reader.floats_from_pairs(leaves[:, :, 2:], "leaf values", where)
    return features.copy(), thresholds, deltas.reshape(trees, splits + 1, points, 2)


def read_shape_predictor(path: Union[str, os.PathLike]) -> ShapePredictor:
    """Parse a dlib shape predictor file without running anything in it; ``DlibFormatError`` when it does not fit."""
    ints = _Ints(DlibReader.from_file(path))
    at = ints.pos
    if ints.one("shape predictor version") != 1:
        raise ints.error("unsupported shape predictor version (expected 1)", at)
    initial = ints.column_matrix(None, "initial shape")
    points = len(initial) // 2
    levels = ints.count("cascade levels", 2)
    if levels == 0:
        raise ints.error("no cascade levels")
    forests = []
    for _ in range(levels):
        at = ints.pos
        trees = ints.count("trees", 2)
        if trees == 0:
            raise ints.error("a cascade level without trees", at)
        forests.append(_read_forest(ints, trees, points))
    if len({f[0].shape for f in forests}) != 1:
        raise ints.error("cascade levels with different numbers of trees or depths are unsupported")
    at = ints.pos
    if ints.count("anchor lists", 1) != levels:
        raise ints.error(f"expected {levels} feature anchor lists", at)
    anchors = []
    for _ in range(levels):
        anchors.append(ints.take(ints.count("feature anchors", 1), "feature anchors").copy())
    at = ints.pos
    if ints.count("offset lists", 1) != levels:
        raise ints.error(f"expected {levels} feature offset lists", at)
    offsets = []
    for c in range(levels):
        at = ints.pos
        n = ints.count("feature offsets", 4)
        if n != len(anchors[c]):
            raise ints.error(f"level {c}: {n} feature offsets for {len(anchors[c])} anchors", at)
        offsets.append(ints.floats(2 * n, "feature offsets").reshape(n, 2))
    if ints.remaining:
        raise ints.error(f"{ints.remaining} unexpected trailing integers")
    if len({len(a) for a in anchors}) != 1:
        raise DlibFormatError(f"{path}: cascade levels with different feature counts are unsupported")
    anchors_arr = np.stack(anchors)
    features = np.stack([f[0] for f in forests])
    if np.any(anchors_arr < 0) or np.any(anchors_arr >= points):
        raise DlibFormatError(f"{path}: a feature anchor is not one of the {points} landmarks")
    if np.any(features >= anchors_arr.shape[1]):
        raise DlibFormatError(f"{path}: a split uses a feature index beyond the {anchors_arr.shape[1]} features")
    return ShapePredictor(
        initial_shape=initial.reshape(points, 2),
        split_features=features,
        split_thresholds=np.stack([f[1] for f in forests]),
        leaf_values=np.stack([f[2] for f in forests]),
        anchors=anchors_arr,
        offsets=np.stack(offsets),
        source=str(path),
    )
