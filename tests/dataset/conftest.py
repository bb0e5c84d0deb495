"""Small fixtures for the dataset tests: a stand-in generator with StyleGAN2's synthesis interface."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthcore.dataset import SampleCollection


class _Synthesis(nn.Module):
    def __init__(self, w_dim: int, num_ws: int, res: int, channels: int) -> None:
        super().__init__()
        self.res = res
        self.fc = nn.Linear(w_dim * num_ws, 4 * (res // 4) ** 2)
        self.conv = nn.Conv2d(4, channels, 3, padding=1)
        self.register_buffer("noise_const", torch.randn(1, 4, res // 4, res // 4))

    def forward(self, ws, noise_mode="const", impl=None):
        x = self.fc(ws.flatten(1)).view(ws.shape[0], 4, self.res // 4, self.res // 4)
        if noise_mode == "const":
            x = x + 0.5 * self.noise_const
        elif noise_mode == "random":
            x = x + 0.5 * torch.randn(x.shape, device=x.device)
        x = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
        return torch.tanh(self.conv(x))


class StandInGenerator(nn.Module):
    """``synthesis(ws, noise_mode)`` -> [N, C, res, res] in (-1, 1), with ``num_ws`` and ``w_dim``."""

    def __init__(self, w_dim: int = 6, num_ws: int = 3, res: int = 32, channels: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.w_dim, self.num_ws, self.img_resolution, self.img_channels = w_dim, num_ws, res, channels
        self.synthesis = _Synthesis(w_dim, num_ws, res, channels)


def fill(coll: SampleCollection, identities: int = 3, variations: int = 2, seed: int = 0, emb: bool = True) -> None:
    """Append ``identities`` x (reference + ``variations``) samples of random float32 data."""
    g = np.random.default_rng(seed)
    labels = ["reference"] + [f"augmentation_{a}" for a in range(variations)]
    for i in range(identities):
        k = len(labels)
        extra = {}
        if emb:
            extra["embedding"] = g.standard_normal((k, coll.width("embedding"))).astype(np.float32)
        if coll.w_space == "w":
            lat = {"w": g.standard_normal((k, coll.w_dim)).astype(np.float32)}
        else:
            lat = {"w_plus": g.standard_normal((k, coll.num_ws, coll.w_dim)).astype(np.float32)}
        coll.append(i, labels, **lat, **extra)


@pytest.fixture
def generator():
    return StandInGenerator()
