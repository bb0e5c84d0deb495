import math

import pytest
import torch

from synthcore.identity.seeds import derive_seed, normal_rows, uniform_rows
from synthcore.ops.langevin import langevin_noise_reference


def test_derive_seed_is_a_stable_64_bit_key_per_seed_and_purpose():
    keys = {(s, p): derive_seed(s, p) for s in (0, 1, 2**40) for p in ("z", "class", "langevin", "dispersion")}
    assert all(0 <= k < 2**64 for k in keys.values())
    assert len(set(keys.values())) == len(keys)  # every (seed, purpose) has its own stream
    assert derive_seed(1, "z") == keys[(1, "z")]  # a pure function: the same key in every call and process
    assert derive_seed(True, "z") == keys[(1, "z")]  # keyed by the integer value
    with pytest.raises(ValueError, match="seed"):
        derive_seed(-1, "z")


def test_normal_rows_are_the_philox_stream_of_the_derived_key():
    # The documented definition: ops.langevin_noise keyed by derive_seed(seed, purpose), step 0, global rows.
    got = normal_rows(5, 7, seed=3, purpose="z", row_offset=11)
    assert got.dtype == torch.float32 and got.shape == (5, 7)
    # Native kernels and the plain-torch definition agree up to the rounding of log, sin and cos.
    torch.testing.assert_close(got, langevin_noise_reference(5, 7, derive_seed(3, "z"), 0, 11), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, langevin_noise_reference(5, 7, derive_seed(3, "class"), 0, 11))


@pytest.mark.parametrize("split", [[1, 9], [4, 4, 2], [3, 3, 3, 1]])
def test_rows_do_not_depend_on_how_a_run_is_split(split):
    whole_n = normal_rows(10, 6, seed=5, purpose="z")
    whole_u = uniform_rows(10, 6, seed=5, purpose="disco-coefficients", low=-2.0, high=3.0)
    parts_n, parts_u, offset = [], [], 0
    for rows in split:
        parts_n.append(normal_rows(rows, 6, seed=5, purpose="z", row_offset=offset))
        parts_u.append(uniform_rows(rows, 6, 5, "disco-coefficients", low=-2.0, high=3.0, row_offset=offset))
        offset += rows
    assert torch.equal(torch.cat(parts_n), whole_n)
    assert torch.equal(torch.cat(parts_u), whole_u)


def test_a_column_does_not_depend_on_the_row_width():
    # Counter = (column block, row, step): column j of a row is the same whatever the number of columns.
    assert torch.equal(normal_rows(4, 5, 2, "z"), normal_rows(4, 13, 2, "z")[:, :5])


def test_distinct_purposes_and_seeds_give_unrelated_streams():
    a = normal_rows(200, 16, seed=0, purpose="z").flatten()
    for other in (normal_rows(200, 16, 0, "class"), normal_rows(200, 16, 1, "z"), normal_rows(200, 16, 0, "z", 1)):
        b = other.flatten()
        assert not torch.isclose(a, b).any()  # no value shared by accident at the same place
        corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        assert abs(corr) < 5 / math.sqrt(a.numel())  # 5 standard errors of the correlation of independent draws


def test_normal_rows_are_standard_normal():
    x = normal_rows(500, 64, seed=9, purpose="langevin").double().flatten()
    n = x.numel()
    assert abs(float(x.mean())) < 5 / math.sqrt(n)
    assert abs(float(x.var()) - 1) < 5 * math.sqrt(2 / n)
    assert float((x.abs() < 1).double().mean()) == pytest.approx(0.682689, abs=0.01)  # mass within one sigma
    assert bool(torch.isfinite(x).all())


@pytest.mark.parametrize("low,high", [(-0.5, 0.5), (2.0, 5.0)])
def test_uniform_rows_cover_their_range_evenly(low, high):
    u32 = uniform_rows(400, 50, seed=4, purpose="disco-coefficients", low=low, high=high)
    assert u32.dtype == torch.float32 and u32.shape == (400, 50)
    u = u32.double().flatten()
    # Open in law; float32 rounding may land the most extreme normals (|x| > 5.4, p ~ 1e-7) on an end.
    assert bool((u >= low).all() and (u <= high).all())
    n = u.numel()
    assert float(u.mean()) == pytest.approx((low + high) / 2, abs=5 * (high - low) / math.sqrt(12 * n))
    counts = torch.histc(u, bins=10, min=low, max=high)
    expected = n / 10
    assert float(((counts - expected) ** 2 / expected).sum()) < 30  # chi-square, 9 dof: p ~ 5e-4


def test_uniforms_are_the_normal_cdf_of_the_same_stream():
    x = normal_rows(3, 8, 1, "p").double()
    u = uniform_rows(3, 8, 1, "p", low=0.0, high=1.0).double()
    torch.testing.assert_close(u, 0.5 * (1 + torch.erf(x / math.sqrt(2))), rtol=0, atol=1e-7)
