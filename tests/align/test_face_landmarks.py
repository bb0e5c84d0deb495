"""synthcore.align.face_landmarks: detector + 5-point predictor per image, against dlib's own pipeline.

Known answer (dlib 20.0.1: ``cnn_face_detection_model_v1`` at upsample 0, then ``shape_predictor`` with
``shape_predictor_5_face_landmarks.dat`` in the detected box; dlib rounds the points to integers) for
``chip_astronaut.png`` of ../shared/testdata/realmodels: (111, 46), (89, 48), (36, 45), (57, 48), (74, 86).
The noise and gradient chips have no detection.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from synthcore.align.face_landmarks import detect_landmarks
from synthcore.nets.dlib.mmod import MMODDetector
from synthcore.nets.dlib.shape_predictor import ShapePredictor
from tests.nets.dlib.conftest import model_file, realmodels_dir

DLIB_CHIP_LANDMARKS = np.array([(111, 46), (89, 48), (36, 45), (57, 48), (74, 86)], dtype=np.float64)


@pytest.fixture(scope="module")
def models():
    detector = MMODDetector.load(model_file("dlib-mmod-detector"))
    predictor = ShapePredictor.load(model_file("dlib-shape-predictor-5"))
    return detector, predictor


def _png(name: str) -> np.ndarray:
    return np.asarray(Image.open(realmodels_dir() / f"chip_{name}.png").convert("RGB"))


def test_found_and_missing(models):
    detector, predictor = models
    images = np.stack([_png("noise_seed0"), _png("astronaut"), _png("gradient")])
    landmarks, found = detect_landmarks(images, detector, predictor, upsample=0)
    assert found.tolist() == [False, True, False]
    assert landmarks.shape == (3, 5, 2)
    # dlib's points are rounded to integers: within one pixel of them
    np.testing.assert_allclose(landmarks[1], DLIB_CHIP_LANDMARKS, atol=1.0)
    assert np.isnan(landmarks[[0, 2]]).all()


def test_fallback_and_mixed_sizes(models):
    detector, predictor = models
    fallback = np.arange(10, dtype=np.float64).reshape(5, 2)
    # a list of different sizes; a torch tensor batch gives the same answer as the array
    images = [_png("gradient")[:120, :130], _png("astronaut")]
    landmarks, found = detect_landmarks(images, detector, predictor, upsample=0, fallback=fallback)
    assert found.tolist() == [False, True]
    np.testing.assert_array_equal(landmarks[0], fallback)
    np.testing.assert_allclose(landmarks[1], DLIB_CHIP_LANDMARKS, atol=1.0)
    same, _ = detect_landmarks(torch.from_numpy(_png("astronaut")[None].copy()), detector, predictor)
    np.testing.assert_array_equal(same[0], landmarks[1])


def test_bad_inputs(models):
    detector, predictor = models
    with pytest.raises(ValueError, match="uint8"):
        detect_landmarks(np.zeros((1, 32, 32, 3), np.float32), detector, predictor)
    with pytest.raises(ValueError, match="fallback"):
        detect_landmarks(np.zeros((1, 32, 32, 3), np.uint8), detector, predictor, fallback=np.zeros((4, 2)))
