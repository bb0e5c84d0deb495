import math

import pytest
import torch

from synthcore.identity.langevin import (
    LangevinConfig,
    initial_latents,
    interaction_forces,
    interaction_forces_per_identity,
    run_langevin,
)
from tests.identity.conftest import tiny_pipeline


def _same_rows(a, b):
    """Stats rows equal, NaN matching NaN."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(x[k] == y[k] or (math.isnan(x[k]) and math.isnan(y[k])) for k in x)
        for x, y in zip(a, b)
    )


def _keys(pipe, w):
    return pipe.embed_batched(w, 64)


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_batched_forces_equal_per_identity_loop(pipe, batch):
    cfg = LangevinConfig(num_identities=7, r0=2.5, k=1.3)  # a wide radius so every pair interacts
    _, _, w = initial_latents(pipe, 7, seed=3, truncation_psi=1.0)
    keys = _keys(pipe, w)
    ext = torch.randn(5, keys.shape[1], generator=torch.Generator().manual_seed(0))
    for external in (None, ext):
        ref = interaction_forces_per_identity(pipe, w, keys, cfg, external)
        got, e = interaction_forces(pipe, w, keys, cfg, batch, external)
        assert ref.abs().max() > 1e-3  # the forces are not trivially zero
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        torch.testing.assert_close(e, keys, rtol=1e-5, atol=1e-6)


def test_force_is_minus_gradient_of_total_potential(pipe):
    # Batched path against autograd of sum_i U_i written in terms of all latents (keys detached).
    cfg = LangevinConfig(num_identities=5, r0=2.0)
    _, _, w = initial_latents(pipe, 5, seed=1, truncation_psi=1.0)
    keys = _keys(pipe, w)
    wg = w.clone().requires_grad_(True)
    e = pipe.embed(wg)
    c = torch.nn.functional.normalize(e, dim=1) @ torch.nn.functional.normalize(keys, dim=1).T
    d = torch.arccos((0.999999 * c).clamp(-1, 1))
    off = ~torch.eye(5, dtype=torch.bool)
    u = torch.where(off & (d < cfg.r0), 0.5 * cfg.k * (cfg.r0 - d) ** 2, torch.zeros_like(d)).sum()
    (g,) = torch.autograd.grad(u, wg)
    got, _ = interaction_forces(pipe, w, keys, cfg, batch=2)
    torch.testing.assert_close(got, -g, rtol=1e-4, atol=1e-4 * float(g.abs().max()))


def test_run_is_reproducible_and_batch_independent_in_law(pipe):
    cfg = LangevinConfig(num_identities=12, iterations=4, seed=5)
    a = run_langevin(pipe, cfg, batch=4, progress=False)
    b = run_langevin(pipe, cfg, batch=4, progress=False)
    assert torch.equal(a.w, b.w) and torch.equal(a.embeddings, b.embeddings)
    assert len(a.stats) == cfg.iterations + 1
    c = run_langevin(pipe, cfg, batch=12, progress=False)
    torch.testing.assert_close(c.w, a.w, rtol=1e-4, atol=1e-5)
    other = run_langevin(pipe, LangevinConfig(num_identities=12, iterations=4, seed=6), batch=4, progress=False)
    assert not torch.allclose(other.w, a.w)


def test_repulsion_raises_minimum_angle(pipe):
    cfg = LangevinConfig(num_identities=16, iterations=12, r0=2.0, k=1.0, eta=0.0, k_l=0.0)
    res = run_langevin(pipe, cfg, batch=8, progress=False)
    first, last = res.stats[0], res.stats[-1]
    assert last["dist_min"] > 2 * first["dist_min"]
    assert last["dist_avg"] > first["dist_avg"] + 0.1
    assert all(math.isfinite(r["timestep"]) and r["timestep"] > 0 for r in res.stats[:-1])
    assert math.isnan(res.stats[-1]["timestep"])


def test_external_repellers_push_identities_away(pipe):
    base = LangevinConfig(num_identities=6, iterations=8, r0=0.5, eta=0.0, k_l=0.0, dt=0.5)
    _, _, w = initial_latents(pipe, 6, seed=0, truncation_psi=0.7)
    external = pipe.embed_batched(w, 8)[:3] * 2.0  # real faces sitting exactly on three identities
    cfg = LangevinConfig(**{**base.to_dict(), "external_r0": 2.5})
    free = run_langevin(pipe, base, batch=3, progress=False)
    pushed = run_langevin(pipe, cfg, batch=3, external=external, progress=False)
    assert pushed.stats[0]["ext_dist_min"] < 2e-3  # arccos(0.999999) for identical directions
    assert pushed.stats[-1]["ext_dist_min"] > 0.05
    assert not torch.allclose(free.w, pushed.w)


@pytest.mark.parametrize("single", [False, True])
def test_resume_from_checkpoint_state_is_exact(pipe, single):
    cfg = LangevinConfig(num_identities=9, iterations=6, seed=2, single_forward=single)
    saved = {}
    full = run_langevin(
        pipe, cfg, batch=4, progress=False, checkpoint=lambda s, st: saved.update({s: st}), checkpoint_every=2
    )
    assert sorted(saved) == [2, 4, 6]
    resumed = run_langevin(pipe, cfg, batch=4, progress=False, state=saved[4])
    assert torch.equal(resumed.w, full.w) and torch.equal(resumed.embeddings, full.embeddings)
    assert _same_rows(resumed.stats, full.stats)


def test_resume_refuses_other_settings(pipe):
    cfg = LangevinConfig(num_identities=4, iterations=2)
    saved = {}
    run_langevin(pipe, cfg, progress=False, checkpoint=lambda s, st: saved.update({s: st}), checkpoint_every=1)
    with pytest.raises(ValueError, match="r0"):
        run_langevin(pipe, LangevinConfig(num_identities=4, iterations=2, r0=1.0), progress=False, state=saved[1])


def test_single_forward_is_a_close_but_different_discretisation(pipe):
    cfg = LangevinConfig(num_identities=10, iterations=5, seed=1)
    two = run_langevin(pipe, cfg, batch=5, progress=False)
    one = run_langevin(pipe, LangevinConfig(**{**cfg.to_dict(), "single_forward": True}), batch=5, progress=False)
    # The first step is identical (keys are the embeddings of w_0 either way); later steps differ.
    assert two.stats[0]["intf_avg"] == pytest.approx(one.stats[0]["intf_avg"], rel=1e-5)
    assert not torch.equal(two.w, one.w)
    assert one.stats[-1]["dist_min"] > 0


def test_conditional_generator_draws_classes():
    pipe = tiny_pipeline(c_dim=4)
    z, c, w = initial_latents(pipe, 50, seed=0, truncation_psi=0.7)
    assert c.shape == (50, 4) and torch.equal(c.sum(1), torch.ones(50))
    assert len(set(c.argmax(1).tolist())) == 4
    z2, c2, _ = initial_latents(pipe, 10, seed=0, truncation_psi=0.7, row_offset=40)
    assert torch.equal(z2, z[40:]) and torch.equal(c2, c[40:])


def test_bad_config():
    with pytest.raises(ValueError, match="at least 2"):
        LangevinConfig(num_identities=1)
    with pytest.raises(ValueError, match="dt"):
        LangevinConfig(dt=-0.3)
    with pytest.raises(ValueError, match="mu"):
        LangevinConfig(mu=0)


# two passes / everyone in one with-gradient batch / three batches with their graphs held, keys from them
@pytest.mark.parametrize("batch,hold", [(4, None), (6, None), (2, 6)])
def test_iteration_batched_equals_per_identity_baseline(pipe, batch, hold):
    from synthcore.identity.langevin import langevin_iteration

    cfg = LangevinConfig(num_identities=6, seed=4)
    _, _, w = initial_latents(pipe, 6, 4, 0.7)
    a, ea, row_a, _ = langevin_iteration(pipe, w, 3, cfg, batch=batch, hold_graphs=hold)
    b, eb, row_b, _ = langevin_iteration(pipe, w, 3, cfg, batch=4, per_identity=True, impl="reference")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert row_a["timestep"] == pytest.approx(row_b["timestep"], rel=1e-4)
    assert not torch.equal(a, w)
