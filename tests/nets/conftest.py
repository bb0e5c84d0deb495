import functools
import json

import numpy as np
import pytest
import torch

from tests.conftest import shared_dir
from tests.nets.weight_fill import fill

# Reference data set -> the architecture synthcore should detect for it.
REFERENCE_ARCHS = {
    "insightface_iresnet50": "iresnet50",
    "insightface_iresnet100": "iresnet100",
    "adaface_ir50": "adaface_ir50",
    "adaface_ir101": "adaface_ir101",
    "evolve_ir50": "evolve_ir50",
    "evolve_ir_se50": "evolve_ir_se50",
}


def embedders_dir():
    return shared_dir() / "testdata" / "embedders"


@functools.cache
def manifest(name: str) -> dict:
    return json.loads((embedders_dir() / f"{name}.manifest.json").read_text())


@functools.cache
def arrays(name: str) -> dict:
    with np.load(embedders_dir() / f"{name}.npz") as d:
        return {k: d[k] for k in d.files}


def shapes(name: str) -> dict:
    """key -> shape, in the manifest's (state-dict) order."""
    return {k["key"]: tuple(k["shape"]) for k in manifest(name)["keys"]}


@functools.lru_cache(maxsize=1)  # a filled 100-layer model is ~0.26 GB
def filled_state_dict(name: str) -> dict:
    return fill(shapes(name), manifest(name)["recipe"]["seed_offset"])


@pytest.fixture(scope="module", params=sorted(REFERENCE_ARCHS))
def reference_name(request) -> str:
    # Module scope makes pytest run all tests of one reference model together, so each is filled once.
    if not embedders_dir().is_dir():
        raise FileNotFoundError(f"embedder reference data not found at {embedders_dir()}")
    return request.param


@functools.lru_cache(maxsize=1)
def small_state_dict(arch: str = "iresnet18") -> dict:
    """Recipe-filled weights for a small architecture, for tests that need a working network, not a reference."""
    from synthcore.nets.embedders import build_backbone, get_arch

    with torch.device("meta"):
        net = build_backbone(get_arch(arch))
    return fill({k: tuple(v.shape) for k, v in net.state_dict().items()})


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).abs().max() / ref.abs().max()).item()
