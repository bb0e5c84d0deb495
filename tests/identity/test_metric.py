"""Identity distances that follow the embedder: dlib's Euclidean 0.6 vs ArcFace-type angles (1.4 rad)."""

import math

import pytest
import torch

from synthcore.embedding import angle, angle_matrix
from synthcore.identity.dispersion import DispersionConfig
from synthcore.identity.langevin import (
    LangevinConfig,
    initial_latents,
    interaction_forces,
    interaction_forces_per_identity,
    run_langevin,
)
from synthcore.identity.metric import (
    distance_matrix,
    identity_metric,
    require_embedder_metric,
    row_distance,
    squared_distance,
)
from synthcore.identity.pipeline import FacePipeline
from synthcore.identity.references import sample_reject
from tests.identity.conftest import TinyEmbedder, TinyGenerator


class EuclideanTinyEmbedder(TinyEmbedder):
    metric = "euclidean"
    threshold = 0.6


def test_metric_and_defaults_follow_the_embedder():
    dlib = identity_metric(EuclideanTinyEmbedder())
    assert (dlib.metric, dlib.threshold, dlib.r0, dlib.ict, dlib.hist_range) == ("l2", 0.6, 0.6, 0.6, (0.0, 1.2))
    arc = identity_metric(TinyEmbedder())  # states nothing: ArcFace-type
    assert (arc.metric, arc.r0, arc.ict, arc.hist_range) == ("angle", 1.4, 1.4, (0.0, math.pi))
    assert dlib.config_defaults(LangevinConfig) == {"metric": "l2", "r0": 0.6, "ict": 0.6}
    assert dlib.config_defaults(DispersionConfig) == {"metric": "l2", "ict": 0.6}
    LangevinConfig(num_identities=2, **dlib.config_defaults(LangevinConfig))  # accepted as is


def test_bad_metric_statements_are_refused():
    class Odd(TinyEmbedder):
        metric = "manhattan"

    class NoThreshold(TinyEmbedder):
        metric = "euclidean"

    with pytest.raises(ValueError, match="manhattan"):
        identity_metric(Odd())
    with pytest.raises(ValueError, match="threshold"):
        identity_metric(NoThreshold())
    with pytest.raises(ValueError, match="metric must be 'angle' or 'l2'"):
        LangevinConfig(metric="euclidean")


def test_distance_helpers():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 6, generator=g), torch.randn(3, 6, generator=g)
    torch.testing.assert_close(distance_matrix(a, b, "l2"), torch.cdist(a, b))
    assert torch.equal(distance_matrix(a, b, "angle"), angle_matrix(a, b))
    torch.testing.assert_close(row_distance(a[:3], b, "l2"), (a[:3] - b).norm(dim=1))
    assert torch.equal(squared_distance(a[:3], b, "angle"), angle(a[:3], b) ** 2)
    x = a.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(squared_distance(x, a, "l2").sum(), x)  # rows meet: still a finite gradient
    assert torch.isfinite(gx).all() and float(gx.abs().max()) == 0


def test_settings_for_another_metric_are_refused():
    with pytest.raises(ValueError, match="embedder compares by 'l2'"):
        require_embedder_metric("angle", identity_metric(EuclideanTinyEmbedder()), "the Langevin config")
    pipe = FacePipeline(TinyGenerator(), EuclideanTinyEmbedder(), crop=None)
    with pytest.raises(ValueError, match="Langevin config measures identity by 'angle'"):
        run_langevin(pipe, LangevinConfig(num_identities=3, iterations=1), progress=False)


@pytest.mark.parametrize("batch", [1, 4])
def test_euclidean_forces_equal_the_per_identity_loop(batch):
    pipe = FacePipeline(TinyGenerator(), EuclideanTinyEmbedder(), crop=None)
    _, _, w = initial_latents(pipe, 6, seed=3, truncation_psi=1.0)
    keys = pipe.embed_batched(w, 64)
    radius = float(torch.cdist(keys, keys).max()) * 1.1  # every pair interacts
    cfg = LangevinConfig(num_identities=6, k=1.3, metric="l2", r0=radius, ict=radius)
    ref = interaction_forces_per_identity(pipe, w, keys, cfg)
    got, _ = interaction_forces(pipe, w, keys, cfg, batch)
    assert ref.abs().max() > 1e-3
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    angle_cfg = LangevinConfig(num_identities=6, k=1.3, r0=radius, ict=radius)
    assert not torch.allclose(interaction_forces(pipe, w, keys, angle_cfg, batch)[0], got)  # the metric matters


def test_langevin_statistics_and_reject_use_the_euclidean_distance():
    pipe = FacePipeline(TinyGenerator(), EuclideanTinyEmbedder(), crop=None)
    m = pipe.identity_metric
    res = run_langevin(pipe, LangevinConfig(num_identities=5, iterations=1, **m.config_defaults(LangevinConfig)),
                       batch=5, progress=False)  # fmt: skip
    d = torch.cdist(res.embeddings.double(), res.embeddings.double())
    off = d[~torch.eye(5, dtype=torch.bool)]
    last = res.stats[-1]
    assert last["dist_min"] == pytest.approx(float(off.min()), rel=1e-4)
    assert last["prop_ict"] == pytest.approx(float((off >= 0.6).double().mean()))
    _, _, w = initial_latents(pipe, 8, seed=0, truncation_psi=0.7)  # reject's first candidates
    e = pipe.embed_batched(w, 8)
    ict = float(torch.cdist(e, e)[~torch.eye(8, dtype=torch.bool)].quantile(0.3))
    ref = sample_reject(pipe, 3, ict=ict, batch=8, max_candidates=64, progress=False, metric="l2")
    kept = torch.cdist(ref.embeddings, ref.embeddings)[~torch.eye(3, dtype=torch.bool)]
    assert float(kept.min()) >= ict
