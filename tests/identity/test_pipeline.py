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
