"""synthcore's generator format (.pt / .safetensors) and the load_generator entry point."""

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
