import math

import pytest
import torch

from synthcore import ops
from synthcore.ops.langevin import langevin_noise_reference, langevin_update_reference
from tests.conftest import cuda_only


@pytest.mark.parametrize("rows,dim,offset", [(7, 13, 0), (5, 512, 123456789012), (1, 1, 3)])
def test_noise_matches_reference(rows, dim, offset, cpu_isa):
    a = ops.langevin_noise(rows, dim, seed=2**40 + 5, step=3, row_offset=offset, impl="native")
    b = langevin_noise_reference(rows, dim, seed=2**40 + 5, step=3, row_offset=offset)
    torch.testing.assert_close(a, b, atol=2e-6, rtol=2e-6)
    d = ops.langevin_noise(rows, dim, seed=7, step=3, row_offset=offset, dtype=torch.float64, impl="native")
    torch.testing.assert_close(d, langevin_noise_reference(rows, dim, 7, 3, offset, torch.float64))


def test_both_cpu_variants_draw_the_same_noise():
    """The Langevin kernel is compiled for both instruction sets; both give the same normals (the noise is a pure
    function of seed, step, row and column, whatever the machine)."""
    from synthcore._native import native_module

    mod = native_module()
    draws = []
    try:
        for isa in ("generic", "avx2"):
            try:
                mod.set_cpu_isa(isa)
            except ValueError:
                pytest.skip(f"CPU does not support {isa}")
            draws.append(ops.langevin_noise(300, 33, seed=5, step=7, row_offset=2, dtype=torch.float64, impl="native"))
    finally:
        mod.set_cpu_isa("auto")
    torch.testing.assert_close(draws[0], draws[1], atol=1e-12, rtol=1e-12)


def test_noise_is_independent_of_batch_split_and_threads():
    full = ops.langevin_noise(1000, 37, seed=9, step=2)
    parts = [ops.langevin_noise(n, 37, seed=9, step=2, row_offset=o) for o, n in ((0, 1), (1, 400), (401, 599))]
    assert torch.equal(full, torch.cat(parts))
    torch.set_num_threads(1)
    assert torch.equal(full, ops.langevin_noise(1000, 37, seed=9, step=2))


def test_noise_is_standard_normal_and_keyed():
    x = ops.langevin_noise(4000, 256, seed=1, step=0)
    assert abs(float(x.mean())) < 0.005 and abs(float(x.std()) - 1) < 0.005
    assert abs(float(torch.corrcoef(torch.stack([x[:, 0], x[:, 1]]))[0, 1])) < 0.05
    # fraction beyond 3 sigma, two-sided: 0.27%
    assert abs(float((x.abs() > 3).double().mean()) - 0.0027) < 0.0005
    base = ops.langevin_noise(8, 8, seed=1, step=0)
    for other in (
        ops.langevin_noise(8, 8, seed=2, step=0),
        ops.langevin_noise(8, 8, seed=1, step=1),
        ops.langevin_noise(8, 8, seed=1, step=0, row_offset=1),
    ):
        assert not torch.equal(base, other)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_update_matches_reference(dtype, cpu_isa):
    g = torch.Generator().manual_seed(0)
    w, F, avg = (torch.randn(s, generator=g, dtype=dtype) for s in ((50, 17), (50, 17), (17,)))
    kw = dict(dt=0.1, mu=1.3, k_l=0.2, eta=0.05, seed=3, step=4, row_offset=10)
    torch.testing.assert_close(
        ops.langevin_update(w, F, avg, **kw, impl="native"), langevin_update_reference(w, F, avg, **kw)
    )
    no_avg = ops.langevin_update(w, F, None, **kw, impl="native")
    torch.testing.assert_close(no_avg, langevin_update_reference(w, F, None, **kw))
    # the formula, spelled out
    xi = langevin_noise_reference(50, 17, 3, 4, 10, dtype)
    expect = w + 0.1 / 1.3 * (F + 0.2 * (avg - w)) + math.sqrt(0.1) / 1.3 * 0.05 * xi
    torch.testing.assert_close(ops.langevin_update(w, F, avg, **kw), expect)


def test_update_batch_split_is_exact():
    g = torch.Generator().manual_seed(1)
    w, F = torch.randn(100, 8, generator=g), torch.randn(100, 8, generator=g)
    kw = dict(dt=0.3, eta=0.1, seed=11, step=6)
    whole = ops.langevin_update(w, F, **kw)
    split = torch.cat(
        [ops.langevin_update(w[:30], F[:30], **kw), ops.langevin_update(w[30:], F[30:], **kw, row_offset=30)]
    )
    assert torch.equal(whole, split)


def test_adaptive_timestep():
    g = torch.Generator().manual_seed(2)
    w, F = torch.randn(300, 16, generator=g), torch.randn(300, 16, generator=g)
    d = torch.cdist(w.double(), w.double()) + torch.diag(torch.full((300,), float("inf"), dtype=torch.float64))
    expect = 0.3 * 2.0 * float(d.min()) / float(F.norm(dim=1).max())
    assert ops.adaptive_timestep(w, F, tau=0.3, mu=2.0) == pytest.approx(expect, rel=1e-4)
    with pytest.raises(ValueError, match="zero"):
        ops.adaptive_timestep(w, torch.zeros_like(F))


def test_bad_inputs():
    w = torch.randn(4, 3)
    with pytest.raises(ValueError, match="shape"):
        ops.langevin_update(w, torch.randn(4, 2), dt=0.1)
    with pytest.raises(ValueError, match="dt"):
        ops.langevin_update(w, w, dt=-1)
    with pytest.raises(ValueError, match="mu"):
        ops.langevin_update(w, w, dt=0.1, mu=0)
    with pytest.raises(ValueError, match="seed"):
        ops.langevin_update(w, w, dt=0.1, seed=-1)
    with pytest.raises(ValueError, match="w_avg"):
        ops.langevin_update(w, w, torch.randn(4), dt=0.1)
    with pytest.raises(RuntimeError, match="native"):
        ops.langevin_update(w.half(), w.half(), dt=0.1, impl="native")


@cuda_only
def test_cuda_noise_and_update_match_cpu():
    a = ops.langevin_noise(64, 33, seed=5, step=1, device="cuda", impl="native").cpu()
    torch.testing.assert_close(a, ops.langevin_noise(64, 33, seed=5, step=1), atol=1e-5, rtol=1e-5)
    w, F = torch.randn(64, 33), torch.randn(64, 33)
    cpu = ops.langevin_update(w, F, dt=0.2, eta=0.1, seed=5, step=1)
    gpu = ops.langevin_update(w.cuda(), F.cuda(), dt=0.2, eta=0.1, seed=5, step=1, impl="native").cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=1e-5)
