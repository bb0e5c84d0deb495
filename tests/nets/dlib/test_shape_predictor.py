import time

import numpy as np
import pytest

from synthcore.nets.dlib.serialize import DlibFormatError
from synthcore.nets.dlib.shape_predictor import ShapePredictor, read_shape_predictor
from tests.nets.dlib.conftest import enc_int, enc_matrix

# The face box of the astronaut reference: dlib's HOG frontal face detector (dlib-bin 20.0.1) on
# skimage.data.astronaut() at upsample 1, the larger of its two detections, as (left, top, right, bottom).
# dlib's HOG detector is not part of synthcore; the box was obtained once with dlib-bin and is an input here.
ASTRONAUT_HOG_BOX = (175, 76, 265, 166)


@pytest.fixture(scope="module")
def predictor(predictor_file) -> ShapePredictor:
    return ShapePredictor.load(predictor_file)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="the astronaut image comes from scikit-image")
    return skimage_data.astronaut()


def test_layout(predictor):
    assert predictor.num_points == 5
    assert predictor.split_features.shape == (15, 500, 15, 2)
    assert predictor.leaf_values.shape == (15, 500, 16, 5, 2)
    assert predictor.offsets.shape == (15, 800, 2) and predictor.anchors.shape == (15, 800)


def test_astronaut_landmarks(predictor, astronaut, reference):
    points = predictor.predict(astronaut, ASTRONAUT_HOG_BOX)
    expected = reference["astronaut_landmarks5"]
    assert points.shape == (5, 2) and points.dtype == np.float64
    assert np.abs(points - expected).max() < 1.0
    # dlib reports integer points: its float shape rounded. Ours rounds to the same pixels.
    np.testing.assert_array_equal(np.floor(points + 0.5).astype(int), expected)


def test_follows_the_face(predictor, astronaut, reference):
    """Shifting image and box together shifts the landmarks by the same amount."""
    shifted = np.zeros_like(astronaut)
    shifted[7:, 11:] = astronaut[:-7, :-11]
    left, top, right, bottom = ASTRONAUT_HOG_BOX
    points = predictor.predict(shifted, (left + 11, top + 7, right + 11, bottom + 7))
    base = predictor.predict(astronaut, ASTRONAUT_HOG_BOX)
    np.testing.assert_allclose(points - base, np.tile([11.0, 7.0], (5, 1)), atol=1e-9)


def test_bad_inputs(predictor, astronaut):
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(astronaut.astype(np.float32), ASTRONAUT_HOG_BOX)
    with pytest.raises(ValueError, match="RGB"):
        predictor.predict(astronaut[..., :2], ASTRONAUT_HOG_BOX)
    with pytest.raises(ValueError, match="empty"):
        predictor.predict(astronaut, (10, 10, 5, 20))


def _refused(path, match):
    t0 = time.perf_counter()
    with pytest.raises(DlibFormatError, match=match) as info:
        read_shape_predictor(path)
    assert str(path) in str(info.value) and "byte offset" in str(info.value)
    return time.perf_counter() - t0


def test_refused_files(tmp_path):
    head = enc_int(1) + enc_matrix(np.zeros((10, 1)))
    pad = enc_int(0) * 16  # enough integers after a count that the count itself is plausible
    cases = {
        "version": (enc_int(2) + head[2:], "unsupported shape predictor version"),
        "bad_integer": (head + b"\x7f", "bad integer control byte"),
        "absurd_levels": (head + enc_int(1 << 40), "absurd cascade levels count"),
        "absurd_trees": (head + enc_int(1) + enc_int(1 << 40) + pad, "absurd trees count"),
        "not_a_tree": (head + enc_int(1) + enc_int(1) + enc_int(5) + pad, "not a complete binary tree"),
        "truncated": (head + enc_int(1) + enc_int(2) + enc_int(1), "truncated"),
        "matrix": (enc_int(1) + enc_matrix(np.zeros((3, 2))), "2P x 1 matrix"),
    }
    for name, (data, match) in cases.items():
        (path := tmp_path / f"{name}.dat").write_bytes(data)
        assert _refused(path, match) < 1.0


def test_truncated_real_file_refused(predictor_file, tmp_path):
    data = predictor_file.read_bytes()
    (path := tmp_path / "cut.dat").write_bytes(data[: len(data) // 2])
    _refused(path, "truncated")
