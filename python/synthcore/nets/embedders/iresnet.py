"""insightface arcface_torch iResNet (ArcFace/CosFace backbones), with the upstream state-dict names."""

from typing import Tuple

import torch
from torch import nn

from synthcore.nets.embedders.archs import FEATURE_MAP, STAGE_CHANNELS
from synthcore.nets.embedders.layers import conv3x3, projection, stage_plan


class IBasicBlock(nn.Module):
    """Pre-activation unit: BN -> conv -> BN -> PReLU -> conv(stride) -> BN, plus the shortcut; no final act."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        # Attribute order fixes the state-dict order, which matches the released checkpoints.
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv3x3(c_in, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.prelu = nn.PReLU(c_out)
        self.conv2 = conv3x3(c_out, c_out, stride)
        self.bn3 = nn.BatchNorm2d(c_out)
        # insightface projects on every strided unit, including stage 1 where the width does not change.
        self.downsample = projection(c_in, c_out, stride) if stride != 1 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """Maps [N, 3, 112, 112] images (already in the channel order and range the weights expect) to raw features."""

    def __init__(self, units: Tuple[int, int, int, int], embedding_size: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding_size = embedding_size
        self.conv1 = conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU(64)
        plan = stage_plan(units)
        start = 0
        for s, n in enumerate(units, 1):
            blocks = [IBasicBlock(*plan[i]) for i in range(start, start + n)]
            self.add_module(f"layer{s}", nn.Sequential(*blocks))
            start += n
        self.bn2 = nn.BatchNorm2d(STAGE_CHANNELS[-1])
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(STAGE_CHANNELS[-1] * FEATURE_MAP * FEATURE_MAP, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))
