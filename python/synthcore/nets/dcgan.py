"""The DCGAN generator family: the PyTorch-tutorial 64x64 DCGAN, and loading its released weights safely.

Architecture (Radford et al.'s DCGAN in the layout of the PyTorch tutorial): z [N, 100, 1, 1] -> transposed
convolution 4x4 to 512 x 4 x 4, then three up-blocks (transposed convolution 4x4 stride 2 padding 1, halving the
channels and doubling the size: 256 x 8, 128 x 16, 64 x 32) and a last transposed convolution to 3 x 64 x 64; batch
norm and ReLU after every convolution but the last, Tanh at the end. No convolution has a bias. The networks
always run in eval mode, so batch norm uses its running statistics and an image depends on its own latent only.

To sit where the identity algorithms and the render expect a generator, ``DCGANGenerator`` has the StyleGAN2
calling convention: ``mapping`` is the identity of z with a zero mean latent ``w_avg``, so StyleGAN2's truncation
``w_avg + psi (w - w_avg)`` is the DCGAN's truncation by scaling ``psi z``; ``synthesis`` takes ``ws`` [N, 1, 100]
(one "layer"), and accepts and ignores a noise mode (the network has no noise inputs).

``load_dcgan(path)`` reads a torch zip holding ``{"netG_state_dict": ...}`` (the tutorial's ``main.<i>`` keys,
what ``gan-face-generate`` ships as ``weights.tar``) with ``torch.load(weights_only=True)``: nothing in the file
runs. The released ``dcgan-digiface-64`` weights are for NON-COMMERCIAL RESEARCH ONLY (DigiFace-1M terms).
"""

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from synthcore.nets.model_files import ModelFileError, load_torch_file

__all__ = ["DCGANError", "DCGANGenerator", "dcgan_state_dict", "is_dcgan_file", "load_dcgan"]

Z_DIM = 100
CHANNELS = (512, 256, 128, 64)
KERNEL = 4
NOISE_MODES = ("const", "none", "random")  # accepted for the StyleGAN2 convention; there is no noise to apply


class DCGANError(ModelFileError):
    """A DCGAN weights file that does not hold the expected network (keys or shapes differ)."""


class _UpBlock(nn.Module):
    """Transposed convolution 4x4 stride 2 (doubles the size), batch norm, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, KERNEL, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class DCGANSynthesis(nn.Module):
    """z [N, z_dim, 1, 1] to images [N, 3, 64, 64] in [-1, 1]."""

    def __init__(self, z_dim: int = Z_DIM, channels: Sequence[int] = CHANNELS, img_channels: int = 3) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        self.z_dim, self.channels, self.img_channels = int(z_dim), channels, int(img_channels)
        self.stem = nn.ConvTranspose2d(z_dim, channels[0], KERNEL, stride=1, padding=0, bias=False)  # 1 -> 4
        self.stem_norm = nn.BatchNorm2d(channels[0])
        self.blocks = nn.ModuleList(_UpBlock(a, b) for a, b in zip(channels[:-1], channels[1:]))
        self.to_rgb = nn.ConvTranspose2d(channels[-1], img_channels, KERNEL, stride=2, padding=1, bias=False)
        self.img_resolution = 4 * 2 ** len(channels)

    def feature_sizes(self) -> Tuple[Tuple[int, int], ...]:
        """(channels, resolution) of every feature map, input to output."""
        res = [4 * 2**i for i in range(len(self.channels))]
        return tuple(zip(self.channels, res)) + ((self.img_channels, self.img_resolution),)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", impl: Optional[str] = None) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        z = ws[:, 0] if ws.ndim == 3 else ws  # [N, 1, z_dim] (StyleGAN2's ws with one layer) or [N, z_dim]
        if z.ndim == 4:
            z = z.flatten(1)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(
                f"the DCGAN takes latents [N, {self.z_dim}] (or [N, 1, {self.z_dim}]), got {list(ws.shape)}"
            )
        x = torch.relu(self.stem_norm(self.stem(z[:, :, None, None])))
        for block in self.blocks:
            x = block(x)
        return torch.tanh(self.to_rgb(x))


class DCGANMapping(nn.Module):
    """The identity of z, shaped like StyleGAN2's mapping output ([N, num_ws=1, z_dim]), with truncation towards the
    zero mean latent (``psi z``)."""

    def __init__(self, z_dim: int = Z_DIM) -> None:
        super().__init__()
        self.z_dim = self.w_dim = int(z_dim)
        self.num_ws = 1
        self.register_buffer("w_avg", torch.zeros(z_dim))  # the prior's mean: z ~ N(0, I)

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        impl: Optional[str] = None,
    ) -> torch.Tensor:
        if z.ndim == 4:
            z = z.flatten(1)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}] or [N, {self.z_dim}, 1, 1], got {list(z.shape)}")
        w = z.float()
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w.unsqueeze(1)


class DCGANGenerator(nn.Module):
    """The DCGAN generator with StyleGAN2's attributes (``z_dim``, ``w_dim``, ``c_dim`` 0, ``num_ws`` 1,
    ``img_resolution``, ``img_channels``, ``mapping``, ``synthesis``); ``forward(z)`` = images."""

    family = "dcgan"

    def __init__(self, z_dim: int = Z_DIM, channels: Sequence[int] = CHANNELS, img_channels: int = 3) -> None:
        super().__init__()
        self.mapping = DCGANMapping(z_dim)
        self.synthesis = DCGANSynthesis(z_dim, channels, img_channels)
        self.z_dim = self.w_dim = int(z_dim)
        self.c_dim = 0
        self.num_ws = 1
        self.img_resolution = self.synthesis.img_resolution
        self.img_channels = int(img_channels)
        self.config = {"z_dim": self.z_dim, "channels": list(self.synthesis.channels), "img_channels": img_channels}

    def forward(
        self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0, **_
    ) -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi))


def _tutorial_layout(n_convs: int) -> Dict[int, str]:
    """Index in the tutorial's ``nn.Sequential`` (conv, bn, relu per stage; conv, tanh last) -> our module name."""
    names = {0: "synthesis.stem", 1: "synthesis.stem_norm"}
    for b in range(n_convs - 2):
        names[3 * (b + 1)] = f"synthesis.blocks.{b}.conv"
        names[3 * (b + 1) + 1] = f"synthesis.blocks.{b}.norm"
    names[3 * (n_convs - 1)] = "synthesis.to_rgb"
    return names


def dcgan_state_dict(
    tutorial: Dict[str, torch.Tensor], source: str = "state dict"
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(our state dict, constructor config) from a tutorial-layout ``netG`` state dict (``main.<i>.<name>``; a
    ``module.`` prefix from DataParallel is accepted). Raises ``DCGANError`` naming what does not fit."""
    if not isinstance(tutorial, dict) or not all(isinstance(v, torch.Tensor) for v in tutorial.values()):
        raise DCGANError(f"{source}: the generator state dict is missing or holds non-tensors")
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in tutorial.items()}
    conv_ids = sorted(int(k.split(".")[1]) for k, v in sd.items()
                      if k.startswith("main.") and k.endswith(".weight") and v.ndim == 4)  # fmt: skip
    if len(conv_ids) < 2 or conv_ids != [3 * i for i in range(len(conv_ids))]:
        raise DCGANError(f"{source}: not a tutorial-layout DCGAN generator (transposed convolutions at {conv_ids})")
    first = sd[f"main.{conv_ids[0]}.weight"]
    z_dim = int(first.shape[0])
    channels = [int(sd[f"main.{i}.weight"].shape[1]) for i in conv_ids[:-1]]
    img_channels = int(sd[f"main.{conv_ids[-1]}.weight"].shape[1])
    names = _tutorial_layout(len(conv_ids))
    out: Dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in sd.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "main" or not parts[1].isdigit() or int(parts[1]) not in names:
            unexpected.append(key)
            continue
        out[f"{names[int(parts[1])]}.{parts[2]}"] = value
    if unexpected:
        raise DCGANError(f"{source}: unexpected tensors for a DCGAN generator: {', '.join(unexpected[:8])}")
    return out, {"z_dim": z_dim, "channels": channels, "img_channels": img_channels}


def _build(sd: Dict[str, torch.Tensor], config: dict, source: str) -> DCGANGenerator:
    if config["img_channels"] != 3:
        raise DCGANError(f"{source}: the generator makes {config['img_channels']}-channel images, not RGB")
    with torch.device("meta"):  # shapes only: every tensor comes from the file
        G = DCGANGenerator(**config)
    expected = G.state_dict()
    sd = dict(sd)
    sd.setdefault("mapping.w_avg", torch.zeros(config["z_dim"]))
    for key in expected:  # counters only matter for training; older saves lack them
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = torch.zeros((), dtype=torch.int64)
    missing = [k for k in expected if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} != {list(v.shape)}" for k, v in expected.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or wrong:
        parts = [
            f"{t} ({len(ks)}): {', '.join(ks[:6])}" for t, ks in (("missing", missing), ("wrong shape", wrong)) if ks
        ]
        raise DCGANError(f"{source}: tensors do not fit the DCGAN; {'; '.join(parts)}")
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    G.load_state_dict(sd, strict=True, assign=True)
    return G.eval().requires_grad_(False)


def is_dcgan_file(obj: object) -> bool:
    """Whether an object read from a torch file is a DCGAN generator checkpoint (``netG_state_dict`` inside)."""
    return isinstance(obj, dict) and "netG_state_dict" in obj


def load_dcgan(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> DCGANGenerator:
    """A frozen, eval-mode ``DCGANGenerator`` from a torch file holding ``{"netG_state_dict": ...}``."""
    path = Path(path)
    obj = load_torch_file(path)
    if not is_dcgan_file(obj):
        found = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, dict) else type(obj).__name__
        raise DCGANError(f"{path}: not a DCGAN generator checkpoint (no 'netG_state_dict'; found {found})")
    return from_checkpoint(obj, str(path)).to(device)


def from_checkpoint(obj: dict, source: str = "checkpoint") -> DCGANGenerator:
    """The generator of an already read DCGAN checkpoint dict."""
    sd, config = dcgan_state_dict(obj["netG_state_dict"], source)
    return _build(sd, config, source)
