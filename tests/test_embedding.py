"""embed(), its crops, and the cosine / angle helpers."""

import math

import numpy as np
import pytest
import torch

from synthcore import align
from synthcore.embedding import (
    ANGLE_SCALE,
    angle,
    angle_matrix,
    cosine_matrix,
    cosine_similarity,
    embed,
    from_uint8,
    prepare,
)
from synthcore.nets.embedders import embedder_from_state_dict
from tests.nets.conftest import small_state_dict


@pytest.fixture(scope="module")
def embedder():
    return embedder_from_state_dict(small_state_dict("iresnet18"))


def _frames(n: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(size)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_embed_crops_generator_frames(embedder):
    frames = _frames(2, 256)
    with torch.no_grad():
        got = embed(frames, embedder, crop="arcface")
        want = torch.nn.functional.normalize(embedder(align.fixed_crop(frames, "arcface")), dim=1)
    assert got.shape == (2, 512)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(2))


def test_embed_with_landmarks_per_image(embedder):
    frames = _frames(2, 200)
    landmarks = torch.stack([align.arcface_template() * 1.6 + 10, align.arcface_template() * 1.4 + 30])
    with torch.no_grad():
        both = embed(frames, embedder, landmarks=landmarks, normalize=False)
        second = embed(frames[1:], embedder, landmarks=landmarks[1:], normalize=False)
    torch.testing.assert_close(both[1:], second, atol=1e-4, rtol=1e-4)
    assert (both[0] - both[1]).abs().max() > 1e-3


def test_embed_accepts_a_callable_crop(embedder):
    frames = _frames(1, 224)
    with torch.no_grad():
        got = embed(frames, embedder, crop=lambda x: x[:, :, ::2, ::2], normalize=False)
        torch.testing.assert_close(got, embedder(frames[:, :, ::2, ::2]))


def test_prepare_errors():
    frames = _frames(1, 256)
    with pytest.raises(ValueError, match="either crop or landmarks"):
        prepare(frames, 112, crop="arcface", landmarks=align.arcface_template()[None])
    with pytest.raises(ValueError, match="gives 256 px crops"):
        prepare(frames, 112, crop="synface")


def test_embed_is_differentiable(embedder):
    frames = _frames(2, 128).requires_grad_(True)
    e = embed(frames, embedder, crop="arcface")
    angle(e[0], e[1]).backward()
    assert torch.isfinite(frames.grad).all() and frames.grad.abs().sum() > 0


def test_from_uint8():
    px = np.array([[[0, 128, 255]]], dtype=np.uint8)  # [1, 1, 3]
    x = from_uint8(px)
    assert x.shape == (1, 3, 1, 1)
    torch.testing.assert_close(x.flatten(), torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]))
    with pytest.raises(TypeError):
        from_uint8(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError):
        from_uint8(np.zeros((1, 2, 2, 4), np.uint8))


def test_cosine_and_angle():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    b = torch.tensor([[5.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    torch.testing.assert_close(cosine_similarity(a, b), torch.tensor([1.0, 0.0, -1.0]))
    ang = angle(a, b)
    torch.testing.assert_close(ang[1], torch.tensor(math.pi / 2))
    torch.testing.assert_close(ang[0], torch.tensor(math.acos(ANGLE_SCALE)))
    torch.testing.assert_close(ang[2], torch.tensor(math.acos(-ANGLE_SCALE)))
    m = cosine_matrix(a)
    assert m.shape == (3, 3)
    torch.testing.assert_close(m, m.T)
    torch.testing.assert_close(torch.diag(m), torch.ones(3))
    torch.testing.assert_close(angle_matrix(a, b)[1, 1], ang[1])


def test_angle_gradient_is_finite_for_identical_embeddings():
    e = torch.randn(4, 512, requires_grad=True)
    angle_matrix(e).sum().backward()
    assert torch.isfinite(e.grad).all()
