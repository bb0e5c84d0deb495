import math
import random
import resource

import pytest
import torch

from synthcore import ops
from synthcore.ops.pairwise import pairwise_chunked, pairwise_reference
from tests.conftest import cuda_only

FIELDS = ops.PairwiseResult._fields


def _start(n, d, gen):
    """Rows sharing a mean direction (mean cosine about 0.3): most pairs inside r0 = 1.4 rad."""
    base = torch.randn(d, generator=gen)
    return 0.65 * base / base.norm() * math.sqrt(d) + torch.randn(n, d, generator=gen)


def assert_results_close(a, b, atol=2e-4, rtol=2e-4, msg=""):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, f"{name} {msg}"
            continue
        if name in ("count_within", "num_valid"):
            # a distance within float rounding of r_count may land on either side
            assert (x - y).abs().max() <= max(1, y.numel() // 1000) if y.numel() else True, f"{name} {msg}"
            continue
        torch.testing.assert_close(x.double(), y.double(), atol=atol, rtol=rtol, equal_nan=True, msg=f"{name} {msg}")


def _random_case(rng: random.Random, gen: torch.Generator):
    n, d = rng.randint(1, 90), rng.choice([3, 8, 17])
    metric = rng.choice(["angle", "l2"])
    mode = rng.choice(["self", "keys", "slice"])
    Q = _start(n, d, gen) if rng.random() < 0.5 else torch.randn(n, d, generator=gen)
    K, offset = None, 0
    if mode == "keys":
        K = torch.randn(rng.randint(1, 70), d, generator=gen)
    elif mode == "slice":
        K = torch.cat([torch.randn(rng.randint(0, 20), d, generator=gen), Q, torch.randn(5, d, generator=gen)])
        offset = K.shape[0] - 5 - n
        Q = K[offset : offset + n]
    groups = rng.random() < 0.4
    q_groups = torch.randint(0, 3, (n,), generator=gen).sort().values if groups else None
    k_groups = None
    if groups and K is not None:
        k_groups = torch.randint(0, 3, (K.shape[0],), generator=gen)
        if mode == "slice":
            k_groups[offset : offset + n] = q_groups
    r0 = rng.choice([0.5, 1.4, 2.0]) if metric == "angle" else rng.choice([1.0, 4.0, 8.0])
    return dict(
        Q=Q,
        K=K,
        metric=metric,
        r0=r0,
        k=rng.choice([1.0, 0.3]),
        r_count=r0 * rng.choice([0.5, 1.0]),
        exclude_self=(mode != "keys") and rng.random() < 0.7,
        q_groups=q_groups,
        k_groups=k_groups,
        query_offset=offset,
    )


def _as64(case):
    return {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in case.items()}


def assert_grad_as_accurate_as_reference(nat, ref32, ref64, factor=5.0, msg=""):
    """Close pairs make the gradient a small difference of large terms, so float32 loses digits there whatever
    the implementation: require native to be within a small factor of the float32 reference's own error."""
    scale = float(ref64.grad.abs().max()) if ref64.grad.numel() else 0.0
    err_nat = float((nat.grad.double() - ref64.grad).abs().max()) if scale else 0.0
    err_ref = float((ref32.grad.double() - ref64.grad).abs().max()) if scale else 0.0
    assert err_nat <= factor * err_ref + 2e-5 * max(scale, 1.0), f"grad error {err_nat} vs reference {err_ref} {msg}"


@pytest.mark.parametrize("seed", range(8))
def test_native_matches_reference(seed, cpu_isa):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    for _ in range(12):
        case = _random_case(rng, gen)
        ref = pairwise_reference(**case)
        ref64 = pairwise_reference(**_as64(case))
        for tile in (7, 32, 2048):  # off-diagonal, diagonal and group-skipped tiles
            nat = ops.pairwise(**case, tile=tile, impl="native")
            msg = f"tile {tile} {dict((k, v) for k, v in case.items() if k not in 'QK')}"
            assert_results_close(nat._replace(grad=None), ref._replace(grad=None), msg=msg)
            assert_grad_as_accurate_as_reference(nat, ref, ref64, msg=msg)


@pytest.mark.parametrize("seed", range(4))
def test_chunked_matches_reference(seed):
    rng, gen = random.Random(seed + 100), torch.Generator().manual_seed(seed)
    for _ in range(10):
        case = _random_case(rng, gen)
        ch, ref = pairwise_chunked(**case, chunk=16), pairwise_reference(**case)
        assert_results_close(ch._replace(grad=None), ref._replace(grad=None))
        assert_grad_as_accurate_as_reference(ch, ref, pairwise_reference(**_as64(case)))


@pytest.mark.parametrize("metric,r0", [("angle", 1.4), ("l2", 6.0)])
def test_analytic_gradient_float64(metric, r0):
    """The analytic gradient (chunked, float64) agrees with autograd of the reference energy to rounding, and
    the reference energy's gradient passes gradcheck."""
    gen = torch.Generator().manual_seed(0)
    Q = _start(12, 5, gen).double()
    K = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    for k_rows in (None, K):
        ref = pairwise_reference(Q, k_rows, metric=metric, r0=r0, exclude_self=k_rows is None)
        ana = pairwise_chunked(Q, k_rows, metric=metric, r0=r0, exclude_self=k_rows is None, chunk=5)
        torch.testing.assert_close(ana.grad, ref.grad, atol=1e-12, rtol=1e-10)
        keys = Q.detach() if k_rows is None else k_rows

        assert torch.autograd.gradcheck(
            lambda q, keys=keys: _energy(q, keys, metric, r0), (Q.clone().requires_grad_(True),)
        )


def _energy(q, keys, metric, r0):
    if metric == "angle":
        c = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(keys, dim=1).T
        dist = torch.arccos(0.999999 * c)
    else:
        dist = torch.cdist(q, keys, compute_mode="donot_use_mm_for_euclid_dist")
    if keys.shape[0] == q.shape[0] and torch.equal(keys, q.detach()):
        dist = dist + torch.diag(torch.full((q.shape[0],), float("inf"), dtype=q.dtype))  # exclude self
    return (0.5 * (r0 - dist).clamp(min=0) ** 2).sum()


def test_sparse_and_dense_force_paths():
    gen = torch.Generator().manual_seed(1)
    spread = torch.randn(600, 256, generator=gen)  # nearly orthogonal: ~0.02% of pairs inside 1.35 rad
    start = _start(600, 256, gen)  # most pairs inside
    fractions = []
    for X in (spread, start):
        ref = pairwise_reference(X, None, r0=1.35, exclude_self=True)
        nat = ops.pairwise(X, None, r0=1.35, exclude_self=True, tile=128, impl="native")
        assert_results_close(nat._replace(grad=None), ref._replace(grad=None), atol=5e-4, rtol=5e-4)
        assert_grad_as_accurate_as_reference(nat, ref, pairwise_reference(X.double(), None, r0=1.35, exclude_self=True))
        fractions.append(float(ref.count_within.sum()) / float(ref.num_valid.sum()))
    assert 0 < fractions[0] < 0.02 < 0.5 < fractions[1]  # one sparse, one dense case


def test_stats_use_every_row():
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(1001, 8, generator=gen)  # not a multiple of 500 (the published code drops the remainder)
    s = ops.pairwise_stats(X, metric="angle", threshold=1.4)
    c = torch.nn.functional.normalize(X, dim=1) @ torch.nn.functional.normalize(X, dim=1).T
    iu = torch.triu_indices(1001, 1001, 1)
    dist = torch.arccos((0.999999 * c[iu[0], iu[1]]).clamp(-1, 1))
    assert s["pairs"] == 1001 * 1000
    assert s["min"] == pytest.approx(float(dist.min()), abs=1e-5)
    assert s["max"] == pytest.approx(float(dist.max()), abs=1e-5)
    assert s["mean"] == pytest.approx(float(dist.double().mean()), abs=1e-5)
    assert s["frac_beyond"] == pytest.approx(float((dist >= 1.4).double().mean()), abs=1e-4)
    g = ops.pairwise_stats(X, metric="l2", threshold=3.0, groups=torch.arange(1001) // 100)
    assert g["pairs"] == 10 * 100 * 99 + 1 * 0


def test_memory_is_linear_in_rows():
    """30k rows: an N x N float32 matrix would need 3.6 GB; the tiled kernel needs a few tiles."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    X = torch.randn(30000, 8, generator=torch.Generator().manual_seed(3))
    res = ops.pairwise(X, None, metric="angle", r0=0.2, exclude_self=True, impl="native")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert res.num_valid.min() == 29999
    assert grown_mb < 600, grown_mb


def test_bad_inputs():
    X = torch.randn(10, 4)
    with pytest.raises(ValueError, match="2 dimensions"):
        ops.pairwise(torch.randn(10))
    with pytest.raises(ValueError, match="features"):
        ops.pairwise(X, torch.randn(5, 3))
    with pytest.raises(TypeError, match="dtype"):
        ops.pairwise(X, torch.randn(5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="metric"):
        ops.pairwise(X, metric="cosine")
    with pytest.raises(ValueError, match="r0"):
        ops.pairwise(X, r0=-1.0)
    with pytest.raises(ValueError, match="group ids"):
        ops.pairwise(X, q_groups=torch.zeros(9, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        ops.pairwise(X, q_groups=torch.zeros(10))
    with pytest.raises(ValueError, match="query_offset"):
        ops.pairwise(X, torch.randn(12, 4), query_offset=5)
    with pytest.raises(RuntimeError, match="float32"):
        ops.pairwise(X.double(), impl="native")
    empty = ops.pairwise(torch.randn(0, 4), torch.randn(3, 4), impl="native")
    assert empty.grad.shape == (0, 4)


@cuda_only
def test_cuda_matches_reference():
    rng, gen = random.Random(5), torch.Generator().manual_seed(5)
    for _ in range(10):
        case = _random_case(rng, gen)
        cuda = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in case.items()}
        nat, ref = ops.pairwise(**cuda, tile=32, impl="native"), pairwise_reference(**case)
        nat = ops.PairwiseResult(*(None if v is None else v.cpu() for v in nat))
        assert_results_close(nat._replace(grad=None), ref._replace(grad=None), atol=1e-3, rtol=1e-3)
        assert_grad_as_accurate_as_reference(nat, ref, pairwise_reference(**_as64(case)))
