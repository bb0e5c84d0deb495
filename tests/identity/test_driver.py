import math
from dataclasses import asdict, dataclass
from typing import Optional

import pytest
import torch

from synthcore.identity import driver
from synthcore.identity.dispersion import DispersionConfig, run_dispersion
from synthcore.identity.langevin import LangevinConfig, initial_latents, run_langevin
from synthcore.ops import langevin_noise, langevin_update


@pytest.mark.parametrize("impl", ["native", "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_euler_maruyama_is_the_update_op_with_one_draw(impl, dtype):
    g = torch.Generator().manual_seed(0)
    w, f = torch.randn(9, 7, generator=g, dtype=dtype), torch.randn(9, 7, generator=g, dtype=dtype)
    w_avg = torch.randn(7, generator=g, dtype=dtype)
    kw = dict(mu=1.3, k_l=0.1, eta=0.05, seed=2**63 + 5, step=4)
    # Rows 0..3 are global rows 10..13 with step 0.02, rows 4..8 global rows 30..34 with step 0.3.
    dts = torch.tensor([0.02] * 4 + [0.3] * 5, dtype=torch.float64)
    got, xi = driver.euler_maruyama(w, f, w_avg, dts, runs=[(0, 4, 10), (4, 9, 30)], impl=impl, **kw)
    want = torch.cat(
        [
            langevin_update(w[:4], f[:4], w_avg, dt=0.02, row_offset=10, impl=impl, **kw),
            langevin_update(w[4:], f[4:], w_avg, dt=0.3, row_offset=30, impl=impl, **kw),
        ]
    )
    if impl == "reference":
        assert torch.equal(got, want)  # the definition, to the bit
    else:
        # The kernel's own arithmetic may contract multiply-adds on some ISAs: equal to rounding.
        torch.testing.assert_close(got, want, rtol=1e-6 if dtype == torch.float32 else 1e-14, atol=0)
    assert torch.equal(xi[4:], langevin_noise(5, 7, kw["seed"], 4, 30, dtype, impl=impl))
    one, _ = driver.euler_maruyama(w[:4], f[:4], w_avg, 0.02, runs=[(0, 4, 10)], impl=impl, **kw)
    assert torch.equal(one, got[:4])  # one step for every row = the same step per row


def test_euler_maruyama_refuses_a_bad_step():
    w = torch.zeros(2, 3)
    for dt in (math.nan, -0.1, math.inf):
        with pytest.raises(ValueError, match="time step"):
            driver.euler_maruyama(w, w, w[0], dt, mu=1, k_l=0, eta=1, seed=0, step=0, runs=[(0, 2, 0)])


def test_step_settings_are_checked_by_name():
    with pytest.raises(ValueError, match="iterations"):
        LangevinConfig(iterations=-1)
    with pytest.raises(ValueError, match="k_e"):
        DispersionConfig(k_e=math.nan)
    with pytest.raises(ValueError, match="mu"):
        DispersionConfig(mu=0.0)
    with pytest.raises(ValueError, match="dt"):
        DispersionConfig(dt=math.inf)
    with pytest.raises(ValueError, match="seed"):
        LangevinConfig(seed=-2)
    with pytest.raises(ValueError, match="metric"):
        DispersionConfig(metric="hamming")


@dataclass(frozen=True)
class _ToyConfig:
    iterations: int = 5
    scale: float = 0.5

    def to_dict(self):
        return asdict(self)


class _Toy(driver.StepAlgorithm):
    """w <- scale w + t, carrying a step counter: the driver's loop without the identity maths."""

    name, label = "toy", "toy"

    def __init__(self, pipe, cfg, batch=2):
        self.pipe, self.cfg, self.batch = pipe, cfg, batch
        self.count: Optional[int] = None
        self.steps = []

    def initial(self):
        self.count = 0
        return torch.arange(8, dtype=torch.float32).view(4, 2).repeat(1, 4)

    def restore(self, state):
        if state["count"] != state["step"]:
            raise ValueError("toy state is inconsistent")
        self.count = state["count"]

    def carry(self):
        return {"count": self.count}

    def network_rows(self, start):
        return 4  # the final pass only

    def step(self, w, t, bar):
        self.steps.append(t)
        self.count += 1
        return self.cfg.scale * w + t, {"t": float(t), "mean": float(w.mean())}

    def embedding_row(self, t, e, w):
        return {"t": float(t), "mean": float(w.mean())}


def test_drive_checkpoints_resumes_and_reports_every_row(pipe):
    cfg = _ToyConfig()
    saved, seen = {}, []
    toy = _Toy(pipe, cfg)
    w, e, stats = driver.drive(
        toy, checkpoint=lambda s, st: saved.update({s: st}), checkpoint_every=2, progress=False,
        on_iteration=lambda t, r: seen.append(t),
    )  # fmt: skip
    assert sorted(saved) == [2, 4] and toy.steps == [0, 1, 2, 3, 4] and seen == [0, 1, 2, 3, 4, 5]
    assert list(saved[4]) == ["algorithm", "step", "w", "count", "stats", "config"]
    assert saved[4]["algorithm"] == "toy" and saved[4]["count"] == 4 and len(saved[4]["stats"]) == 4
    assert len(stats) == 6 and math.isnan(stats[-1]["timestep"]) and math.isnan(stats[-1]["intf_max"])
    torch.testing.assert_close(e, pipe.embed_batched(w, 4))

    again = _Toy(pipe, cfg)
    w2, e2, stats2 = driver.drive(again, state=saved[2], progress=False)
    assert again.steps == [2, 3, 4]  # only the steps after the checkpoint run
    assert torch.equal(w2, w) and torch.equal(e2, e)
    assert stats2[:-1] == stats[:-1] and stats2[-1]["mean"] == stats[-1]["mean"]

    with pytest.raises(ValueError, match=r"scale: checkpoint 0.5 vs now 0.25"):
        driver.drive(_Toy(pipe, _ToyConfig(scale=0.25)), state=saved[2], progress=False)
    with pytest.raises(ValueError, match="toy state"):
        driver.drive(_Toy(pipe, cfg), state={**saved[2], "count": 3}, progress=False)


class _Bar:
    """Records what the driver's progress bar is told."""

    made = []

    def __init__(self, total, label="", enabled=True, **kw):
        self.total, self.label, self.done = total, label, 0
        _Bar.made.append(self)

    def update(self, n=1):
        self.done += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.mark.parametrize(
    "extra,batch,hold",
    [({}, 3, None), ({}, 8, None), ({}, 2, 8), ({"single_forward": True}, 3, None)],
)
def test_progress_total_is_the_work_done(pipe, monkeypatch, extra, batch, hold):
    # The bar ends exactly at 100%: its total counts every row the networks see, also after a resume.
    monkeypatch.setattr(driver, "Progress", _Bar)
    cfg = LangevinConfig(num_identities=5, iterations=3, **extra)
    saved = {}
    _Bar.made = []
    run_langevin(pipe, cfg, batch=batch, hold_graphs=hold, checkpoint=lambda s, st: saved.update({s: st}),
                 checkpoint_every=1)  # fmt: skip
    run_langevin(pipe, cfg, batch=batch, hold_graphs=hold, state=saved[2])
    _, _, w = initial_latents(pipe, 2, 0, 0.7)
    run_dispersion(pipe, DispersionConfig(num_variations=3, iterations=2), w, pipe.embed_batched(w, 4), batch=4)
    assert [b.label for b in _Bar.made] == ["langevin", "langevin", "dispersion"]
    assert all(b.done == b.total > 0 for b in _Bar.made), [(b.done, b.total) for b in _Bar.made]


class _FacePipe:
    """A landmark pipeline stand-in: a frame "holds a face" when the latent's first value is positive."""

    checks_faces = True

    def __init__(self):
        self.checked = 0

    def faces_found(self, w):
        self.checked += w.shape[0]
        return w[:, 0] > 0


def test_keep_faces_refuses_only_moves_out_of_the_face_region():
    pipe = _FacePipe()
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    w_next = torch.tensor([[-1.0, 0.0], [2.0, 1.0], [-2.0, 5.0]])
    row = {}
    got, found = driver.keep_faces(pipe, w, w_next, None, row)
    # face -> no face: refused; face -> face: moves; no face -> no face: moves freely
    assert torch.equal(got, torch.tensor([[1.0, 0.0], [2.0, 1.0], [-2.0, 5.0]]))
    assert found.tolist() == [True, True, False]
    assert row == {"prop_face": pytest.approx(2 / 3), "face_refused": 1.0}
    assert pipe.checked == 6  # w and w_next
    # The next step reuses the answer for its own latents: only the new ones are checked.
    driver.keep_faces(pipe, got, got + 1, found, {})
    assert pipe.checked == 9


def test_keep_faces_leaves_fixed_crop_pipelines_alone():
    class Fixed:
        checks_faces = False

    w = torch.zeros(2, 3)
    w_next = torch.ones(2, 3)
    row = {}
    assert driver.keep_faces(Fixed(), w, w_next, None, row) == (w_next, None) and row == {}
