"""``Embedder``: a backbone together with the input convention of the weights it carries."""

from typing import Optional

import torch
from torch import nn

from synthcore.nets.embedders.archs import INPUT_SIZE, ArchSpec, get_arch
from synthcore.nets.embedders.iresnet import IResNet
from synthcore.nets.embedders.irse import IRNet

CHANNEL_ORDERS = ("RGB", "BGR")


def build_backbone(spec: ArchSpec, embedding_size: int = 512) -> nn.Module:
    """The bare network for ``spec`` with default (untrained) weights and the upstream state-dict names."""
    if spec.layout == "iresnet":
        return IResNet(spec.units, embedding_size, spec.dropout)
    order = {"ir_adaface": "adaface", "ir_evolve": "evolve"}[spec.layout]
    return IRNet(spec.units, order, spec.se, embedding_size, spec.dropout)


class Embedder(nn.Module):
    """Face-recognition network taking synthcore's image convention: RGB, [-1, 1], NCHW, 112x112 aligned crops.

    It reorders channels for weights trained on BGR and returns the raw (not normalised) feature, [N, 512].

    ``metric`` / ``threshold``: how identities are compared in this embedding (every embedder family states them;
    dlib's ResNet: "euclidean", 0.6): the angle between features, with the inter-class threshold of 1.4 rad that
    the identity algorithms use for ArcFace-type networks.
    """

    metric = "angle"
    threshold = 1.4

    def __init__(self, backbone: nn.Module, spec: ArchSpec, channel_order: Optional[str] = None) -> None:
        super().__init__()
        order = (channel_order or spec.channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be RGB or BGR, got {channel_order!r}")
        self.backbone = backbone
        self.spec = spec
        self.channel_order = order
        self.input_size = INPUT_SIZE

        self.embedding_size = int(backbone.embedding_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (self.input_size,) * 2:
            raise ValueError(
                f"{self.spec.name} expects [N, 3, {self.input_size}, {self.input_size}] aligned crops, "
                f"got {list(images.shape)}; crop generator frames with synthcore.align first"
            )
        x = images.flip(1) if self.channel_order == "BGR" else images
        return self.backbone(x)

    def extra_repr(self) -> str:
        return f"arch={self.spec.name}, family={self.spec.family}, channel_order={self.channel_order}"


def build_embedder(arch: str, embedding_size: int = 512, channel_order: Optional[str] = None) -> Embedder:
    """An untrained embedder of architecture ``arch`` (see ``ARCHS``), in eval mode."""
    spec = get_arch(arch)
    return Embedder(build_backbone(spec, embedding_size), spec, channel_order).eval()
