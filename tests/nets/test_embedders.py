"""Each supported family reproduces the upstream networks' outputs on the shared reference data.

Weights come from the deterministic fill of ../shared/testdata/embedders/README.md; the reference outputs were
computed by the upstream model code in float64. Tolerance (README): max |out - ref| <= 5e-5 * max |ref| and
cosine >= 1 - 1e-8, float32 on CPU.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthcore.embedding import embed, from_uint8
from synthcore.nets.embedders import ARCHS, build_backbone, embedder_from_state_dict, get_arch
from tests.conftest import cuda_only
from tests.nets.conftest import (
    REFERENCE_ARCHS,
    arrays,
    filled_state_dict,
    manifest,
    relative_error,
    shapes,
    small_state_dict,
)
from tests.nets.weight_fill import role

TOL_REL = 5e-5
TOL_COS = 1e-8


def test_fill_matches_manifest_checks(reference_name):
    """If torch's seeded randn ever changed, the output comparison below would be meaningless."""
    sd = filled_state_dict(reference_name)
    all_shapes = shapes(reference_name)
    for entry in manifest(reference_name)["keys"]:
        v = sd[entry["key"]]
        if entry["dtype"] == "int64":
            assert v.dtype == torch.int64 and v.item() == 0
            continue
        assert role(entry["key"], all_shapes) == entry["role"], entry["key"]
        a = v.numpy()
        bound = 1e-6 * entry["fill_abs_sum"]
        assert abs(np.sum(a, dtype=np.float64) - entry["fill_sum"]) <= bound, entry["key"]
        assert abs(np.sum(np.abs(a), dtype=np.float64) - entry["fill_abs_sum"]) <= bound, entry["key"]
        for got, want in zip(v.flatten()[:3].tolist(), entry["fill_first"]):
            assert math.isclose(got, want, rel_tol=1e-6), entry["key"]


def test_state_dict_layout_matches_manifest(reference_name):
    spec = get_arch(REFERENCE_ARCHS[reference_name])
    with torch.device("meta"):
        net = build_backbone(spec)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == list(shapes(reference_name).items())  # names, shapes and order
    m = manifest(reference_name)
    assert sum(p.numel() for p in net.parameters()) == m["num_trainable_parameters"]
    assert m["input"]["channel_order"] == spec.channel_order


def test_preprocessing_reproduces_reference_input(reference_name):
    d = arrays(reference_name)
    x = from_uint8(d["images_rgb_uint8"])
    if get_arch(REFERENCE_ARCHS[reference_name]).channel_order == "BGR":
        x = x.flip(1)
        # AdaFace normalises in float64 and then casts: within one float32 ulp.
        torch.testing.assert_close(x, torch.from_numpy(d["input"]), rtol=0, atol=1.2e-7)
    else:
        assert torch.equal(x, torch.from_numpy(d["input"]))


def test_reference_outputs(reference_name):
    """Raw feature (AdaFace: unit embedding and norm) against the upstream float64 forward."""
    d = arrays(reference_name)
    embedder = embedder_from_state_dict(filled_state_dict(reference_name))
    assert embedder.spec.name == REFERENCE_ARCHS[reference_name]
    with torch.no_grad():
        # The embedder takes RGB; it reorders channels itself for BGR families, so feed the RGB crops.
        raw = embedder(from_uint8(d["images_rgb_uint8"]))
    if "norm_f64" in d:
        norm = raw.double().norm(dim=1, keepdim=True)
        ref_norm = torch.from_numpy(d["norm_f64"])
        assert ((norm - ref_norm).abs() / ref_norm).max().item() <= 1e-5
        out = raw.double() / norm
    else:
        out = raw.double()
    ref = torch.from_numpy(d["output_f64"])
    assert relative_error(out, ref) <= TOL_REL
    assert F.cosine_similarity(out, ref).min().item() >= 1 - TOL_COS
    # The outputs must depend on the image, or the comparison proves little.
    assert F.cosine_similarity(ref[0:1], ref[1:2]).item() < 0.99


def test_flip_fusion_uses_mirrored_image():
    """Image 2 of the data set is the mirror of image 0: fused embedding = normalise(raw0 + raw2)."""
    name = "insightface_iresnet50"
    d = arrays(name)
    embedder = embedder_from_state_dict(filled_state_dict(name))
    ref = torch.from_numpy(d["output_f64"])
    want = F.normalize(ref[0] + ref[2], dim=0)
    with torch.no_grad():
        got = embed(from_uint8(d["images_rgb_uint8"][:1]), embedder, flip=True)[0].double()
    assert (got - want).abs().max().item() <= TOL_REL * want.abs().max().item()


def test_bgr_embedder_reverses_channels():
    embedder = embedder_from_state_dict(small_state_dict(), channel_order="BGR")
    assert embedder.channel_order == "BGR"
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(embedder(x), embedder.backbone(x.flip(1)))
        assert (embedder(x) - embedder.backbone(x)).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_every_architecture_builds(name):
    """All depths, on the meta device (no memory, no time): 112 px in, 512-d out, published parameter counts."""
    spec = get_arch(name)
    with torch.device("meta"):
        net = build_backbone(spec)
        out = net.eval()(torch.empty(2, 3, 112, 112))
    assert tuple(out.shape) == (2, 512)
    published = {  # parameter counts listed in the reference README
        "iresnet50": 43_590_848,
        "iresnet100": 65_156_160,
        "adaface_ir50": 43_585_600,
        "adaface_ir101": 65_150_912,
        "evolve_ir50": 43_574_976,
        "evolve_ir_se50": 43_797_696,
    }
    if name in published:
        assert sum(p.numel() for p in net.parameters()) == published[name]


def test_embedder_rejects_wrong_input_size():
    embedder = embedder_from_state_dict(small_state_dict())
    with pytest.raises(ValueError, match="112, 112"):
        embedder(torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match="synthcore.align"):
        embedder(torch.zeros(1, 1, 112, 112))


def test_memory_formats_agree():
    """Weights are stored channels_last by default (faster on CPU); the contiguous layout gives the same result."""
    fast = embedder_from_state_dict(small_state_dict())
    plain = embedder_from_state_dict(small_state_dict(), memory_format=torch.contiguous_format)
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.backbone.conv1.weight.is_contiguous()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        a, b = fast(x), plain(x)
    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-5


def test_gradient_reaches_the_image_not_the_weights():
    embedder = embedder_from_state_dict(small_state_dict())
    x = (torch.rand(2, 3, 112, 112) * 2 - 1).requires_grad_(True)
    e = embed(x, embedder)
    (e[0] @ e[1]).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in embedder.parameters())  # frozen: no weight gradients are computed


@cuda_only
def test_reference_outputs_on_cuda():
    """Same check on the GPU, TF32 off (with TF32 the README expects errors around 1e-3)."""
    name = "evolve_ir_se50"
    d = arrays(name)
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        embedder = embedder_from_state_dict(filled_state_dict(name)).to("cuda")
        with torch.no_grad():
            out = embedder(from_uint8(d["images_rgb_uint8"]).cuda()).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    assert relative_error(out, torch.from_numpy(d["output_f64"])) <= TOL_REL
