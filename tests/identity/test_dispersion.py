import math

import pytest
import torch

from synthcore.identity.directions import LatentDirection, disco_offsets, read_directions, write_directions
from synthcore.identity.dispersion import (
    DispersionConfig,
    embedding_forces,
    initial_variations,
    latent_repulsion,
    run_dispersion,
)
from synthcore.identity.langevin import initial_latents


def _refs(pipe, n=4, seed=0):
    _, _, w = initial_latents(pipe, n, seed, 0.7)
    return w, pipe.embed_batched(w, 16)


def test_latent_repulsion_is_gradient_of_ordered_pair_potential():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 5, generator=g)
    groups = torch.arange(3).repeat_interleave(4)
    k_w, r_w = 1.7, 2.5
    f, d_min = latent_repulsion(w, groups, k_w, r_w)
    wg = w.clone().requires_grad_(True)
    d = torch.cdist(wg, wg) + torch.eye(12)  # keep sqrt away from 0 on the diagonal
    valid = (groups[:, None] == groups[None, :]) & ~torch.eye(12, dtype=torch.bool) & (d < r_w)
    u = torch.where(valid, 0.25 * k_w * (r_w - d) ** 2, torch.zeros_like(d)).sum()
    (grad,) = torch.autograd.grad(u, wg)
    assert int(valid.sum()) > 6
    torch.testing.assert_close(f, -grad, rtol=1e-4, atol=1e-5)
    dist = torch.cdist(w, w).masked_fill(
        ~((groups[:, None] == groups[None, :]) & ~torch.eye(12, dtype=torch.bool)), 1e9
    )
    torch.testing.assert_close(d_min, dist.amin(1), rtol=1e-5, atol=1e-5)


def test_embedding_forces_batched_equal_rowwise(pipe):
    w_ref, e_ref = _refs(pipe, 2)
    cfg = DispersionConfig(num_variations=3, sigma0=0.5)
    w = initial_variations(w_ref, torch.arange(2), cfg)
    rows = e_ref.repeat_interleave(3, dim=0)
    got, e = embedding_forces(pipe, w, rows, 20.0, batch=4)
    for i in range(6):
        wi = w[i : i + 1].clone().requires_grad_(True)
        ei = pipe.embed(wi)
        c = torch.nn.functional.cosine_similarity(ei, rows[i : i + 1])
        u = 20.0 / 4 * torch.arccos(0.999999 * c.clamp(-1, 1)) ** 2
        (g,) = torch.autograd.grad(u.sum(), wi)
        torch.testing.assert_close(got[i], -g[0], rtol=1e-4, atol=1e-4 * float(g.abs().max()))
    assert got.abs().max() > 0


def test_pull_back_keeps_identity_and_repulsion_spreads(pipe):
    w_ref, e_ref = _refs(pipe, 3)
    common = dict(num_variations=4, iterations=6, sigma0=0.4, eta=0.0, r_w=3.0, dt=0.05)
    pulled = run_dispersion(pipe, DispersionConfig(k_e=20.0, **common), w_ref, e_ref, batch=5, progress=False)
    free = run_dispersion(pipe, DispersionConfig(k_e=0.0, **common), w_ref, e_ref, batch=5, progress=False)
    assert pulled.stats[-1]["refd_avg"] < free.stats[-1]["refd_avg"]
    assert pulled.stats[-1]["w2wd_min"] > pulled.stats[0]["w2wd_min"]  # the W repulsion spreads variations
    assert pulled.w.shape == (12, pipe.w_dim) and pulled.embeddings.shape == (12, e_ref.shape[1])
    assert pulled.labels[:5] == ["augmentation_0", "augmentation_1", "augmentation_2", "augmentation_3"] + [
        "augmentation_0"
    ]
    assert pulled.identity.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(pulled.stats) == 7 and math.isnan(pulled.stats[-1]["timestep"])


def test_subset_of_identities_gets_the_same_variations(pipe):
    w_ref, e_ref = _refs(pipe, 5)
    cfg = DispersionConfig(num_variations=3, iterations=3)
    full = run_dispersion(pipe, cfg, w_ref, e_ref, batch=6, progress=False)
    ids = torch.tensor([1, 3, 4])
    part = run_dispersion(pipe, cfg, w_ref[ids], e_ref[ids], identity_ids=ids, batch=6, progress=False)
    rows = torch.cat([torch.arange(3 * i, 3 * i + 3) for i in ids.tolist()])
    torch.testing.assert_close(part.w, full.w[rows], rtol=1e-5, atol=1e-6)
    assert part.identity.tolist() == [1, 1, 1, 3, 3, 3, 4, 4, 4]


def test_resume_is_exact(pipe):
    w_ref, e_ref = _refs(pipe, 3)
    cfg = DispersionConfig(num_variations=4, iterations=5, seed=3)
    saved = {}
    full = run_dispersion(
        pipe,
        cfg,
        w_ref,
        e_ref,
        batch=5,
        progress=False,
        checkpoint=lambda s, st: saved.update({s: st}),
        checkpoint_every=2,
    )
    assert sorted(saved) == [2, 4]
    resumed = run_dispersion(pipe, cfg, w_ref, e_ref, batch=5, progress=False, state=saved[2])
    assert torch.equal(resumed.w, full.w) and torch.equal(resumed.embeddings, full.embeddings)
    with pytest.raises(ValueError, match="k_e"):
        run_dispersion(pipe, DispersionConfig(**{**cfg.to_dict(), "k_e": 1.0}), w_ref, e_ref, state=saved[2])


def test_adaptive_step(pipe):
    w_ref, e_ref = _refs(pipe, 2)
    cfg = DispersionConfig(num_variations=3, iterations=3, dt=None, tau=0.2)
    res = run_dispersion(pipe, cfg, w_ref, e_ref, batch=4, progress=False)
    assert all(r["timestep"] > 0 for r in res.stats[:-1])
    with pytest.raises(ValueError, match="at least 2 variations"):
        DispersionConfig(num_variations=1, dt=None)


def test_directions_file_roundtrip_and_disco(pipe, tmp_path):
    dim = pipe.w_dim
    g = torch.Generator().manual_seed(0)
    dirs = [
        LatentDirection("pose", "pose", torch.randn(dim, generator=g), -2.0, 1.5, 0.3, 0.4),
        LatentDirection("smile", "expression", torch.randn(dim, generator=g), -0.5, 3.0),
    ]
    path = tmp_path / "dirs.h5"
    write_directions(path, dirs, generator="tiny", method="test")
    back = read_directions(path, w_dim=dim)
    assert [d.name for d in back] == ["pose", "smile"] and back[0].pos_std == pytest.approx(0.4)
    torch.testing.assert_close(back[1].normal, dirs[1].normal / dirs[1].normal.norm())
    off = disco_offsets(back, {"pose": 2.0})
    torch.testing.assert_close(off[0].norm(), torch.tensor(4.0))  # scale 2 * extent max(2.0, 1.5)
    torch.testing.assert_close(off[1].norm(), torch.tensor(3.0))
    with pytest.raises(ValueError, match="w_dim"):
        read_directions(path, w_dim=dim + 1)

    w_ref, e_ref = _refs(pipe, 2)
    cfg = DispersionConfig(num_variations=50, iterations=0, disco=True, sigma0=0.0)
    res = run_dispersion(pipe, cfg, w_ref, e_ref, directions=off, batch=64, progress=False)
    delta = res.w - w_ref.repeat_interleave(50, dim=0)
    # each offset is u @ D with u in (-1/2, 1/2)^2: coefficients recovered by least squares
    u = torch.linalg.lstsq(off.T, delta.T).solution.T
    torch.testing.assert_close(off.T @ u.T, delta.T, atol=1e-4, rtol=1e-4)
    assert float(u.abs().max()) < 0.5 and float(u.std()) > 0.2  # U(-1/2, 1/2) has std 0.289
    with pytest.raises(ValueError, match="directions"):
        run_dispersion(pipe, cfg, w_ref, e_ref, progress=False)


def test_directions_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_directions(tmp_path / "missing.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="HDF5"):
        read_directions(bad)


def test_iteration_batched_equals_per_identity_baseline(pipe):
    from synthcore.identity.dispersion import dispersion_iteration

    w_ref, e_ref = _refs(pipe, 3)
    cfg = DispersionConfig(num_variations=4)
    ids = torch.arange(3)
    w = initial_variations(w_ref, ids, cfg)
    a, ea, _ = dispersion_iteration(pipe, w, 0, cfg, e_ref, ids, batch=12)
    b, eb, _ = dispersion_iteration(pipe, w, 0, cfg, e_ref, ids, batch=12, per_identity=True, impl="reference")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ea, eb, rtol=1e-4, atol=1e-5)
