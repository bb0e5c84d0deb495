"""Access to the shared StyleGAN2 reference data (../shared/testdata/stylegan2)."""

import functools
import json
from pathlib import Path

import numpy as np
import torch

from tests.conftest import shared_dir

MODELS = ("sg2ada_r16_orig_gray", "sg2ada_r32_uncond_fp16", "sg2ada_r64_cond4")


def sg2_dir() -> Path:
    d = shared_dir() / "testdata" / "stylegan2"
    if not d.is_dir():
        raise FileNotFoundError(f"StyleGAN2 reference data not found at {d}; set SYNTHCORE_SHARED")
    return d


def pkl(name: str) -> Path:
    return sg2_dir() / f"{name}.pkl"


@functools.cache
def arrays(name: str) -> dict:
    with np.load(sg2_dir() / f"{name}.npz") as d:
        return {k: d[k] for k in d.files}


@functools.cache
def layout(name: str) -> dict:
    return json.loads((sg2_dir() / f"{name}.layout.json").read_text())


@functools.cache
def generator(name: str, key: str = "G_ema"):
    from synthcore.nets.generator_files import load_generator

    return load_generator(pkl(name), key=key)


def assert_close(out: torch.Tensor, ref, what: str, atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """The README's suggested float32 tolerance: |a - b| <= atol + rtol * |b|."""
    ref = torch.as_tensor(np.asarray(ref)).double()
    out = out.detach().double().cpu()
    assert out.shape == ref.shape, f"{what}: shape {list(out.shape)} != {list(ref.shape)}"
    excess = ((out - ref).abs() - (atol + rtol * ref.abs())).max().item()
    assert excess <= 0, f"{what}: max |diff| {(out - ref).abs().max().item():.3g} exceeds the tolerance"
