"""The DCGAN family: architecture, loading the tutorial layout's state dict safely, latent conventions."""

import pytest
import torch
from torch import nn

from synthcore.nets.dcgan import DCGANError, DCGANGenerator, load_dcgan
from synthcore.nets.model_files import ModelFileError


def tutorial_netG(nz: int = 100, ngf: int = 64, nc: int = 3) -> nn.Sequential:
    """The PyTorch-tutorial generator layout (what released DCGAN weights are saved from), written plainly."""
    layers, cin = [], nz
    for i, mult in enumerate((8, 4, 2, 1)):
        stride, pad = (1, 0) if i == 0 else (2, 1)
        layers += [nn.ConvTranspose2d(cin, ngf * mult, 4, stride, pad, bias=False), nn.BatchNorm2d(ngf * mult),
                   nn.ReLU(True)]  # fmt: skip
        cin = ngf * mult
    layers += [nn.ConvTranspose2d(cin, nc, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


class _Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = tutorial_netG()


@pytest.fixture(scope="module")
def trained_like():
    """A tutorial netG with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(0)
    net = _Wrapper()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


@pytest.fixture
def weights_file(tmp_path, trained_like):
    path = tmp_path / "weights.tar"
    torch.save({"netG_state_dict": trained_like.state_dict()}, path)
    return path


def test_architecture_and_shapes():
    G = DCGANGenerator().eval()
    assert (G.z_dim, G.w_dim, G.c_dim, G.num_ws, G.img_resolution, G.img_channels) == (100, 100, 0, 1, 64, 3)
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 3, 64, 64) and float(x.detach().abs().max()) <= 1
    assert G.synthesis.feature_sizes() == ((512, 4), (256, 8), (128, 16), (64, 32), (3, 64))
    assert sum(p.numel() for p in G.parameters()) == sum(p.numel() for p in tutorial_netG().parameters())


def test_loaded_weights_reproduce_the_tutorial_network(weights_file, trained_like):
    G = load_dcgan(weights_file)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    z = torch.randn(5, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = trained_like.main(z[:, :, None, None])
    torch.testing.assert_close(G(z), want, rtol=0, atol=0)
    torch.testing.assert_close(G.synthesis(z[:, None]), want, rtol=0, atol=0)  # StyleGAN2-shaped ws [N, 1, 100]
    # Eval-mode batch norm: an image depends on its own latent only.
    torch.testing.assert_close(G(z[2:3]), want[2:3], rtol=1e-6, atol=1e-6)


def test_mapping_is_the_identity_with_truncation_by_scaling(weights_file):
    G = load_dcgan(weights_file)
    z = torch.randn(4, 100)
    assert torch.equal(G.mapping.w_avg, torch.zeros(100))
    assert torch.equal(G.mapping(z, None)[:, 0], z)
    torch.testing.assert_close(G.mapping(z, None, truncation_psi=0.7)[:, 0], 0.7 * z)
    assert torch.equal(G.synthesis(z[:, None], noise_mode="random"), G.synthesis(z[:, None], noise_mode="none"))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(z[:, None], noise_mode="loud")
    with pytest.raises(ValueError, match=r"\[N, 100\]"):
        G.synthesis(torch.zeros(2, 99))


def test_files_that_do_not_hold_the_network_are_refused(tmp_path, trained_like):
    sd = trained_like.state_dict()
    cases = {
        "missing": ({k: v for k, v in sd.items() if k != "main.4.weight"}, "missing.*main|blocks.0.norm.weight"),
        "shape": ({**sd, "main.4.weight": torch.zeros(7)}, "wrong shape"),
        "extra": ({**sd, "main.99.weight": torch.zeros(1)}, "unexpected|transposed convolutions"),
        "layout": ({"fc.weight": torch.zeros(2, 2)}, "not a tutorial-layout DCGAN"),
    }
    for name, (state, message) in cases.items():
        path = tmp_path / f"{name}.tar"
        torch.save({"netG_state_dict": state}, path)
        with pytest.raises(DCGANError, match=message):
            load_dcgan(path)
    path = tmp_path / "other.pt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(DCGANError, match="no 'netG_state_dict'"):
        load_dcgan(path)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_file_that_pickles_code_is_refused_unrun(tmp_path, capsys):
    path = tmp_path / "weights.tar"
    torch.save({"netG_state_dict": {}, "extra": _Evil()}, path)
    with pytest.raises(ModelFileError, match="weights.tar"):
        load_dcgan(path)
    assert "must never run" not in capsys.readouterr().out


def test_the_released_digiface_generator_when_installed():
    from synthcore.models import ModelNotInstalled, model_path

    try:
        path = model_path("dcgan-digiface-64")
    except ModelNotInstalled:
        pytest.skip("dcgan-digiface-64 is not installed (synthcore models install dcgan-digiface-64)")
    G = load_dcgan(path)
    x = G(torch.randn(8, 100, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (8, 3, 64, 64)
    # Real faces, not noise: neighbouring pixels are strongly correlated and images differ from each other.
    rows = x[:, :, 1:, :] - x[:, :, :-1, :]
    assert float(rows.abs().mean()) < 0.5 * float((x - x.mean()).abs().mean())
    assert float((x[0] - x[1]).abs().mean()) > 0.05
