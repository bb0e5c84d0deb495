"""synthcore's generator format (.pt / .safetensors) and the load_generator entry point."""

import json
import random
import struct
import time

import pytest
import torch

from synthcore.nets.generator_files import FORMAT, GeneratorFileError, file_kind, load_generator, save_generator
from synthcore.nets.model_files import ModelFileError
from synthcore.nets.stylegan2 import Generator
from tests.nets.sg2_data import arrays, assert_close, pkl


@pytest.mark.parametrize("ext", ["pt", "safetensors"])
def test_round_trip_reproduces_the_snapshot(tmp_path, ext):
    name = "sg2ada_r16_orig_gray"  # conv_clamp 1.25 and stored gains: the attributes must survive too
    G = load_generator(pkl(name))
    path = tmp_path / f"g.{ext}"
    save_generator(G, path, metadata={"source": name})
    assert file_kind(path) == ("torch" if ext == "pt" else "safetensors")
    G2 = load_generator(path)
    assert G2.config == G.config and not G2.training
    ref = arrays(name)
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        a, b = G(z, c, 0.7), G2(z, c, 0.7)
    assert torch.equal(a, b)
    assert_close(b, ref["img_psi0.7_const"], "reloaded generator")
    for (k, v), v2 in zip(G.state_dict().items(), G2.state_dict().values()):
        assert torch.equal(v, v2), k


def test_pt_file_is_plain_data(tmp_path):
    G = Generator(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_kwargs={"num_layers": 1})
    path = tmp_path / "g.pt"
    save_generator(G, path)
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == FORMAT and obj["config"]["img_resolution"] == 8
    assert set(obj["state_dict"]) == set(G.state_dict())


def test_key_selects_g_or_g_ema():
    a = load_generator(pkl("sg2ada_r32_uncond_fp16"))
    b = load_generator(pkl("sg2ada_r32_uncond_fp16"), key="G")
    assert not torch.equal(a.mapping.w_avg, b.mapping.w_avg)
    with pytest.raises(ValueError, match="key"):
        load_generator(pkl("sg2ada_r32_uncond_fp16"), key="D")


def test_wrong_files_give_clear_errors(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(GeneratorFileError, match="not a synthcore generator"):
        load_generator(other)

    G = Generator(z_dim=8, w_dim=8, img_resolution=8, channel_base=64, channel_max=8, mapping_kwargs={"num_layers": 1})
    path = tmp_path / "g.pt"
    save_generator(G, path)
    obj = torch.load(path, weights_only=True)
    del obj["state_dict"]["synthesis.b4.const"]
    obj["state_dict"]["mapping.fc0.weight"] = torch.zeros(2, 2)
    del obj["content_sha256"]  # an edited file without a hash: its structure is still checked
    torch.save(obj, path)
    with pytest.raises(GeneratorFileError, match=r"missing.*synthesis\.b4\.const.*wrong shape.*mapping\.fc0"):
        load_generator(path)

    cut = tmp_path / "cut.pt"
    cut.write_bytes(other.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_generator(cut)

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello")
    with pytest.raises(ModelFileError, match="not a network file"):
        load_generator(junk)
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "absent.pkl")


def _small_generator() -> Generator:
    kwargs = {"channel_base": 64, "channel_max": 8, "mapping_kwargs": {"num_layers": 1}}
    return Generator(z_dim=8, w_dim=8, img_resolution=8, **kwargs)


@pytest.mark.parametrize("ext", ["pt", "safetensors"])
def test_damaged_weights_are_reported(tmp_path, ext):
    """A flipped bit inside the weight bytes (which still parse) is caught by the stored content hash."""
    G = _small_generator()
    path = tmp_path / f"g.{ext}"
    save_generator(G, path, metadata={"source": "g16.pkl"})
    load_generator(path)  # untouched: loads
    good = path.read_bytes()
    weights = [v for k, v in G.state_dict().items() if v.numel() >= 64]
    rng = random.Random(0)
    for t in weights[:6]:
        raw = t.detach().contiguous().numpy().tobytes()
        at = good.find(raw)
        assert at > 0
        for _ in range(3):
            bad = bytearray(good)
            bad[at + rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            path.write_bytes(bytes(bad))
            with pytest.raises(GeneratorFileError, match=rf"g\.{ext}: damaged: .*synthcore convert"):
                load_generator(path)


def test_damaged_metadata_and_config_are_reported(tmp_path):
    G = _small_generator()
    path = tmp_path / "g.safetensors"
    save_generator(G, path, metadata={"source": "g16.pkl"})
    good = path.read_bytes()
    for old, new in ((b"g16.pkl", b"g17.pkl"), (b'\\"w_dim\\": 8', b'\\"w_dim\\": 9')):
        assert good.count(old) == 1, old
        path.write_bytes(good.replace(old, new))
        with pytest.raises(GeneratorFileError, match="damaged"):
            load_generator(path)


def test_files_without_a_hash_still_load(tmp_path):
    """Files written before synthcore stored content hashes are read unverified."""
    G = _small_generator()
    path = tmp_path / "g.pt"
    save_generator(G, path)
    obj = torch.load(path, weights_only=True)
    assert len(obj.pop("content_sha256")) == 64
    torch.save(obj, path)
    G2 = load_generator(path)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))


def test_content_digest_does_not_depend_on_the_container(tmp_path):
    G = _small_generator()
    save_generator(G, tmp_path / "g.pt")
    save_generator(G, tmp_path / "g.safetensors")
    pt = torch.load(tmp_path / "g.pt", weights_only=True)["content_sha256"]
    with open(tmp_path / "g.safetensors", "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        st = json.loads(fh.read(n))["__metadata__"]["content_sha256"]
    assert pt == st


def test_pt_file_with_shared_nested_config_is_refused_quickly(tmp_path):
    """A .pt whose config repeats one list by reference 2**30 times is refused before anything walks it."""
    G = _small_generator()
    path = tmp_path / "g.pt"
    save_generator(G, path)
    obj = torch.load(path, weights_only=True)
    x = [0]
    for _ in range(30):
        x = [x, x]
    obj["config"]["mapping_kwargs"]["lr_multiplier"] = x
    torch.save(obj, path)
    t0 = time.perf_counter()
    with pytest.raises(GeneratorFileError, match=r"g\.pt: shared containers expand"):
        load_generator(path)
    assert time.perf_counter() - t0 < 5
