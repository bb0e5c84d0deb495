"""load_embedder: checkpoint files as users have them, unwrapping, safe unpickling, and clear errors."""

import json
import pickle
import struct
import sys
import types
from pathlib import Path

import pytest
import torch

from synthcore.nets.embedders import (
    CheckpointError,
    embedder_from_state_dict,
    load_embedder,
    unwrap_state_dict,
)
from synthcore.nets.model_files import ModelFileError, load_safetensors, read_model_file
from tests.nets.conftest import arrays, filled_state_dict, relative_error, small_state_dict

X = torch.linspace(-1, 1, 3 * 112 * 112).reshape(1, 3, 112, 112)


def _out(embedder, x=X):
    with torch.no_grad():
        return embedder(x)


def _reference(sd, arch=None):
    return _out(embedder_from_state_dict(sd, arch))


# ---------------------------------------------------------------------------------------------- unwrapping


def test_unwrap_lightning_layout():
    sd = {"conv1.weight": torch.ones(2), "fc.bias": torch.zeros(2)}
    ckpt = {
        "epoch": 3,
        "state_dict": {**{f"model.{k}": v for k, v in sd.items()}, "head.kernel": torch.ones(2, 5), "head.t": 0},
        "hyper_parameters": {"arch": "ir_50"},
    }
    got, heads = unwrap_state_dict(ckpt)
    assert set(got) == set(sd) and heads == ["head.kernel"]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # DDP
        lambda sd: {"state_dict_backbone": sd, "state_dict_softmax_fc": {"weight": torch.ones(3)}, "epoch": 1},
        lambda sd: {"model": {f"net.{k}": v for k, v in sd.items()}},  # Hugging Face style wrapper
        lambda sd: {"state_dict": {f"model.net.{k}": v for k, v in sd.items()}},
        lambda sd: {f"backbone.{k}": v for k, v in sd.items()},
    ],
)
def test_unwrap_prefixes_and_entries(wrap):
    sd = {"conv1.weight": torch.ones(2), "layer1.0.bn1.weight": torch.ones(2)}
    got, _ = unwrap_state_dict(wrap(sd))
    assert set(got) == set(sd)


def test_prefix_kept_unless_every_key_has_it():
    sd = {"model.a": torch.ones(1), "other.b": torch.ones(1)}
    assert set(unwrap_state_dict(sd)[0]) == {"model.a", "other.b"}


def test_half_and_double_tensors_become_float32():
    sd = small_state_dict("iresnet18")
    mixed = {
        k: (v.half() if i % 2 else v.double()) if v.is_floating_point() else v for i, (k, v) in enumerate(sd.items())
    }
    e = embedder_from_state_dict(mixed)
    assert all(p.dtype == torch.float32 for p in e.parameters())
    assert e.backbone.bn1.num_batches_tracked.dtype == torch.int64
    assert _out(e).dtype == torch.float32


def test_unwrap_errors():
    with pytest.raises(CheckpointError, match="no tensors found.*epoch"):
        unwrap_state_dict({"epoch": 3, "note": "x"})
    with pytest.raises(CheckpointError, match="holds a list"):
        unwrap_state_dict([torch.ones(1)])


# ------------------------------------------------------------------------------------------ loading files


def test_insightface_backbone_pth(tmp_path):
    sd = small_state_dict("iresnet18")
    torch.save(sd, tmp_path / "backbone.pth")
    e = load_embedder(tmp_path / "backbone.pth")
    assert e.spec.name == "iresnet18" and e.channel_order == "RGB" and not e.training
    assert all(not p.requires_grad for p in e.parameters())
    assert torch.equal(_out(e), _reference(sd))


@pytest.fixture
def fake_lightning(monkeypatch):
    """Stand-ins for the Lightning classes a real AdaFace .ckpt pickles, importable only while saving."""
    parsing = types.ModuleType("pytorch_lightning.utilities.parsing")
    callbacks = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class AttributeDict(dict):
        pass

    class ModelCheckpoint:
        pass

    AttributeDict.__module__, AttributeDict.__qualname__ = parsing.__name__, "AttributeDict"
    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = callbacks.__name__, "ModelCheckpoint"
    parsing.AttributeDict, callbacks.ModelCheckpoint = AttributeDict, ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.callbacks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, parsing.__name__, parsing)
    monkeypatch.setitem(sys.modules, callbacks.__name__, callbacks)
    return AttributeDict, ModelCheckpoint


def test_adaface_lightning_ckpt_reproduces_reference(tmp_path, fake_lightning, monkeypatch):
    """AdaFace release layout end to end: Lightning dict, model. prefix, margin head, pickled bookkeeping."""
    attribute_dict, model_checkpoint = fake_lightning
    sd = filled_state_dict("adaface_ir50")
    ckpt = {
        "epoch": 26,
        "global_step": 100,
        "pytorch-lightning_version": "1.5.2",
        "state_dict": {
            **{f"model.{k}": v for k, v in sd.items()},
            "head.kernel": torch.ones(512, 8),
            "head.t": torch.zeros(1),
            "head.batch_mean": torch.ones(1),
            "head.batch_std": torch.ones(1),
        },
        "callbacks": {model_checkpoint: {"best_model_score": torch.tensor(0.9)}},
        "hyper_parameters": attribute_dict(arch="ir_50", lr=0.1, milestones=[12, 20, 24]),
        "ns": __import__("argparse").Namespace(head="adaface"),
    }
    path = tmp_path / "adaface_ir50_ms1mv2.ckpt"
    torch.save(ckpt, path)
    for name in [n for n in sys.modules if n.startswith("pytorch_lightning")]:
        monkeypatch.delitem(sys.modules, name)  # loading must not need Lightning
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # plain weights_only refuses it ...
    e = load_embedder(path)  # ... the loader allows exactly the Lightning globals it needs
    assert e.spec.name == "adaface_ir50" and e.channel_order == "BGR"
    d = arrays("adaface_ir50")
    x = torch.from_numpy(d["images_rgb_uint8"][:2]).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    raw = _out(e, x).double()
    assert relative_error(raw / raw.norm(dim=1, keepdim=True), torch.from_numpy(d["output_f64"][:2])) <= 5e-5


def test_code_in_a_checkpoint_is_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.ones(1)}, "x": Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to unpickle (io|builtins)\.open"):
        load_embedder(path)
    assert not marker.exists()


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "full_model.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="refusing to unpickle torch.nn.modules.linear.Linear"):
        load_embedder(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save({"conv1.weight": torch.ones(64, 3, 3, 3), "fc.weight": torch.ones(8, 8)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_embedder(path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch file"):
        load_embedder(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_embedder(tmp_path / "nope.pth")


def test_wrong_network_is_rejected(tmp_path):
    path = tmp_path / "G.pth"
    torch.save({"mapping.fc0.weight": torch.ones(4, 4)}, path)
    with pytest.raises(CheckpointError, match="not a recognised face-recognition checkpoint"):
        load_embedder(path)


def test_missing_and_unexpected_keys_are_listed():
    sd = dict(small_state_dict("iresnet18"))
    del sd["layer2.0.bn1.running_var"]
    sd["layer2.0.extra.weight"] = torch.ones(1)
    with pytest.raises(CheckpointError) as info:
        embedder_from_state_dict(sd)
    msg = str(info.value)
    assert "missing (1): layer2.0.bn1.running_var" in msg and "unexpected (1): layer2.0.extra.weight" in msg


def test_wrong_shape_is_listed():
    sd = dict(small_state_dict("iresnet18"))
    sd["layer3.1.prelu.weight"] = torch.ones(7)
    with pytest.raises(CheckpointError, match=r"wrong shape \(1\): layer3.1.prelu.weight \[7\] != \[256\]"):
        embedder_from_state_dict(sd)


def test_missing_bn_counters_are_tolerated():
    """Checkpoints from PyTorch < 0.4.1 have no num_batches_tracked entries."""
    sd = {k: v for k, v in small_state_dict("iresnet18").items() if not k.endswith("num_batches_tracked")}
    assert torch.equal(_reference(sd), _reference(small_state_dict("iresnet18")))


def test_arch_must_agree_with_the_checkpoint():
    sd = small_state_dict("iresnet18")
    assert embedder_from_state_dict(sd, arch="iresnet18").spec.name == "iresnet18"
    with pytest.raises(CheckpointError, match="arch=iresnet50 was requested but the checkpoint holds iresnet18"):
        embedder_from_state_dict(sd, arch="iresnet50")


def test_channel_order_override(tmp_path):
    """TreB1eN's model_ir_se50.pth has evoLVe's keys but was trained on BGR."""
    sd = small_state_dict("iresnet18")
    torch.save(sd, tmp_path / "m.pth")
    assert load_embedder(tmp_path / "m.pth", channel_order="BGR").channel_order == "BGR"
    with pytest.raises(ValueError, match="RGB or BGR"):
        load_embedder(tmp_path / "m.pth", channel_order="YUV")


# ------------------------------------------------------------------------------------------- safetensors


def _write_safetensors(path: Path, tensors: dict) -> None:
    """Independent writer of the format: JSON header with dtype/shape/offsets, then the raw buffers."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for k, v in tensors.items():
        data = v.contiguous().numpy().tobytes()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def test_safetensors_with_net_prefix(tmp_path):
    sd = small_state_dict("iresnet18")
    half = {f"net.{k}": (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    path = tmp_path / "model.safetensors"
    _write_safetensors(path, half)
    back = load_safetensors(path)
    assert back["net.conv1.weight"].dtype == torch.float16
    assert torch.equal(back["net.conv1.weight"], half["net.conv1.weight"])
    e = load_embedder(path)
    assert e.spec.name == "iresnet18"
    want = _reference({k: v.half().float() if v.is_floating_point() else v for k, v in sd.items()})
    assert torch.equal(_out(e), want)


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    _write_safetensors(path, {"a": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="past the end"):
        read_model_file(path)
    with pytest.raises(CheckpointError, match="past the end"):
        load_embedder(path)
