"""dlib's chip geometry and warp (synthcore.align.dlib_chip), checked against dlib's own outputs."""

import math

import numpy as np
import pytest
import torch

from synthcore.align.dlib_chip import chip_transform, warp_to_chips
from synthcore.align.resample import invert_affine
from synthcore.nets.dlib.resnet import load_dlib_resnet
from tests.nets.dlib.conftest import reference_chips

# dlib-bin 20.0.1 get_face_chip_details(shape, size, padding) for the astronaut's reference landmarks:
# (size, padding) -> chip rectangle (left, top, right, bottom) and angle, as dlib reported them.
DLIB_CHIP_DETAILS = {
    (150, 0.25): ((164.8676576467088, 65.56597282189165, 284.80464622124623, 185.50296139642907), 0.047944676324530935),
    (200, 0.5): ((144.71149288428592, 45.40980805946873, 304.96081098366915, 205.659126158852), 0.04794467632453096),
    (112, 0.0): ((185.02382240913172, 85.72213758431457, 264.6484814588233, 165.34679663400613), 0.04794467632453102),
}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="the astronaut image comes from scikit-image")
    return skimage_data.astronaut()


@pytest.mark.parametrize("size, padding", list(DLIB_CHIP_DETAILS))
def test_geometry_matches_dlib(reference, size, padding):
    (left, top, right, bottom), angle = DLIB_CHIP_DETAILS[(size, padding)]
    to_image = invert_affine(chip_transform(reference["astronaut_landmarks5"], size, padding))
    mid = (size - 1) / 2
    centre = to_image[:, :2] @ torch.tensor([mid, mid], dtype=torch.float64) + to_image[:, 2]
    pitch = float(to_image[:, 0].norm())
    assert centre.tolist() == pytest.approx([(left + right) / 2, (top + bottom) / 2], abs=1e-6)
    assert pitch * (size - 1) == pytest.approx(right - left, abs=1e-6)  # first to last pixel centre
    assert math.atan2(float(to_image[1, 0]), float(to_image[0, 0])) == pytest.approx(angle, abs=1e-9)


def test_astronaut_chip_and_descriptor(reference, astronaut, resnet_file):
    images = torch.from_numpy(astronaut).permute(2, 0, 1)[None].double()
    chip = warp_to_chips(images, chip_transform(reference["astronaut_landmarks5"]))
    assert chip.shape == (1, 3, 150, 150)
    expected = reference_chips(["astronaut"])[0].astype(np.float64)
    # dlib truncates its bilinear values to uint8. Measured: 5 of 67,500 values differ, by one level (a value
    # within rounding error of an integer).
    ours = np.floor(chip[0].permute(1, 2, 0).numpy())
    diff = np.abs(ours - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    net = load_dlib_resnet(resnet_file)
    with torch.no_grad():
        quantised = net(torch.from_numpy(ours).permute(2, 0, 1)[None].float() / 127.5 - 1)[0].double().numpy()
        smooth = net(chip.float() / 127.5 - 1)[0].double().numpy()
    # Measured: quantised chip 4.5e-6 from dlib's descriptor (max abs); the float chip (what the differentiable
    # path sees) 1.1e-3 max abs, 4.8e-3 in Euclidean distance: 1% of the same-person threshold.
    np.testing.assert_allclose(quantised, reference["astronaut_full_image_descriptor"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(smooth, reference["astronaut_full_image_descriptor"], rtol=0, atol=3e-3)
    assert np.linalg.norm(smooth - reference["astronaut_full_image_descriptor"]) < 0.01


def test_batched_and_differentiable(reference):
    points = torch.as_tensor(reference["astronaut_landmarks5"], dtype=torch.float64)
    batch = torch.stack([points, points * 0.5 + 3.0])
    transforms = chip_transform(batch, size=16, padding=0.25)
    assert transforms.shape == (2, 2, 3)
    torch.testing.assert_close(transforms[0], chip_transform(points, size=16, padding=0.25))
    images = torch.rand(2, 1, 9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    small = chip_transform(batch / 40, size=5, padding=0.25)
    assert (warp_to_chips(images, small, size=5) != 0).float().mean() > 0.5  # the chip lies on the image
    assert torch.autograd.gradcheck(lambda x: warp_to_chips(x, small, size=5), (images.requires_grad_(),))


def test_bad_arguments():
    with pytest.raises(ValueError, match="5 landmarks"):
        chip_transform(np.zeros((68, 2)))
    with pytest.raises(ValueError, match="NaN"):
        chip_transform(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="coincide"):
        chip_transform(np.ones((5, 2)))
    with pytest.raises(ValueError, match="one per image"):
        warp_to_chips(torch.zeros(2, 3, 8, 8), torch.zeros(3, 2, 3))
