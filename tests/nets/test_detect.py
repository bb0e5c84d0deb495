"""Family and depth recognition from checkpoint keys and shapes, and the errors for what does not fit."""

import pytest
import torch

from synthcore.nets.embedders import ARCHS, CheckpointError, build_backbone, detect_arch, get_arch
from tests.nets.conftest import REFERENCE_ARCHS, shapes


@pytest.mark.parametrize("name", sorted(REFERENCE_ARCHS))
def test_detects_each_manifest(name, testdata):
    spec, size = detect_arch(shapes(name))
    assert spec.name == REFERENCE_ARCHS[name]
    assert size == 512


def _meta_shapes(arch: str) -> dict:
    with torch.device("meta"):
        net = build_backbone(get_arch(arch))
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_detects_every_supported_architecture(arch):
    spec, _ = detect_arch(_meta_shapes(arch))
    assert spec.name == arch


def test_treats_old_checkpoints_without_bn_counters_alike():
    sh = {k: v for k, v in shapes("evolve_ir_se50").items() if not k.endswith("num_batches_tracked")}
    assert detect_arch(sh)[0].name == "evolve_ir_se50"


def test_family_markers():
    assert get_arch("iresnet50").family == "insightface" and get_arch("iresnet50").channel_order == "RGB"
    assert get_arch("adaface_ir101").family == "adaface" and get_arch("adaface_ir101").channel_order == "BGR"
    assert get_arch("EVOLVE-IR-SE50").se and get_arch("evolve_ir_se50").channel_order == "RGB"
    with pytest.raises(ValueError, match="unknown embedder architecture"):
        get_arch("resnet50")


def test_truncated_body_is_reported():
    """A checkpoint that lost its last units: the unit count per stage matches no depth."""
    sh = {k: v for k, v in shapes("adaface_ir50").items() if not k.startswith(("body.22.", "body.23."))}
    with pytest.raises(CheckpointError, match=r"units per stage \[3, 4, 14, 1\].*truncated"):
        detect_arch(sh)


def test_gap_in_units_is_reported():
    sh = {k: v for k, v in shapes("evolve_ir50").items() if not k.startswith("body.5.")}
    with pytest.raises(CheckpointError, match=r"units \[5\] .* are missing"):
        detect_arch(sh)


def test_missing_output_layer_is_reported():
    sh = {k: v for k, v in shapes("insightface_iresnet50").items() if not k.startswith("fc.")}
    with pytest.raises(CheckpointError, match="output Linear layer"):
        detect_arch(sh)


def test_unrelated_state_dict_is_rejected():
    sh = {"mapping.fc0.weight": (512, 512), "synthesis.b4.const": (512, 4, 4)}
    with pytest.raises(CheckpointError, match="not a recognised face-recognition checkpoint.*mapping.fc0.weight"):
        detect_arch(sh)


def test_other_input_size_is_rejected():
    sh = dict(shapes("insightface_iresnet50"))
    sh["fc.weight"] = (512, 512 * 8 * 8)
    with pytest.raises(CheckpointError, match="112x112"):
        detect_arch(sh)


def test_bottleneck_widths_are_rejected():
    """AdaFace's IR-152/200 use bottleneck units with 256..2048 channels: not these networks."""
    sh = dict(shapes("adaface_ir50"))
    sh["body.23.res_layer.1.weight"] = (2048, 512, 3, 3)
    with pytest.raises(CheckpointError, match="64/128/256/512"):
        detect_arch(sh)
