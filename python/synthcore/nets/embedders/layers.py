"""Building blocks shared by the embedder networks (all bias-free convolutions, BatchNorm eps 1e-5)."""

from typing import List, Tuple

import torch
from torch import nn

from synthcore.nets.embedders.archs import STAGE_CHANNELS


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


def projection(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """Strided 1x1 conv + BN: the shortcut wherever the identity cannot be used."""
    return nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))


class Subsample(nn.Module):
    """Parameter-free shortcut of the IR units: keeps every ``stride``-th pixel (identity for stride 1)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]


class SqueezeExcite(nn.Module):
    """Channel gating of the IR-SE units: mean over the map, C -> C/16 -> C 1x1 convs, sigmoid, rescale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = conv1x1(channels, channels // reduction)
        self.fc2 = conv1x1(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


def stage_plan(units: Tuple[int, ...]) -> List[Tuple[int, int, int]]:
    """(c_in, c_out, stride) of every unit, in order: each stage opens with a stride-2 unit."""
    plan, c_in = [], 64
    for n, c in zip(units, STAGE_CHANNELS):
        for i in range(n):
            plan.append((c_in, c, 2 if i == 0 else 1))
            c_in = c
    return plan
