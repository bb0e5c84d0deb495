"""The StyleGAN2-ADA discriminator of each snapshot reproduces the reference D_logits."""

import pytest
import torch

from synthcore.nets.discriminator import Discriminator, MinibatchStdLayer
from synthcore.nets.snapshot import load_network_pickle
from tests.nets.sg2_data import MODELS, arrays, assert_close, layout, pkl


@pytest.mark.parametrize("name", MODELS)
def test_d_logits_and_structure(name):
    ref = arrays(name)
    D = load_network_pickle(pkl(name), keys=["D"])["D"]
    assert isinstance(D, Discriminator) and not D.training
    mods = dict(D.named_modules())
    for m in layout(name)["D"]:
        assert type(mods[m["path"]]).__name__ == m["class_name"], m["path"]
    assert len(mods) == len(layout(name)["D"])
    img, c = torch.from_numpy(ref["img_psi1_const"]), torch.from_numpy(ref["c"])
    for impl in ("reference", "native"):
        with torch.no_grad():
            assert_close(D(img, c, impl=impl), ref["D_logits"], f"D_logits ({impl})")


def test_minibatch_std_groups_samples_modulo():
    x = torch.randn(6, 4, 3, 3)
    y = MinibatchStdLayer(group_size=3)(x)
    assert y.shape == (6, 5, 3, 3)
    # group size 3 over 6 samples: sample n shares its statistic with n +- 2
    for n in range(2):
        members = x[n::2]
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(y[n, 4], expected.expand(3, 3), atol=1e-6)
        assert torch.allclose(y[n + 2, 4], y[n, 4]) and torch.allclose(y[n + 4, 4], y[n, 4])


@pytest.mark.parametrize("arch", ["resnet", "skip", "orig"])
def test_random_discriminator_runs_with_gradients(arch):
    D = Discriminator(c_dim=2, img_resolution=16, img_channels=3, architecture=arch, channel_base=128, channel_max=16)
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    out = D(img, torch.eye(2)[[0, 1, 0, 1]])
    assert out.shape == (4, 1)
    out.sum().backward()
    assert img.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="img must have shape"):
        D(torch.randn(4, 3, 8, 8), torch.eye(2)[[0, 1, 0, 1]])
