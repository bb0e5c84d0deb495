"""A tiny stand-in generator and embedder with the interfaces the identity algorithms use (fast on CPU)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthcore.identity.pipeline import FacePipeline


class _Mapping(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.num_ws = num_ws
        self.fc0 = nn.Linear(z_dim + c_dim, w_dim)
        self.fc1 = nn.Linear(w_dim, w_dim)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None):
        x = F.normalize(z, dim=1) * z.shape[1] ** 0.5
        if c.shape[1]:
            x = torch.cat([x, c], dim=1)
        w = self.fc1(F.leaky_relu(self.fc0(x), 0.2))
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class _Synthesis(nn.Module):
    def __init__(self, w_dim: int, num_ws: int, res: int) -> None:
        super().__init__()
        self.res = res
        self.fc = nn.Linear(w_dim * num_ws, 8 * (res // 2) ** 2)
        self.conv = nn.Conv2d(8, 3, 3, padding=1)
        self.register_buffer("noise_const", torch.randn(1, 8, res // 2, res // 2))

    def forward(self, ws, noise_mode="const", impl=None):
        x = self.fc(ws.flatten(1)).view(ws.shape[0], 8, self.res // 2, self.res // 2)
        if noise_mode == "const":
            x = x + 0.1 * self.noise_const
        x = F.interpolate(F.leaky_relu(x, 0.2), scale_factor=2, mode="bilinear", align_corners=False)
        return torch.tanh(self.conv(x))


class TinyGenerator(nn.Module):
    """Mapping + synthesis with StyleGAN2's interface; 16x16 RGB images."""

    def __init__(self, z_dim=8, w_dim=8, c_dim=0, num_ws=3, res=16, seed=0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.z_dim, self.w_dim, self.c_dim, self.num_ws = z_dim, w_dim, c_dim, num_ws
        self.img_resolution, self.img_channels = res, 3
        self.mapping = _Mapping(z_dim, c_dim, w_dim, num_ws)
        self.synthesis = _Synthesis(w_dim, num_ws, res)
        with torch.no_grad():
            z = torch.randn(256, z_dim)
            c = torch.zeros(256, c_dim)
            self.mapping.w_avg.copy_(self.mapping(z, c)[:, 0].mean(0))


class TinyEmbedder(nn.Module):
    """16x16 crops to 12-d raw features."""

    input_size = 16
    embedding_size = 12

    def __init__(self, seed=1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 8 * 8, self.embedding_size)

    def forward(self, x):
        return self.fc(F.leaky_relu(self.bn(self.conv(x)), 0.2).flatten(1))


def tiny_pipeline(c_dim: int = 0) -> FacePipeline:
    return FacePipeline(TinyGenerator(c_dim=c_dim), TinyEmbedder(), crop=None)


@pytest.fixture
def pipe() -> FacePipeline:
    return tiny_pipeline()
