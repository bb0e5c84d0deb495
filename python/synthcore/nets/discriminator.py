"""The StyleGAN2-ADA discriminator, so the ``D`` of an official snapshot can be evaluated, not only carried.

Written from ``../shared/testdata/stylegan2/README.md`` sections 6.5 and 7.8, with the official module and tensor
names. Blocks run from resolution R down to 8 (``fromrgb`` where the image enters, two 3x3 convolutions the
second of which halves the resolution, and a 1x1 skip for ``resnet``); the 4x4 epilogue appends minibatch
standard-deviation channels, then a convolution and two fully connected layers; a conditional discriminator
projects its output onto a mapping of the label.
"""

import math
from typing import Any, Dict, Optional, Tuple

import torch

from synthcore import ops
from synthcore.nets.stylegan2 import (
    ARCHITECTURES,
    DEFAULT_FILTER,
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    _filter_buffer,
    _Layer,
)

__all__ = ["Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer"]


class DiscriminatorBlock(_Layer):
    """One resolution: (fromrgb) + conv0 + conv1 (down 2), with a down-sampling 1x1 skip for ``resnet``."""

    STRUCT_ATTRS = ("in_channels", "resolution", "img_channels", "first_layer_idx", "architecture", "use_fp16",
                    "num_layers")  # fmt: skip

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Any = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.first_layer_idx, self.architecture, self.use_fp16 = first_layer_idx, architecture, use_fp16
        self.register_buffer("resample_filter", _filter_buffer(resample_filter))
        self.num_layers = 0

        def trainable() -> bool:
            # Layers below index freeze_layers (counted over the whole D) keep their weights as buffers.
            idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable(), conv_clamp=conv_clamp)  # fmt: skip
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable(), conv_clamp=conv_clamp)  # fmt: skip
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable(), resample_filter=resample_filter,
                                 conv_clamp=conv_clamp)  # fmt: skip
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter)  # fmt: skip

    def forward(
        self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], fp16: bool = False, impl: Optional[str] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        impl = self._impl(impl)
        dtype = torch.float16 if (self.use_fp16 and fp16) else torch.float32
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype)
            y = self.fromrgb(img, impl=impl)
            x = y if x is None else x + y
            img = ops.downsample2d(img, self.resample_filter, impl=impl) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5), impl=impl)
            x = self.conv0(x, impl=impl)
            x = self.conv1(x, gain=math.sqrt(0.5), impl=impl)
            x = y + x
        else:
            x = self.conv1(self.conv0(x, impl=impl), impl=impl)
        return x, img


class MinibatchStdLayer(_Layer):
    """Append the standard deviation across groups of samples as ``num_channels`` extra feature maps."""

    STRUCT_ATTRS = ("group_size", "num_channels")

    def __init__(self, group_size: Optional[int], num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        if n % g:
            raise ValueError(f"minibatch std: batch {n} is not a multiple of the group size {g}")
        # Sample n belongs to group n mod (N / G): view the batch as [G, N/G, ...] and reduce over axis 0.
        y = x.float().reshape(g, n // g, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [N/G, F]
        y = y.reshape(n // g, f, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(_Layer):
    """The 4x4 end: (fromrgb for skip), minibatch std, 3x3 conv, fc, out; projection onto cmap if conditional."""

    STRUCT_ATTRS = ("in_channels", "cmap_dim", "resolution", "img_channels", "architecture")

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: Optional[int] = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)  # fmt: skip
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor], impl: Optional[str] = None
    ) -> torch.Tensor:
        impl = self._impl(impl)
        x = x.to(torch.float32)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(torch.float32), impl=impl)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x, impl=impl)
        x = self.fc(x.flatten(1), impl=impl)
        x = self.out(x, impl=impl)
        if cmap is not None:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(_Layer):
    """``D(img, c)`` -> logits [N, 1], as the official StyleGAN2-ADA discriminator."""

    STRUCT_ATTRS = ("c_dim", "img_resolution", "img_resolution_log2", "img_channels", "block_resolutions")

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: Optional[float] = None,
        cmap_dim: Optional[int] = None,
        block_kwargs: Optional[Dict[str, Any]] = None,
        mapping_kwargs: Optional[Dict[str, Any]] = None,
        epilogue_kwargs: Optional[Dict[str, Any]] = None,
        seed: Optional[int] = 0,
        init: bool = True,
    ) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution)) if img_resolution >= 4 else 0
        if img_resolution < 4 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.img_resolution_log2 = log2
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        self.config = {
            "c_dim": c_dim, "img_resolution": img_resolution, "img_channels": img_channels,
            "architecture": architecture, "channel_base": channel_base, "channel_max": channel_max,
            "num_fp16_res": num_fp16_res, "conv_clamp": conv_clamp, "cmap_dim": cmap_dim,
            "block_kwargs": dict(block_kwargs or {}), "mapping_kwargs": dict(mapping_kwargs or {}),
            "epilogue_kwargs": dict(epilogue_kwargs or {}),
        }  # fmt: skip
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0, channels[res], channels[res // 2], resolution=res,
                first_layer_idx=layer_idx, use_fp16=(res >= fp16_resolution), **(block_kwargs or {}), **common,
            )  # fmt: skip
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))  # fmt: skip
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}),
                                        **common)  # fmt: skip
        if init:
            gen = None if seed is None else torch.Generator().manual_seed(int(seed))
            for m in self.modules():
                if isinstance(m, _Layer):
                    m.init_tensors(gen)

    def forward(
        self,
        img: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        impl: Optional[str] = None,
        force_fp32: Optional[bool] = None,
    ) -> torch.Tensor:
        impl = self._impl(impl)
        want = [self.img_channels, self.img_resolution, self.img_resolution]
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or list(img.shape[1:]) != want:
            got = list(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"img must have shape [N, {', '.join(map(str, want))}], got {got}")
        fp16 = (img.device.type == "cuda") if force_fp32 is None else not force_fp32
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, fp16, impl)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}): pass labels c")
            cmap = self.mapping(None, c, impl=impl)
        return self.b4(x, img, cmap, impl=impl)

    def set_impl(self, impl: Optional[str]) -> "Discriminator":
        if impl not in (None, "native", "reference"):
            raise ValueError(f"impl must be None, 'native' or 'reference', got {impl!r}")
        for m in self.modules():
            if isinstance(m, _Layer):
                m.impl = impl
        return self
