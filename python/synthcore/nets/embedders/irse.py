"""IR and IR-SE backbones with the state-dict names of AdaFace and face.evoLVe (TreB1eN shares evoLVe's).

The two codebases number the layers of a unit's residual branch differently, because AdaFace has a BatchNorm
before the PReLU and evoLVe has none; ``order`` selects which.
"""

from typing import Tuple

import torch
from torch import nn

from synthcore.nets.embedders.archs import FEATURE_MAP, STAGE_CHANNELS
from synthcore.nets.embedders.layers import SqueezeExcite, Subsample, conv3x3, projection, stage_plan

ORDERS = ("adaface", "evolve")


class IRUnit(nn.Module):
    """``res_layer(x) + shortcut_layer(x)``, stride on the second conv, no activation after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int, order: str, se: bool) -> None:
        super().__init__()
        # Only width changes get a projection; the strided first unit of stage 1 just subsamples.
        self.shortcut_layer = Subsample(stride) if c_in == c_out else projection(c_in, c_out, stride)
        branch = [nn.BatchNorm2d(c_in), conv3x3(c_in, c_out)]
        if order == "adaface":
            branch.append(nn.BatchNorm2d(c_out))
        branch += [nn.PReLU(c_out), conv3x3(c_out, c_out, stride), nn.BatchNorm2d(c_out)]
        if se:
            branch.append(SqueezeExcite(c_out))
        self.res_layer = nn.Sequential(*branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRNet(nn.Module):
    """Maps [N, 3, 112, 112] images (already in the channel order and range the weights expect) to raw features.

    AdaFace's own forward also divides by the norm and returns it; synthcore keeps the raw feature and lets the
    caller normalise, so every family returns the same kind of output.
    """

    def __init__(
        self,
        units: Tuple[int, int, int, int],
        order: str,
        se: bool = False,
        embedding_size: int = 512,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.embedding_size = embedding_size
        c = STAGE_CHANNELS[-1]
        # Registration order input_layer, output_layer, body reproduces the upstream state-dict order.
        self.input_layer = nn.Sequential(conv3x3(3, 64), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(c * FEATURE_MAP * FEATURE_MAP, embedding_size),
            nn.BatchNorm1d(embedding_size, affine=order != "adaface"),
        )
        self.body = nn.Sequential(*(IRUnit(ci, co, s, order, se) for ci, co, s in stage_plan(units)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))
