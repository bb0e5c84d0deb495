"""Records to synthcore modules: writer variants (stylegan3-repo StyleGAN2), StyleGAN3 refusal, mismatch reports."""

import pytest
import torch

from synthcore.nets.persistence import PersistentRecord, SnapshotError, read_snapshot
from synthcore.nets.snapshot import generator_from_record
from tests.nets.sg2_data import arrays, assert_close, pkl

NAME = "sg2ada_r64_cond4"


def _g_ema() -> PersistentRecord:
    return read_snapshot(pkl(NAME))["G_ema"]


def test_stylegan3_repo_layout_of_a_stylegan2_generator():
    """The stylegan3 repo writes synthesis kwargs flat, adds fused_modconv_default and extra plain attributes."""
    rec = _g_ema()
    kw = rec.state["_init_kwargs"]
    kw.update(kw.pop("synthesis_kwargs"))
    kw["fused_modconv_default"] = "inference_only"
    for _, r in rec.named_records():
        if r.class_name == "SynthesisBlock":
            r.state["fused_modconv_default"] = "inference_only"
        if r.class_name == "FullyConnectedLayer":
            r.state["in_features"], r.state["out_features"] = r.state["_parameters"]["weight"].shape[::-1]
    G = generator_from_record(rec)
    ref = arrays(NAME)
    with torch.no_grad():
        img = G(torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"]), 0.7)
    assert_close(img, ref["img_psi0.7_const"], "stylegan3-repo layout")


def test_stylegan3_generator_is_refused():
    rec = _g_ema()
    synthesis = rec.state["_modules"]["synthesis"]
    synthesis.state["_modules"]["input"] = PersistentRecord("SynthesisInput", {"_modules": {}})
    with pytest.raises(SnapshotError, match="StyleGAN3"):
        generator_from_record(rec)


def test_mismatches_are_listed_together():
    rec = _g_ema()
    recs = dict(rec.named_records())
    recs["synthesis.b8.conv0"].state["_parameters"]["weight"] = torch.zeros(3, 3, 3, 3)
    del recs["synthesis.b16.conv1"].state["_buffers"]["noise_const"]
    recs["synthesis.b32"].state["architecture"] = "resnet"
    with pytest.raises(SnapshotError) as err:
        generator_from_record(rec, "test.pkl")
    msg = str(err.value)
    assert "test.pkl" in msg and "synthesis.b8.conv0.weight: shape [3, 3, 3, 3]" in msg
    assert "synthesis.b16.conv1.noise_const: missing" in msg and "synthesis.b32.architecture" in msg


def test_bad_constructor_arguments_are_reported():
    rec = _g_ema()
    rec.state["_init_kwargs"]["synthesis_kwargs"]["new_option"] = 1
    with pytest.raises(SnapshotError, match="new_option"):
        generator_from_record(rec)
    with pytest.raises(SnapshotError, match="expected a Generator"):
        generator_from_record(read_snapshot(pkl(NAME))["D"])


def test_absurd_stored_config_is_rejected_without_allocating():
    """A record claiming a 65536-pixel, 4096-channel generator is checked on the meta device: the mismatch is
    reported at once instead of allocating hundreds of GB."""
    rec = _g_ema()
    kw = rec.state["_init_kwargs"]
    kw["img_resolution"] = 65536
    kw["synthesis_kwargs"].update(channel_base=2**30, channel_max=4096)
    with pytest.raises(SnapshotError, match="does not fit"):
        generator_from_record(rec)
