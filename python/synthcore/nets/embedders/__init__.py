"""Face-recognition embedders: insightface iResNet, AdaFace IR, face.evoLVe IR / IR-SE.

``load_embedder(path)`` recognises a checkpoint's family and depth from its keys and returns an ``Embedder``
that takes RGB images in [-1, 1] (synthcore's convention) and applies the family's own input convention.
"""

from synthcore.nets.embedders.archs import ARCHS, ArchSpec, get_arch
from synthcore.nets.embedders.checkpoint import unwrap_state_dict
from synthcore.nets.embedders.detect import CheckpointError, detect_arch
from synthcore.nets.embedders.embedder import Embedder, build_backbone, build_embedder
from synthcore.nets.embedders.loading import embedder_from_state_dict, load_embedder

__all__ = [
    "ARCHS",
    "ArchSpec",
    "CheckpointError",
    "Embedder",
    "build_backbone",
    "build_embedder",
    "detect_arch",
    "embedder_from_state_dict",
    "get_arch",
    "load_embedder",
    "unwrap_state_dict",
]
