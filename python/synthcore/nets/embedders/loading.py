"""``load_embedder``: a ready-to-use ``Embedder`` from a checkpoint file or state dict."""

from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from synthcore.nets.embedders.archs import ArchSpec, get_arch
from synthcore.nets.embedders.checkpoint import unwrap_state_dict
from synthcore.nets.embedders.detect import CheckpointError, detect_arch
from synthcore.nets.embedders.embedder import Embedder, build_backbone
from synthcore.nets.model_files import ModelFileError, read_model_file

# dlib's face-recognition ResNet: a registered model name or its ``.dat`` file (see synthcore.nets.dlib).
DLIB_EMBEDDER_NAMES = ("dlib-resnet-v1",)

_LIST = 8  # keys shown per category in an error message


def _listing(title: str, keys: List[str]) -> str:
    more = f" (+{len(keys) - _LIST} more)" if len(keys) > _LIST else ""
    return f"{title} ({len(keys)}): {', '.join(keys[:_LIST])}{more}"


def _check_keys(model: nn.Module, sd: Dict[str, torch.Tensor], spec: ArchSpec, source: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [f"{k} {list(sd[k].shape)} != {list(s)}" for k, s in expected.items() if k in sd and sd[k].shape != s]
    if missing or unexpected or mismatched:
        parts = [f"{source}: does not fit {spec.name}"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(_listing(title, keys))
        raise CheckpointError("; ".join(parts))


def _resolve_arch(sd: Dict[str, torch.Tensor], arch: Optional[str], source: str) -> Tuple[ArchSpec, int]:
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    if arch is None:
        try:
            return detect_arch(shapes)
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc}") from None
    spec = get_arch(arch)
    try:
        found, size = detect_arch(shapes)
    except CheckpointError:
        return spec, 512  # let the key check say what does not fit
    if found != spec:
        raise CheckpointError(f"{source}: arch={spec.name} was requested but the checkpoint holds {found.name}")
    return spec, size


def embedder_from_state_dict(
    state_dict: Dict[str, torch.Tensor],
    arch: Optional[str] = None,
    channel_order: Optional[str] = None,
    source: str = "state dict",
    memory_format: torch.memory_format = torch.channels_last,
) -> Embedder:
    """An eval-mode, frozen Embedder holding ``state_dict`` (already unwrapped; see ``unwrap_state_dict``).

    Convolution weights are stored channels_last by default: oneDNN runs these networks about 1.5x faster
    forward and 1.2x faster forward+backward that way on CPU (benchmarks/RESULTS.md); inputs need no change.
    """
    spec, size = _resolve_arch(state_dict, arch, source)
    with torch.device("meta"):
        backbone = build_backbone(spec, size)  # no random init: every tensor comes from the checkpoint
    # Releases trained in mixed precision may store half tensors; the networks run in float32.
    sd = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    for key in backbone.state_dict():
        # PyTorch < 0.4.1 did not save these counters; they only matter for training.
        if key.endswith("num_batches_tracked") and key not in sd:
            sd[key] = torch.zeros((), dtype=torch.int64)
    _check_keys(backbone, sd, spec, source)
    backbone.load_state_dict(sd, strict=True, assign=True)
    embedder = Embedder(backbone, spec, channel_order).eval().requires_grad_(False)
    return embedder.to(memory_format=memory_format)


def load_embedder(
    path: Union[str, Path],
    arch: Optional[str] = None,
    channel_order: Optional[str] = None,
    device: Union[str, torch.device] = "cpu",
    memory_format: torch.memory_format = torch.channels_last,
) -> nn.Module:
    """Load a face-recognition checkpoint as an ``Embedder`` (eval mode, parameters frozen).

    ``path``: insightface ``backbone.pth``, AdaFace Lightning ``.ckpt``, face.evoLVe / TreB1eN ``.pth``, or a
    ``.safetensors`` file. The family and depth are detected from the keys; ``arch`` (e.g. ``"iresnet100"``)
    asserts them instead. ``channel_order`` overrides the family's default (e.g. ``"BGR"`` for TreB1eN's
    ``model_ir_se50.pth``, which shares evoLVe's keys but was trained on BGR). ``memory_format``: see
    ``embedder_from_state_dict``. Raises ``CheckpointError`` (a ``ValueError``) naming what is wrong when the
    file does not fit.

    ``"dlib-resnet-v1"`` or a dlib ``.dat`` file gives ``synthcore.nets.dlib.DlibResNet`` instead (150x150 chips,
    128-d descriptors, ``metric = "euclidean"``, ``threshold = 0.6``); ``arch`` and ``channel_order`` do not apply.
    """
    if str(path) in DLIB_EMBEDDER_NAMES or str(path).lower().endswith(".dat"):
        from synthcore.nets.dlib import dlib_model_file, load_dlib_resnet  # late: keeps dlib out of plain imports

        return load_dlib_resnet(dlib_model_file(path), device, memory_format)
    try:
        obj = read_model_file(path)
    except ModelFileError as exc:
        raise CheckpointError(str(exc)) from None
    sd, _heads = unwrap_state_dict(obj, source=str(path))
    return embedder_from_state_dict(sd, arch, channel_order, str(path), memory_format).to(device)
