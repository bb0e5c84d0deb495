"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as a differentiable torch module.

The file is read with ``serialize.DlibReader`` (nothing in it is executed) into the layer stack it lays out:

* the loss layer first (``loss_metric_2``: margin and same-person distance threshold);
* one version header per layer, outermost inward: 2 for a computational layer, 1 for a tag or skip layer (their
  tag numbers are template parameters and are not stored), 3 for the innermost layer over the input;
* then the bodies, innermost outward: the input layer's details (``input_rgb_image_sized``: channel means, size),
  then for each computational layer its details, three flags and three (empty) training tensors; the innermost
  body also ends with its sample-expansion factor.

Tags, skips and ``add_prev`` are resolved by position, which is how dlib's residual blocks nest them: a lone tag
saves its input; a tag directly followed by a skip saves the block's output and the skip resumes from the tag saved
before it (the down-sampling shortcut); ``add_prev`` adds the most recently saved tensor. dlib's addition of two
tensors of different sizes zero-pads the smaller one (top-left aligned) to the larger in channels, rows and columns.

Each ``affine_`` (folded batch norm) that follows a convolution is folded into that convolution's weights and bias,
so the network runs as 29 ``nn.Conv2d`` + ReLU + pools + one ``nn.Linear``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthcore.nets.dlib.serialize import DlibFormatError, DlibReader
from synthcore.nets.embedders.archs import ArchSpec

__all__ = [
    "DlibLayer",
    "DlibNetwork",
    "DlibResNet",
    "load_dlib_resnet",
    "read_dlib_network",
    "read_layer_stack",
]

INPUT_SIZE = 150
EMBEDDING_SIZE = 128


@dataclass
class DlibLayer:
    """One layer of a dlib network as stored: ``kind`` is the file's layer name (``con_4``, ``affine_``, ``tag``,
    ``skip``, ...); ``fields`` its hyper-parameters; ``tensors`` its weights as float32 numpy arrays."""

    kind: str
    fields: Dict[str, Any] = field(default_factory=dict)
    tensors: Dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A parsed dlib network: the loss layer's name and fields, the input layer, and the layers from the input
    outward (``layers[0]`` consumes the input layer's output)."""

    loss: str
    loss_fields: Dict[str, Any]
    input: DlibLayer
    layers: List[DlibLayer]
    source: str


# -- layer bodies ---------------------------------------------------------------------------------------------


def _alias(r: DlibReader, what: str) -> tuple:
    """An alias tensor's shape (a view into the layer's parameter tensor; the file stores only its shape)."""
    r.expect_int(1, f"{what} alias version")
    return tuple(r.read_uint(f"{what} dimension", 1 << 31) for _ in range(4))


def _slices(r: DlibReader, params: np.ndarray, shapes: Dict[str, tuple], start: int, kind: str) -> Dict[str, Any]:
    """Cut ``params`` into consecutive pieces of ``shapes``; the pieces must cover it exactly."""
    flat = params.reshape(-1)
    need = sum(math.prod(s) for s in shapes.values())
    if need != flat.size:
        raise r.error(f"{kind}: parameter tensor holds {flat.size} values but its parts need {need}", start)
    out, at = {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        out[name] = flat[at : at + n].reshape(shape)
        at += n
    return out


def _multipliers(r: DlibReader) -> None:
    for what in ("learning-rate multiplier", "weight-decay multiplier", "bias lr multiplier", "bias decay multiplier"):
        r.read_float(what)  # training-only settings


def _read_con(r: DlibReader, kind: str, start: int) -> DlibLayer:
    params = r.read_tensor(f"{kind} parameters")
    names = ("filters", "rows", "cols", "stride_y", "stride_x", "padding_y", "padding_x")
    f = {n: r.read_uint(f"{kind} {n}", 1 << 20) for n in names}
    wshape, bshape = _alias(r, f"{kind} filters"), _alias(r, f"{kind} biases")
    _multipliers(r)
    f["use_bias"] = r.read_bool(f"{kind} use_bias") if kind == "con_5" else True
    if wshape[0] != f["filters"] or wshape[2:] != (f["rows"], f["cols"]):
        raise r.error(f"{kind}: filter shape {list(wshape)} disagrees with its fields {f}", start)
    if f["stride_y"] < 1 or f["stride_x"] < 1:
        raise r.error(f"{kind}: stride must be at least 1, got {f['stride_y']}x{f['stride_x']}", start)
    shapes = {"weight": wshape}
    if math.prod(bshape):
        shapes["bias"] = (f["filters"],)
    return DlibLayer(kind, f, _slices(r, params, shapes, start, kind))


def _read_affine(r: DlibReader, kind: str, start: int) -> DlibLayer:
    params = r.read_tensor(f"{kind} parameters")
    gshape, bshape = _alias(r, f"{kind} gamma"), _alias(r, f"{kind} beta")
    mode = r.read_uint(f"{kind} mode", 1)
    if gshape != bshape:
        raise r.error(f"{kind}: gamma {list(gshape)} and beta {list(bshape)} differ", start)
    if mode != 0:
        raise r.error(f"{kind}: only per-channel (convolutional) mode is supported, got mode {mode}", start)
    c = math.prod(gshape)
    return DlibLayer(kind, {"mode": mode}, _slices(r, params, {"gamma": (c,), "beta": (c,)}, start, kind))


def _read_pool(r: DlibReader, kind: str, start: int) -> DlibLayer:
    names = ("rows", "cols", "stride_y", "stride_x", "padding_y", "padding_x")
    f = {n: r.read_uint(f"{kind} {n}", 1 << 20) for n in names}
    if f["stride_y"] < 1 or f["stride_x"] < 1:
        raise r.error(f"{kind}: stride must be at least 1", start)
    return DlibLayer(kind, f)


def _read_fc(r: DlibReader, kind: str, start: int) -> DlibLayer:
    outputs, inputs = r.read_uint(f"{kind} outputs", 1 << 24), r.read_uint(f"{kind} inputs", 1 << 24)
    params = r.read_tensor(f"{kind} parameters")
    wshape, bshape = _alias(r, f"{kind} weights"), _alias(r, f"{kind} biases")
    bias_mode = r.read_uint(f"{kind} bias mode", 1)  # 0: with bias, 1: without
    _multipliers(r)
    if wshape[:2] != (inputs, outputs):
        raise r.error(f"{kind}: weight shape {list(wshape)} disagrees with {inputs} inputs, {outputs} outputs", start)
    shapes = {"weight": (inputs, outputs)}
    if bias_mode == 0 and math.prod(bshape):
        shapes["bias"] = (outputs,)
    return DlibLayer(kind, {"outputs": outputs, "inputs": inputs}, _slices(r, params, shapes, start, kind))


def _read_plain(r: DlibReader, kind: str, start: int) -> DlibLayer:
    return DlibLayer(kind)


LAYER_READERS: Dict[str, Callable[[DlibReader, str, int], DlibLayer]] = {
    "con_4": _read_con,
    "con_5": _read_con,
    "affine_": _read_affine,
    "relu_": _read_plain,
    "add_prev_": _read_plain,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "fc_2": _read_fc,
}


def _read_input_sized(r: DlibReader, kind: str, start: int) -> DlibLayer:
    means = [r.read_float(f"{kind} mean") for _ in range(3)]
    rows, cols = r.read_uint(f"{kind} rows", 1 << 16), r.read_uint(f"{kind} cols", 1 << 16)
    return DlibLayer(kind, {"means": means, "rows": rows, "cols": cols})


INPUT_READERS: Dict[str, Callable[[DlibReader, str, int], DlibLayer]] = {"input_rgb_image_sized": _read_input_sized}


def _read_body(r: DlibReader, readers: Dict[str, Callable], role: str) -> DlibLayer:
    start = r.offset
    kind = r.read_string(f"{role} name", max_length=64)
    reader = readers.get(kind)
    if reader is None:
        raise r.error(f"unsupported {role} {kind!r} (supported: {', '.join(sorted(readers))})", start)
    return reader(r, kind, start)


def _training_state(r: DlibReader) -> None:
    """The flags and (empty for a released model) gradient/output tensors every layer ends with."""
    for what in ("setup flag", "stale-gradient flag", "disabled-output flag"):
        r.read_bool(what)
    for what in ("input gradient", "cached output", "parameter gradient"):
        r.read_tensor(what)


def read_layer_stack(
    r: DlibReader,
    input_readers: Dict[str, Callable[[DlibReader, str, int], DlibLayer]] | None = None,
) -> tuple:
    """Read the version headers and layer bodies that follow the loss layer's details.

    Returns ``(input_layer, layers)``, ``layers`` from the input outward. ``input_readers`` maps an input layer's
    name to a function ``(reader, name, start_offset) -> DlibLayer`` reading its details (default: the sized RGB
    input of the face-recognition ResNet); other networks (e.g. the MMOD detector) pass their own.
    """
    headers: List[int] = []
    while True:
        start = r.offset
        version = r.read_int("layer version")
        if version == 3:
            break
        if version not in (1, 2):
            raise r.error(f"bad layer version {version} (expected 1, 2 or 3)", start)
        headers.append(version)
        if len(headers) > r.remaining:
            raise r.error("truncated: layer headers run to the end of the file")
    inp = _read_body(r, input_readers or INPUT_READERS, "input layer")
    layers = [_read_body(r, LAYER_READERS, "layer")]
    _training_state(r)
    r.read_uint("sample expansion factor", 1 << 16)
    for version in reversed(headers):
        if version == 1:
            layers.append(DlibLayer("tag"))  # a tag or a skip: told apart by position in _resolve_tags
            continue
        layers.append(_read_body(r, LAYER_READERS, "layer"))
        _training_state(r)
    return inp, _resolve_tags(layers, r)


def _resolve_tags(layers: List[DlibLayer], r: DlibReader) -> List[DlibLayer]:
    """Runs of version-1 layers: one is a tag; two are a tag and, directly above it, a skip. dlib's residual
    blocks make no other runs, and their tag numbers are not stored, so anything else is refused."""
    i = 0
    while i < len(layers):
        if layers[i].kind != "tag":
            i += 1
            continue
        end = i
        while end < len(layers) and layers[end].kind == "tag":
            end += 1
        if end - i > 2:
            raise r.error(f"{end - i} tag/skip layers in a row: not a residual layout this reader understands")
        if end - i == 2:
            layers[i + 1].kind = "skip"
        i = end
    return layers


def read_dlib_network(path: Union[str, os.PathLike], loss: str = "loss_metric_2") -> DlibNetwork:
    """Parse a dlib metric-learning network file (the face-recognition ResNet) without running anything in it."""
    r = DlibReader.from_file(path)
    r.expect_int(1, "loss layer version")
    start = r.offset
    name = r.read_string("loss layer name", max_length=64)
    if name != loss:
        raise r.error(f"bad loss layer {name!r} (expected {loss!r}): not a dlib face-recognition network", start)
    loss_fields = {"margin": r.read_float("loss margin"), "distance_threshold": r.read_float("distance threshold")}
    inp, layers = read_layer_stack(r)
    r.require_end()
    return DlibNetwork(name, loss_fields, inp, layers, str(path))


# -- the torch network --------------------------------------------------------------------------------------


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum on the larger extent of each dimension, the smaller tensor zero-padded."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet: [N, 3, 150, 150] RGB in [-1, 1] (pixel = (x + 1) * 127.5) -> [N, 128] raw
    descriptors, equal to dlib's ``compute_face_descriptor`` on the same chips (no jitter).

    Same person when the Euclidean distance between descriptors is below ``threshold`` (0.6, from the file's loss
    layer): ``metric = "euclidean"``. Differentiable with respect to the images.
    """

    metric = "euclidean"

    def __init__(self, network: DlibNetwork) -> None:
        super().__init__()
        inp = network.input
        self.source = network.source
        self.input_size = int(inp.fields["rows"])
        if inp.fields["cols"] != self.input_size:
            raise DlibFormatError(f"{network.source}: non-square input {inp.fields['rows']}x{inp.fields['cols']}")
        # Float32 of the stored 0.6 is 0.6000000238; the threshold is the decimal value it was written from.
        self.threshold = round(float(network.loss_fields["distance_threshold"]), 6)
        self.margin = round(float(network.loss_fields["margin"]), 6)
        # (x + 1) * 127.5 - mean) / 256 = x * scale + shift, per RGB channel.
        means = torch.tensor(inp.fields["means"], dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("in_scale", torch.full((1, 3, 1, 1), 127.5 / 256.0))
        self.register_buffer("in_shift", (127.5 - means) / 256.0)
        self.convs = nn.ModuleList()
        self.fcs = nn.ModuleList()
        self.program: List[tuple] = self._compile(network)
        self.embedding_size = int(self.fcs[-1].out_features) if len(self.fcs) else 0
        self._check_shapes(network.source)
        # What the embedder commands report for every family (name, family, channel order).
        self.spec = ArchSpec("dlib-resnet-v1", "dlib", "dlib_resnet", len(self.convs), False, "RGB", 0.0)
        self.channel_order = "RGB"

    def _check_shapes(self, source: str) -> None:
        """Run one blank chip through the stack, so layers that do not fit together fail here, by name."""
        try:
            with torch.no_grad():
                out = self(torch.zeros(1, 3, self.input_size, self.input_size))
        except (RuntimeError, IndexError) as exc:
            raise DlibFormatError(f"{source}: the layers do not fit together ({exc})") from None
        if out.ndim != 2 or not len(self.fcs):
            raise DlibFormatError(f"{source}: the network does not end in a fully connected layer")

    def _compile(self, network: DlibNetwork) -> List[tuple]:
        """Turn the layer list into (op, args) steps, folding each affine layer into the convolution before it."""
        program: List[tuple] = []
        layers = network.layers
        i = 0
        while i < len(layers):
            layer = layers[i]
            kind = layer.kind
            if kind in ("con_4", "con_5"):
                weight = torch.from_numpy(layer.tensors["weight"].copy())
                bias = torch.from_numpy(layer.tensors["bias"].copy()) if "bias" in layer.tensors else None
                if i + 1 < len(layers) and layers[i + 1].kind == "affine_":
                    gamma = torch.from_numpy(layers[i + 1].tensors["gamma"].copy())
                    beta = torch.from_numpy(layers[i + 1].tensors["beta"].copy())
                    if gamma.numel() != weight.shape[0]:
                        raise DlibFormatError(f"{network.source}: affine layer {i + 1} does not fit its convolution")
                    weight = weight * gamma.view(-1, 1, 1, 1)
                    bias = beta if bias is None else bias * gamma + beta
                    i += 1
                f = layer.fields
                conv = nn.Conv2d(
                    weight.shape[1],
                    weight.shape[0],
                    (f["rows"], f["cols"]),
                    stride=(f["stride_y"], f["stride_x"]),
                    padding=(f["padding_y"], f["padding_x"]),
                    bias=bias is not None,
                    device="meta",
                )
                conv.weight = nn.Parameter(weight.contiguous())
                if bias is not None:
                    conv.bias = nn.Parameter(bias.contiguous())
                program.append(("conv", len(self.convs)))
                self.convs.append(conv)
            elif kind == "affine_":
                raise DlibFormatError(f"{network.source}: affine layer {i} not directly after a convolution")
            elif kind == "relu_":
                program.append(("relu", None))
            elif kind in ("max_pool_2", "avg_pool_2"):
                f = layer.fields
                if f["rows"] == 0 and f["cols"] == 0:
                    program.append(("mean", None))  # dlib's avg_pool_everything
                else:
                    args = ((f["rows"], f["cols"]), (f["stride_y"], f["stride_x"]), (f["padding_y"], f["padding_x"]))
                    program.append(("max" if kind == "max_pool_2" else "avg", args))
            elif kind in ("tag", "skip", "add_prev_"):
                program.append((kind, None))
            elif kind == "fc_2":
                w = torch.from_numpy(layer.tensors["weight"].T.copy())
                fc = nn.Linear(w.shape[1], w.shape[0], bias="bias" in layer.tensors, device="meta")
                fc.weight = nn.Parameter(w)
                if "bias" in layer.tensors:
                    fc.bias = nn.Parameter(torch.from_numpy(layer.tensors["bias"].copy()))
                program.append(("fc", len(self.fcs)))
                self.fcs.append(fc)
            else:
                raise DlibFormatError(f"{network.source}: no torch equivalent for layer {kind!r}")
            i += 1
        return program

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        s = self.input_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (s, s):
            raise ValueError(
                f"dlib-resnet-v1 expects [N, 3, {s}, {s}] aligned chips (synthcore.align.dlib_chip), "
                f"got {list(images.shape)}"
            )
        x = images * self.in_scale + self.in_shift
        saved: List[torch.Tensor] = []
        for op, arg in self.program:
            if op == "conv":
                x = self.convs[arg](x)
            elif op == "relu":
                x = F.relu(x)
            elif op == "max":
                x = F.max_pool2d(x, arg[0], arg[1], arg[2])
            elif op == "avg":
                x = F.avg_pool2d(x, arg[0], arg[1], arg[2], count_include_pad=False)
            elif op == "mean":
                x = x.mean(dim=(2, 3), keepdim=True)
            elif op == "tag":
                saved.append(x)
            elif op == "skip":
                x = saved.pop(-2)  # the tag below the one just saved: the block's input
            elif op == "add_prev_":
                x = _add_padded(x, saved.pop())
            elif op == "fc":
                x = self.fcs[arg](x.flatten(1))
        return x

    def extra_repr(self) -> str:
        return f"source={self.source}, metric={self.metric}, threshold={self.threshold}"


def load_dlib_resnet(
    path: Union[str, os.PathLike],
    device: Union[str, torch.device] = "cpu",
    memory_format: torch.memory_format = torch.channels_last,
) -> DlibResNet:
    """Load ``dlib_face_recognition_resnet_model_v1.dat`` as an eval-mode ``DlibResNet`` with frozen parameters.

    Raises ``DlibFormatError`` (a ``ValueError``) naming the file and byte offset when it is not such a network.
    """
    net = DlibResNet(read_dlib_network(Path(path)))
    return net.eval().requires_grad_(False).to(device=device, memory_format=memory_format)
