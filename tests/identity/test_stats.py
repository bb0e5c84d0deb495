import math

import pytest
import torch

from synthcore.identity.stats import (
    FORCE_NAMES,
    NAN_FORCES,
    distance_stats,
    embedding_stats,
    latent_pairs,
    latent_stats,
    norm_stats,
)
from synthcore.ops import pairwise

IMPLS = ["native", "reference"]


def _direct(e, w, w_avg, threshold, groups=None):
    """The statistics row spelled out over an N x N matrix (float64), pairs i != j within groups."""
    e, w = e.double(), w.double()
    n = e.shape[0]
    valid = ~torch.eye(n, dtype=torch.bool)
    if groups is not None:
        valid &= groups[:, None] == groups[None, :]
    en = torch.nn.functional.normalize(e, dim=1)
    ang = torch.arccos((0.999999 * (en @ en.T)).clamp(-1, 1))[valid]
    lat = torch.cdist(w, w)[valid]
    return {
        "dist_min": float(ang.min()),
        "dist_avg": float(ang.mean()),
        "dist_max": float(ang.max()),
        "prop_ict": float((ang >= threshold).double().mean()),
        "w2wd_min": float(lat.min()),
        "w2wd_avg": float(lat.mean()),
        "w2wd_max": float(lat.max()),
        "wavg_avg": float((w - w_avg.double()).norm(dim=1).mean()),
    }


def _data(n, seed=0, e_dim=12, w_dim=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, e_dim, generator=g), 2 * torch.randn(n, w_dim, generator=g), torch.randn(w_dim, generator=g)


def _assert_row(got, want):
    assert list(got) == list(want)  # the published column order
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), k


def test_norm_stats_are_row_norm_min_mean_max():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    assert norm_stats("f", x) == {"f_min": 0.0, "f_avg": 2.0, "f_max": 5.0}
    assert all(math.isnan(v) for v in norm_stats("f", torch.empty(0, 3)).values())
    # A NaN force shows in the row instead of being dropped.
    row = norm_stats("f", torch.tensor([[1.0, 0.0], [math.nan, 0.0]]))
    assert all(math.isnan(v) for v in row.values())


def test_nan_forces_cover_every_force_column():
    names = {k for f in FORCE_NAMES for k in norm_stats(f, torch.ones(1, 2))}
    assert set(NAN_FORCES) == names and len(names) == 12
    assert all(math.isnan(v) for v in NAN_FORCES.values())


@pytest.mark.parametrize("impl", IMPLS)
def test_distance_stats_match_a_direct_computation(impl):
    e, w, w_avg = _data(37)
    _assert_row(distance_stats(e, w, w_avg, 1.4, impl=impl), _direct(e, w, w_avg, 1.4))
    # The threshold only moves prop_ict; near the middle of the angles it is neither 0 nor 1.
    mid = _direct(e, w, w_avg, 1.4)["dist_avg"]
    row = distance_stats(e, w, w_avg, mid, impl=impl)
    assert 0.2 < row["prop_ict"] < 0.8
    assert row["prop_ict"] == pytest.approx(_direct(e, w, w_avg, mid)["prop_ict"])


@pytest.mark.parametrize("impl", IMPLS)
def test_groups_restrict_pairs_and_a_lone_row_does_not_poison_the_means(impl):
    e, w, w_avg = _data(11, seed=1)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 3])  # identity 2 has one row: no pair, NaN row stats
    _assert_row(distance_stats(e, w, w_avg, 1.0, groups=groups, impl=impl), _direct(e, w, w_avg, 1.0, groups))
    alone = distance_stats(e, w, w_avg, 1.0, groups=torch.arange(11), impl=impl)
    assert all(math.isnan(alone[k]) for k in alone if k != "wavg_avg")  # no pair at all
    assert alone["wavg_avg"] == pytest.approx(float((w - w_avg).norm(dim=1).mean()))


def test_every_row_counts_past_a_native_tile():
    # 2050 rows span two 2048-row tiles: the closest and farthest pairs sit in the last rows.
    g = torch.Generator().manual_seed(2)
    w = torch.randn(2050, 4, generator=g)
    # Near the origin, so float32 distances of the tiled dot-product expansion stay exact enough for 1e-3.
    w[-2] = 0.0
    w[-1] = 0.005
    w[-3] = 100.0
    row = latent_stats(latent_pairs(w), w, torch.zeros(4))
    want = _direct(torch.ones(2050, 2), w, torch.zeros(4), 1.0)
    assert row["w2wd_min"] == pytest.approx(want["w2wd_min"], rel=1e-3)
    assert row["w2wd_max"] == pytest.approx(want["w2wd_max"], rel=1e-5)
    assert row["w2wd_avg"] == pytest.approx(want["w2wd_avg"], rel=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_latent_stats_from_a_repulsion_result_equal_their_own_measurement(impl):
    # Dispersion reduces its W repulsion's pairwise result instead of measuring the pairs again: same numbers.
    e, w, w_avg = _data(24, seed=3)
    groups = torch.arange(6).repeat_interleave(4)
    force = pairwise(w, None, metric="l2", r0=2.5, k=1.0, exclude_self=True, q_groups=groups, impl=impl)
    assert force.grad.abs().max() > 0
    reused = distance_stats(e, w, w_avg, 1.4, groups=groups, impl=impl, latent=force)
    assert reused == distance_stats(e, w, w_avg, 1.4, groups=groups, impl=impl)


def test_embedding_stats_use_the_angle_of_the_raw_embeddings():
    e = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]])  # angles pi/2, pi/2, pi (scale does not matter)
    row = embedding_stats(e, threshold=2.0)
    scaled = math.acos(0.999999 * -1.0)
    assert row["dist_min"] == pytest.approx(math.acos(0.0), rel=1e-6)
    assert row["dist_max"] == pytest.approx(scaled, abs=5e-5)  # arccos near -1 magnifies float32 rounding
    assert row["dist_avg"] == pytest.approx((2 * math.pi / 2 + scaled) / 3, abs=5e-5)
    assert row["prop_ict"] == pytest.approx(1 / 3)
