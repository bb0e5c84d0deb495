"""synthcore.align against ../shared/testdata/embedders/alignment_reference and the section-9 crop presets."""

import json
import math

import numpy as np
import pytest
import torch

from synthcore import align
from tests.conftest import cuda_only


@pytest.fixture(scope="module")
def ref(testdata):
    d = testdata / "embedders"
    meta = json.loads((d / "alignment_reference.json").read_text())
    with np.load(d / "alignment_reference.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


def _chw(rgb_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb_uint8).permute(*range(rgb_uint8.ndim - 3), -1, -3, -2).double()


# --------------------------------------------------------------------------------------- five-point warp


def test_template(ref):
    meta, arrays = ref
    t = align.arcface_template(112)
    torch.testing.assert_close(t, torch.tensor(meta["template_112"], dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(align.arcface_template(224), 2 * t)
    t128 = align.arcface_template(128)  # 96x112 layout padded: scale 1, shift x by 8
    torch.testing.assert_close(t128[:, 1], t[:, 1])
    torch.testing.assert_close(t128[:, 0], t[:, 0] + 8)


def test_similarity_matrices_match_insightface(ref):
    _, arrays = ref
    m = align.five_point_matrices(torch.from_numpy(arrays["landmarks"]).double())
    assert (m - torch.from_numpy(arrays["M"])).abs().max().item() <= 1e-4


def test_similarity_is_exact_for_a_similarity():
    t = align.arcface_template(112)
    angle, scale, shift = math.radians(-23.0), 1.7, torch.tensor([40.0, -12.0], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    src = (t @ rot.T) * scale + shift
    m = align.estimate_similarity(src[None], t)[0]
    torch.testing.assert_close(src @ m[:, :2].T + m[:, 2], t)
    assert m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0] > 0  # a rotation, not a reflection


def test_warp_matches_cv2_each_image_with_its_own_landmarks(ref):
    """All four reference cases in one batch: every crop must match its own cv2 result (+-1 grey level)."""
    _, arrays = ref
    src = _chw(arrays["source_rgb_uint8"])[None].expand(4, -1, -1, -1)
    landmarks = torch.from_numpy(arrays["landmarks"]).double()
    want = _chw(arrays["warped_rgb_uint8"])
    got = align.five_point_crop(src, landmarks, antialias=False)
    assert got.shape == (4, 3, 112, 112)
    err = (got - want)[:, :, 1:-1, 1:-1].abs().amax(dim=(1, 2, 3))
    assert (err <= 1.0).all(), err
    # The cases differ a lot from each other, so using one image's landmarks for all would fail above.
    assert (want[1] - want[2]).abs().mean() > 10


def test_batch_order_follows_landmarks(ref):
    _, arrays = ref
    base = _chw(arrays["source_rgb_uint8"])
    images = torch.stack([base, base.flip(-1), base.flip(-2)])
    landmarks = torch.from_numpy(arrays["landmarks"][1:]).double()
    out = align.five_point_crop(images, landmarks)
    perm = [2, 0, 1]
    out_perm = align.five_point_crop(images[perm], landmarks[perm])
    torch.testing.assert_close(out_perm, out[perm])
    single = align.five_point_crop(images[1:2], landmarks[1:2])
    torch.testing.assert_close(single[0], out[1])


def test_antialiasing_removes_fine_detail_when_shrinking():
    checker = ((torch.arange(256)[:, None] + torch.arange(256)[None, :]) % 2).double()[None, None]
    landmarks = (align.arcface_template(112) * 2.1 + 5)[None]  # shrink ~2.1x
    plain = align.five_point_crop(checker, landmarks, antialias=False)[0, 0, 10:-10, 10:-10]
    smooth = align.five_point_crop(checker, landmarks, antialias=True)[0, 0, 10:-10, 10:-10]
    assert plain.std() > 0.15  # bilinear sampling of a pixel-level pattern aliases into visible structure
    assert smooth.std() < 0.3 * plain.std()
    assert abs(smooth.mean().item() - 0.5) < 0.02


def test_no_antialias_blur_without_shrinking(ref):
    _, arrays = ref
    src = _chw(arrays["source_rgb_uint8"])[None].expand(2, -1, -1, -1)
    landmarks = torch.from_numpy(arrays["landmarks"][:2]).double()  # case 0 keeps scale 1, case 1 shrinks
    torch.testing.assert_close(
        align.five_point_crop(src, landmarks, antialias=True)[0],
        align.five_point_crop(src[:1], landmarks[:1], antialias=False)[0],
    )


def test_five_point_errors():
    images = torch.zeros(2, 3, 64, 64)
    with pytest.raises(ValueError, match="2 images but 1 landmark sets"):
        align.five_point_crop(images, align.arcface_template()[None])
    with pytest.raises(ValueError, match=r"\[N, 5, 2\]"):
        align.five_point_crop(images, torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="coincide"):
        align.five_point_crop(images, torch.ones(2, 5, 2))


# ------------------------------------------------------------------------------------------ fixed crops


@pytest.mark.parametrize("size", [1024, 512, 256])
def test_fixed_crop_puts_the_ffhq_eyes_on_the_preset_eyes(size):
    """The Idiap rule: the x eye distance matches and the image-left eye is the anchor (edge coordinates)."""
    for preset in ("arcface", "iresnet_bob", "synface", "sf2_feat", "synmultipie"):
        x0, y0, x1, _ = align.fixed_crop_box(preset, size, size)
        dst = align.EYE_FRAMES[preset]
        scale = dst.size / (x1 - x0)
        k = size / 1024
        assert math.isclose((380 * k - x0) * scale, dst.right_eye[0], abs_tol=1e-9)
        assert math.isclose((480 * k - y0) * scale, dst.right_eye[1], abs_tol=1e-9)
        assert math.isclose((650 * k - x0) * scale, dst.left_eye[0], abs_tol=1e-9)


def test_fixed_crop_boxes_of_the_notes():
    """identity_diffusion.md section 9: FFHQ-1024 -> 112 is x[86:944], y[83/84:942]; FFHQ-256 -> x[21:236]."""
    x0, y0, x1, y1 = align.fixed_crop_box("arcface", 1024, 1024)
    assert (int(x0), int(x1), int(y0), int(y1)) == (86, 944, 83, 942)
    assert math.isclose(112 / (x1 - x0), 35.2372 / 270, rel_tol=1e-6)
    assert int(align.fixed_crop_box("iresnet_bob", 1024, 1024)[1]) == 84
    x0, _, x1, _ = align.fixed_crop_box("arcface", 256, 256)
    assert (int(x0), int(x1)) == (21, 236)
    assert align.fixed_crop_box("psp", 1024, 1024) == (128.0, 140.0, 880.0, 892.0)


def _smooth_scene(size: int) -> torch.Tensor:
    """The same low-frequency RGB picture sampled at pixel centres of a size x size image of [0, 1]^2."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([torch.sin(6 * x + 1) * torch.cos(4 * y), torch.cos(5 * x * y), x - y])[None]


@pytest.mark.parametrize("preset", ["arcface", "iresnet_bob", "psp"])
def test_fixed_crop_is_the_same_at_every_generator_resolution(preset):
    crops = {s: align.fixed_crop(_smooth_scene(s), preset) for s in (1024, 512, 256)}
    assert crops[1024].shape == (1, 3, 112, 112)
    assert (crops[512] - crops[1024]).abs().max() < 2e-4
    assert (crops[256] - crops[1024]).abs().max() < 1e-3


def test_fixed_crop_equals_the_affine_warp_of_its_matrix():
    img = _smooth_scene(256) + 0.3 * torch.rand(1, 3, 256, 256, dtype=torch.float64)
    m = align.fixed_crop_matrix("arcface", 256, 256)
    a = align.fixed_crop(img, "arcface", kernel="linear", antialias=False)
    b = align.warp_affine(img, m[None], (112, 112), antialias=False)
    torch.testing.assert_close(a, b)


def test_fixed_crop_antialiasing():
    checker = ((torch.arange(1024)[:, None] // 2 + torch.arange(1024)[None, :] // 2) % 2).double()[None, None]
    plain = align.fixed_crop(checker, "arcface", antialias=False)
    smooth = align.fixed_crop(checker, "arcface")
    assert plain.std() > 0.1 and smooth.std() < 0.2 * plain.std()


def test_fixed_crop_errors():
    with pytest.raises(ValueError, match="unknown crop preset"):
        align.fixed_crop(torch.zeros(1, 3, 64, 64), "mtcnn")
    with pytest.raises(ValueError, match="unknown source frame"):
        align.fixed_crop(torch.zeros(1, 3, 64, 64), "arcface", source="celeba")
    with pytest.raises(ValueError, match="kernel"):
        align.fixed_crop(torch.zeros(1, 3, 64, 64), "arcface", kernel="lanczos")


# ------------------------------------------------------------------------------------------- gradients


def test_gradcheck_axis_aligned():
    x = torch.rand(1, 2, 11, 9, dtype=torch.float64, requires_grad=True)
    shrink = lambda t: align.resample_axis_aligned(t, (4, 5), (2.1, 1.9), (0.3, -0.2))  # noqa: E731
    grow = lambda t: align.resample_axis_aligned(t, (12, 7), (0.6, 1.3), (-0.5, 1.0), antialias=False)  # noqa: E731
    assert torch.autograd.gradcheck(shrink, (x,), fast_mode=True)
    assert torch.autograd.gradcheck(grow, (x,), fast_mode=True)


def test_gradcheck_warp_each_image_its_own_matrix():
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    m = torch.tensor([[[0.45, 0.1, 1.0], [-0.1, 0.45, 0.5]], [[1.1, 0.0, -2.0], [0.0, 1.1, 0.3]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: align.warp_affine(t, m, (6, 5)), (x,), fast_mode=True)


def test_gradcheck_five_point_crop():
    landmarks = torch.stack([align.arcface_template(8) * 2 + 1, align.arcface_template(8) * 1.5 + 3])
    x = torch.rand(2, 1, 20, 20, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: align.five_point_crop(t, landmarks, size=8), (x,), fast_mode=True)


def test_gradient_flows_from_fixed_crop_to_generator_frame():
    x = torch.rand(2, 3, 256, 256, requires_grad=True)
    y = align.fixed_crop(x, "arcface")
    w = torch.randn_like(y)
    (y * w).sum().backward()
    # Linear map: the gradient is the adjoint, <crop(x), w> == <x, crop^T(w)>.
    lhs = (align.fixed_crop(x.detach().double(), "arcface") * w.double()).sum()
    rhs = (x.detach().double() * x.grad.double()).sum()
    assert math.isclose(lhs.item(), rhs.item(), rel_tol=1e-4)
    assert x.grad[:, :, :15].abs().max() == 0  # rows above the crop box get nothing


@cuda_only
def test_crops_on_cuda_match_cpu(ref):
    _, arrays = ref
    src = _chw(arrays["source_rgb_uint8"])[None].expand(4, -1, -1, -1).float()
    landmarks = torch.from_numpy(arrays["landmarks"])
    cpu = align.five_point_crop(src, landmarks)
    gpu = align.five_point_crop(src.cuda(), landmarks.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-4)
    frames = _smooth_scene(512).float()
    torch.testing.assert_close(align.fixed_crop(frames.cuda(), "arcface").cpu(), align.fixed_crop(frames, "arcface"))
