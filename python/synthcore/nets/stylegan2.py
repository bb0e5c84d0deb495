"""The StyleGAN2(-ADA) generator: mapping network and synthesis network, built on ``synthcore.ops``.

Written from the layer maths in ``../shared/testdata/stylegan2/README.md`` section 7. Module, parameter and
buffer names match the official networks (``mapping.fc0.weight``, ``synthesis.b8.conv0.affine.bias``,
``synthesis.b4.const``, ...), so a state dict carries the official names and snapshots map onto these classes
one to one. Every layer takes ``impl`` (None, "native" or "reference"), passed to the ops; ``set_impl`` sets a
default once on a whole network.

Precision: blocks flagged ``use_fp16`` run in float16 on CUDA (the running image stays float32); on CPU
everything runs in float32 unless ``force_fp32=False`` is passed explicitly (CPU half arithmetic, for tests).
"""

import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from synthcore import ops
from synthcore.ops._backend import native_unavailable_reason

__all__ = [
    "Conv2dLayer",
    "FullyConnectedLayer",
    "Generator",
    "MappingNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "normalize_2nd_moment",
    "truncate_ws",
    "NOISE_MODES",
    "ARCHITECTURES",
]

NOISE_MODES = ("const", "random", "none")
ARCHITECTURES = ("orig", "skip", "resnet")
DEFAULT_FILTER = (1, 3, 3, 1)

# With the native ops on CPU, blocks from this resolution up run their features channels_last: oneDNN's
# convolutions at 64-128 channels run up to 2x faster in that layout, and at 512 channels (8-32 px) no faster
# (benchmarks/RESULTS.md, "channels-last generator"). Results are the same up to float rounding.
CPU_CHANNELS_LAST_MIN_RES = 64

# Keyword arguments of the official classes that only choose an execution strategy (memory layout, which
# modulated-convolution path runs); they are accepted and kept in the config but do not change the result.
_STRATEGY_KWARGS = ("fp16_channels_last", "fused_modconv_default")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class _Layer(nn.Module):
    """Shared plumbing: a default ``impl``, seeded initialisation, and the attributes a snapshot stores.

    ``STRUCT_ATTRS`` describe the structure and must agree with a snapshot's; ``VALUE_ATTRS`` are numbers the
    snapshot stores (gains, clamps) and that loading copies over ours, so a file is reproduced exactly.
    """

    STRUCT_ATTRS: Tuple[str, ...] = ()
    VALUE_ATTRS: Tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.impl: Optional[str] = None

    def _impl(self, impl: Optional[str]) -> Optional[str]:
        return self.impl if impl is None else impl

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        """Draw this module's own tensors (not its children's) as the official initialisation does."""


def _randn(t: torch.Tensor, gen: Optional[torch.Generator], scale: float = 1.0) -> None:
    if t.is_meta:
        return
    with torch.no_grad():
        t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32) * scale)


def _fill(t: torch.Tensor, value: float) -> None:
    if not t.is_meta:
        with torch.no_grad():
            t.fill_(value)


def _filter_buffer(resample_filter: Sequence[float]) -> torch.Tensor:
    # Computed on the CPU, then placed on the factory default device (meta while a file's weights are loaded).
    default = torch.empty(0).device
    with torch.device("cpu"):
        f = ops.setup_filter(list(resample_filter))
    return f.to(default)


# --- basic layers ---------------------------------------------------------------------------------------------


class FullyConnectedLayer(_Layer):
    """``act(x @ (weight * weight_gain)^T + bias * bias_gain)``, weight_gain = lr_multiplier / sqrt(in)."""

    STRUCT_ATTRS = ("activation",)
    VALUE_ATTRS = ("weight_gain", "bias_gain")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"FullyConnectedLayer: unknown activation {activation!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.activation = activation
        self.lr_multiplier = float(lr_multiplier)
        self.bias_init = float(bias_init)
        self.weight = nn.Parameter(torch.empty([out_features, in_features]))
        self.bias = nn.Parameter(torch.empty([out_features])) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features) if in_features else 1.0
        self.bias_gain = float(lr_multiplier)

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        _randn(self.weight, gen, 1.0 / self.lr_multiplier)
        if self.bias is not None:
            _fill(self.bias, self.bias_init)

    def forward(self, x: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None
        if self.bias is not None:
            b = self.bias.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation, impl=self._impl(impl))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


class Conv2dLayer(_Layer):
    """Convolution with optional 2x FIR up/downsampling, bias, activation and clamp (resnet skips, D layers)."""

    STRUCT_ATTRS = ("activation", "up", "down", "padding")
    VALUE_ATTRS = ("conv_clamp", "weight_gain", "act_gain")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"Conv2dLayer: unknown activation {activation!r}")
        self.activation, self.up, self.down = activation, int(up), int(down)
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", _filter_buffer(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ops.ACTIVATIONS[activation].def_gain
        weight = torch.empty([out_channels, in_channels, kernel_size, kernel_size])
        b = torch.empty([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", b)

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        _randn(self.weight, gen)
        if self.bias is not None:
            _fill(self.bias, 0.0)

    def forward(self, x: torch.Tensor, gain: float = 1.0, impl: Optional[str] = None) -> torch.Tensor:
        impl = self._impl(impl)
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = ops.conv2d_resample(
            x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding,
            flip_weight=(self.up == 1), impl=impl,
        )  # fmt: skip
        b = None if self.bias is None else self.bias.to(x.dtype)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp, impl=impl)


# --- mapping network ------------------------------------------------------------------------------------------


class MappingNetwork(_Layer):
    """z (and the class label c) to w, broadcast to ``num_ws`` copies, with ``w_avg`` tracking and truncation."""

    STRUCT_ATTRS = ("z_dim", "c_dim", "w_dim", "num_ws", "num_layers")
    VALUE_ATTRS = ("w_avg_beta",)

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: Optional[int],
        num_layers: int = 8,
        embed_features: Optional[int] = None,
        layer_features: Optional[int] = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = 0.995,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MappingNetwork: num_layers must be >= 1, got {num_layers}")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        widths = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            fc = FullyConnectedLayer(widths[i], widths[i + 1], activation=activation, lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", fc)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        if hasattr(self, "w_avg"):
            _fill(self.w_avg, 0.0)

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor] = None,
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        impl: Optional[str] = None,
    ) -> torch.Tensor:
        """ws ``[N, num_ws, w_dim]`` (or w ``[N, w_dim]`` when ``num_ws`` is None)."""
        impl = self._impl(impl)
        parts = []
        if self.z_dim > 0:
            _check_input("z", z, self.z_dim)
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={self.c_dim}): pass labels c [N, {self.c_dim}]")
            _check_input("c", c, self.c_dim)
            if parts and c.shape[0] != parts[0].shape[0]:
                raise ValueError(f"z has {parts[0].shape[0]} rows but c has {c.shape[0]}")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32), impl=impl)))
        if not parts:
            raise ValueError("MappingNetwork with z_dim=0 and c_dim=0 has no input")
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x, impl=impl)

        if update_emas and hasattr(self, "w_avg"):
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        if truncation_psi != 1 and not hasattr(self, "w_avg"):
            raise ValueError("truncation needs w_avg, which this mapping network does not track")
        w_avg = getattr(self, "w_avg", None)
        return truncate_ws(x, w_avg, self.num_ws, truncation_psi, truncation_cutoff)


def truncate_ws(
    w: torch.Tensor, w_avg: Optional[torch.Tensor], num_ws: int, psi: float = 1, cutoff: Optional[int] = None
) -> torch.Tensor:
    """Broadcast w [N, w_dim] to ws [N, num_ws, w_dim] and truncate: ``w_avg + psi (w - w_avg)`` for the first
    ``cutoff`` ws (all when None)."""
    ws = w.unsqueeze(1).repeat(1, num_ws, 1)
    if psi == 1:
        return ws
    k = num_ws if cutoff is None else max(0, min(int(cutoff), num_ws))
    avg = w_avg.to(ws.dtype)
    head = avg + psi * (ws[:, :k] - avg)
    return torch.cat([head, ws[:, k:]], dim=1) if k < num_ws else head


def _check_input(name: str, t: Any, dim: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor [N, {dim}], got {type(t).__name__}")
    if t.ndim != 2 or t.shape[1] != dim:
        raise ValueError(f"{name} must have shape [N, {dim}], got {list(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


# --- synthesis network ----------------------------------------------------------------------------------------


class SynthesisLayer(_Layer):
    """Modulated 3x3 convolution (optionally 2x up), noise, bias, leaky ReLU, gain and clamp."""

    STRUCT_ATTRS = ("resolution", "up", "use_noise", "activation", "padding")
    VALUE_ATTRS = ("conv_clamp", "act_gain")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise, self.activation = resolution, up, use_noise, activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", _filter_buffer(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ops.ACTIVATIONS[activation].def_gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.empty([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.empty([]))
        self.bias = nn.Parameter(torch.empty([out_channels]))

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        _randn(self.weight, gen)
        if self.use_noise:
            _randn(self.noise_const, gen)
            _fill(self.noise_strength, 0.0)
        _fill(self.bias, 0.0)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0, impl: Optional[str] = None
    ) -> torch.Tensor:
        impl = self._impl(impl)
        styles = self.affine(w, impl=impl)
        noise = None
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        elif self.use_noise and noise_mode == "random":
            n, r = x.shape[0], self.resolution
            noise = torch.randn([n, 1, r, r], device=x.device, dtype=torch.float32) * self.noise_strength
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return ops.modconv(
            x, self.weight, styles, noise=noise, bias=self.bias.to(x.dtype), up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, demodulate=True, flip_weight=(self.up == 1), act=self.activation,
            gain=self.act_gain * gain, clamp=clamp, impl=impl,
        )  # fmt: skip


class ToRGBLayer(_Layer):
    """Modulated 1x1 convolution without demodulation, plus bias and clamp: features to image channels."""

    VALUE_ATTRS = ("conv_clamp", "weight_gain")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.empty([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.empty([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        _randn(self.weight, gen)
        _fill(self.bias, 0.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
        impl = self._impl(impl)
        styles = self.affine(w, impl=impl) * self.weight_gain
        return ops.modconv(
            x, self.weight, styles, bias=self.bias.to(x.dtype), demodulate=False, clamp=self.conv_clamp, impl=impl
        )


class SynthesisBlock(_Layer):
    """One resolution of the synthesis network: (const or upsampling conv0) + conv1, then ToRGB / skip."""

    STRUCT_ATTRS = ("in_channels", "w_dim", "resolution", "img_channels", "is_last", "architecture", "use_fp16",
                    "num_conv", "num_torgb")  # fmt: skip

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        use_noise: bool = True,
        fused_modconv_default: Any = True,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(ARCHITECTURES)}")
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.num_conv = 0
        self.num_torgb = 0
        self.register_buffer("resample_filter", _filter_buffer(resample_filter))
        layer_kwargs = dict(resample_filter=resample_filter, conv_clamp=conv_clamp, use_noise=use_noise)
        if in_channels == 0:
            self.const = nn.Parameter(torch.empty([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)  # fmt: skip

    def init_tensors(self, gen: Optional[torch.Generator]) -> None:
        if self.in_channels == 0:
            _randn(self.const, gen)

    def _runs_channels_last(self, x: torch.Tensor, dtype: torch.dtype, impl: Optional[str]) -> bool:
        """Whether this block's features run channels_last: with the native ops on CPU from
        ``CPU_CHANNELS_LAST_MIN_RES`` up, where oneDNN's convolutions are faster in that layout (the native
        kernels follow the layout; the reference ops and CUDA keep NCHW)."""
        if x.device.type != "cpu" or self.resolution < CPU_CHANNELS_LAST_MIN_RES or impl == "reference":
            return False
        return native_unavailable_reason(x.device, dtype) is None

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        noise_mode: str = "const",
        fp16: bool = False,
        impl: Optional[str] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``ws``: [N, num_conv + num_torgb, w_dim]; returns (features, running image float32)."""
        impl = self._impl(impl)
        dtype = torch.float16 if (self.use_fp16 and fp16) else torch.float32
        if x is not None and self._runs_channels_last(x, dtype, impl):
            x = x.contiguous(memory_format=torch.channels_last)
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, impl=impl)
        elif self.architecture == "resnet":
            y = self.skip(x.to(dtype), gain=math.sqrt(0.5), impl=impl)
            x = self.conv0(x.to(dtype), next(w_iter), noise_mode=noise_mode, impl=impl)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, gain=math.sqrt(0.5), impl=impl)
            x = y + x
        else:
            x = self.conv0(x.to(dtype), next(w_iter), noise_mode=noise_mode, impl=impl)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, impl=impl)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter, impl=impl)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), impl=impl).to(torch.float32)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(_Layer):
    """ws ``[N, num_ws, w_dim]`` to images ``[N, img_channels, R, R]`` through blocks at 4, 8, ..., R."""

    STRUCT_ATTRS = ("w_dim", "img_resolution", "img_resolution_log2", "img_channels", "block_resolutions", "num_ws")

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution)) if img_resolution >= 4 else 0
        if img_resolution < 4 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = log2
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        if min(channels.values()) < 1:
            raise ValueError(f"channel_base={channel_base} leaves no channels at resolution {img_resolution}")
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                img_channels=img_channels, is_last=(res == img_resolution), use_fp16=(res >= fp16_resolution),
                **block_kwargs,
            )  # fmt: skip
            self.num_ws += block.num_conv
            if block.is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self) -> Iterator[SynthesisBlock]:
        for res in self.block_resolutions:
            yield getattr(self, f"b{res}")

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        impl: Optional[str] = None,
        force_fp32: Optional[bool] = None,
    ) -> torch.Tensor:
        """Images [N, C, R, R] float32. ``force_fp32``: None runs fp16 blocks in float16 on CUDA only; True never;
        False wherever flagged (also on CPU)."""
        impl = self._impl(impl)
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        if not isinstance(ws, torch.Tensor) or ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            got = list(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {got}")
        fp16 = (ws.device.type == "cuda") if force_fp32 is None else not force_fp32
        ws = ws.to(torch.float32)
        x = img = None
        k = 0
        for block in self.blocks():
            x, img = block(x, img, ws.narrow(1, k, block.num_conv + block.num_torgb), noise_mode, fp16, impl)
            k += block.num_conv
        return img


class Generator(_Layer):
    """The StyleGAN2-ADA generator: ``G(z, c) = synthesis(mapping(z, c))``.

    Args mirror the official constructor: ``mapping_kwargs`` (num_layers, embed_features, layer_features,
    activation, lr_multiplier, w_avg_beta) and synthesis keyword arguments (channel_base, channel_max,
    num_fp16_res, conv_clamp, architecture, resample_filter, use_noise), given in ``synthesis_kwargs`` or flat.
    ``seed``: the random initialisation (an int for a reproducible one, None for torch's global generator);
    ``init=False`` leaves the tensors uninitialised (for loading weights into).
    """

    STRUCT_ATTRS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws")

    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        mapping_kwargs: Optional[Dict[str, Any]] = None,
        synthesis_kwargs: Optional[Dict[str, Any]] = None,
        seed: Optional[int] = 0,
        init: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        both = sorted(set(kwargs) & set(synthesis_kwargs))
        if both:
            raise ValueError(f"Generator: {', '.join(both)} given both flat and in synthesis_kwargs")
        synthesis_kwargs.update(kwargs)
        _check_kwargs("mapping_kwargs", mapping_kwargs, _MAPPING_KWARGS)
        _check_kwargs("synthesis kwargs", synthesis_kwargs, _SYNTHESIS_KWARGS)
        for name, v in (("z_dim", z_dim), ("c_dim", c_dim), ("w_dim", w_dim), ("img_channels", img_channels)):
            if not isinstance(v, int) or v < 0 or (v == 0 and name in ("w_dim", "img_channels")):
                raise ValueError(f"Generator: bad {name}={v!r}")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.config = {
            "z_dim": z_dim, "c_dim": c_dim, "w_dim": w_dim, "img_resolution": img_resolution,
            "img_channels": img_channels, "mapping_kwargs": mapping_kwargs, "synthesis_kwargs": synthesis_kwargs,
        }  # fmt: skip
        block_kwargs = {k: v for k, v in synthesis_kwargs.items() if k != "fused_modconv_default"}
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **block_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mapping_kwargs)
        if init:
            self.reset_parameters(seed)

    def reset_parameters(self, seed: Optional[int] = 0) -> None:
        """Random initialisation as in the official networks, drawn in module order from ``seed``."""
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        for m in self.modules():
            if isinstance(m, _Layer):
                m.init_tensors(gen)

    def set_impl(self, impl: Optional[str]) -> "Generator":
        """Default ``impl`` for every layer (None: native where available; "native"; "reference")."""
        if impl not in (None, "native", "reference"):
            raise ValueError(f"impl must be None, 'native' or 'reference', got {impl!r}")
        for m in self.modules():
            if isinstance(m, _Layer):
                m.impl = impl
        return self

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        noise_mode: str = "const",
        impl: Optional[str] = None,
        update_emas: bool = False,
        force_fp32: Optional[bool] = None,
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas, impl=impl)
        return self.synthesis(ws, noise_mode=noise_mode, impl=impl, force_fp32=force_fp32)

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
            f"img_resolution={self.img_resolution}, img_channels={self.img_channels}"
        )


_MAPPING_KWARGS = ("num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta")
_SYNTHESIS_KWARGS = ("channel_base", "channel_max", "num_fp16_res", "conv_clamp", "architecture", "resample_filter",
                     "use_noise") + _STRATEGY_KWARGS  # fmt: skip


def _check_kwargs(what: str, kwargs: Dict[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(f"Generator: unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")


def value_attributes(module: nn.Module) -> Dict[str, Dict[str, Any]]:
    """``{module path: {attr: value}}`` of every stored numeric attribute (gains, clamps), for saving."""
    out: Dict[str, Dict[str, Any]] = {}
    for path, m in module.named_modules():
        if isinstance(m, _Layer) and m.VALUE_ATTRS:
            out[path] = {a: getattr(m, a) for a in m.VALUE_ATTRS}
    return out


def apply_value_attributes(module: nn.Module, values: Dict[str, Dict[str, Any]]) -> None:
    """Set stored numeric attributes back (the inverse of :func:`value_attributes`)."""
    mods = dict(module.named_modules())
    for path, attrs in values.items():
        m = mods.get(path)
        if not isinstance(m, _Layer):
            raise ValueError(f"stored attributes for {path!r}, which is not a layer of this network")
        for name, v in attrs.items():
            if name not in m.VALUE_ATTRS:
                raise ValueError(f"stored attribute {path}.{name} is not one synthcore restores")
            if v is not None and not isinstance(v, (int, float)):
                raise ValueError(f"stored attribute {path}.{name} must be a number or None, got {v!r}")
            setattr(m, name, v)


def layer_classes() -> List[type]:
    return [FullyConnectedLayer, Conv2dLayer, MappingNetwork, SynthesisLayer, ToRGBLayer, SynthesisBlock,
            SynthesisNetwork, Generator]  # fmt: skip
