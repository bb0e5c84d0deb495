"""Model files for the references/variations CLI tests: a tiny random generator and an iResNet-18 checkpoint."""

import torch

from synthcore.nets.generator_files import save_generator
from synthcore.nets.stylegan2 import Generator
from tests.nets.conftest import small_state_dict


def make_model_files(folder):
    """(generator .pt, embedder .pth) in ``folder``: 32 px, w_dim 16 generator with a w_avg of mapped samples."""
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, channel_base=256, channel_max=32,
                  mapping_kwargs={"num_layers": 2}, seed=0).eval()  # fmt: skip
    with torch.no_grad():
        z = torch.randn(256, 16, generator=torch.Generator().manual_seed(0))
        G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(0))
    gpath, epath = folder / "G.pt", folder / "backbone.pth"
    save_generator(G, gpath)
    torch.save(small_state_dict("iresnet18"), epath)
    return gpath, epath
