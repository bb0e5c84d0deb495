"""synthcore generate and synthcore convert, end to end in a temporary folder."""

import json

import numpy as np
import pytest
import torch

from synthcore import imageio
from synthcore.cli.generate import parse_seeds, ws_from_latents
from synthcore.cli.main import main
from tests.nets.sg2_data import arrays, generator, pkl


def test_parse_seeds():
    assert parse_seeds("0-3,20") == [0, 1, 2, 3, 20]
    assert parse_seeds("5, 2-3, 5") == [5, 2, 3]
    for bad, msg in (
        ("3-1", "backwards"),
        ("a", "neither"),
        ("1,,2", "empty"),
        ("-1", "neither"),
        ("1-2-3", "neither"),
    ):
        with pytest.raises(ValueError, match=msg):
            parse_seeds(bad)
    with pytest.raises(ValueError, match="0.."):
        parse_seeds(str(2**32))


@pytest.mark.parametrize("name", ["sg2ada_r64_cond4", "sg2ada_r16_orig_gray"])
def test_generate_matches_official_gen_images(tmp_path, capsys, name):
    """Seeds 0-3 with class 1, as the reference's gen_img_uint8_nhwc; batch 3 so one batch is partial."""
    ref = arrays(name)
    out = tmp_path / "out"
    assert main(["generate", "--network", str(pkl(name)), "--seeds", "0-3", "--class", "1",
                 "--outdir", str(out), "--batch", "3", "--device", "cpu"]) == 0  # fmt: skip
    assert "wrote 4 images" in capsys.readouterr().out
    want = ref["gen_img_uint8_nhwc"]
    for i, seed in enumerate(ref["gen_seeds"]):
        px = imageio.read_png(out / f"seed{seed:04d}.png")
        px = px[..., None] if px.ndim == 2 else px
        diff = np.abs(px.astype(int) - want[i])
        assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3, f"seed {seed}"
    lat = np.load(out / "latents.npz")
    assert lat["seeds"].tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(lat["z"], ref["gen_z_float64"])
    np.testing.assert_array_equal(lat["c"], ref["gen_c"])
    G = generator(name)
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(ref["gen_z_float64"]).float(), torch.from_numpy(ref["gen_c"]))
    np.testing.assert_allclose(ws_from_latents(lat), w.numpy(), rtol=1e-5, atol=1e-6)
    meta = json.loads(str(lat["meta_json"]))
    assert meta["truncation_psi"] == 1 and meta["class"] == 1 and len(meta["network_sha256"]) == 64


def test_batch_size_does_not_change_latents_and_truncation_is_recorded(tmp_path):
    net = str(pkl("sg2ada_r32_uncond_fp16"))
    for batch in ("1", "8"):
        args = ["generate", "--network", net, "--seeds", "7,3-4", "--trunc", "0.6", "--trunc-cutoff", "2", "--device",
                "cpu", "--outdir", str(tmp_path / batch), "--batch", batch, "--quiet", "--impl",
                "reference"]  # fmt: skip
        assert main(args) == 0
    a, b = np.load(tmp_path / "1" / "latents.npz"), np.load(tmp_path / "8" / "latents.npz")
    assert a["seeds"].tolist() == [7, 3, 4]
    np.testing.assert_array_equal(a["z"], b["z"])
    ws_a, ws_b = ws_from_latents(a), ws_from_latents(tmp_path / "8" / "latents.npz")
    np.testing.assert_allclose(ws_a, ws_b, atol=1e-6)
    G = generator("sg2ada_r32_uncond_fp16")
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(a["z"]).float(), None, truncation_psi=0.6, truncation_cutoff=2)
    np.testing.assert_allclose(ws_a, ws.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ws_a[:, 0], ws_a[:, 2])  # cutoff 2: later ws untruncated
    for seed in (7, 3, 4):
        pa, pb = (
            imageio.read_png(tmp_path / "1" / f"seed{seed:04d}.png"),
            imageio.read_png(tmp_path / "8" / f"seed{seed:04d}.png"),
        )
        assert np.abs(pa.astype(int) - pb).max() <= 1


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "conditional"),
        (["--class", "9"], "out of range"),
        (["--label", "1,0"], "c_dim=4"),
        (["--class", "0", "--batch", "0"], "--batch"),
        (["--class", "0", "--device", "cuda:7"], "CUDA"),
    ],
)
def test_generate_errors(tmp_path, capsys, extra, message):
    args = ["generate", "--network", str(pkl("sg2ada_r64_cond4")), "--seeds", "0", "--outdir", str(tmp_path)]
    if "--device" in extra and torch.cuda.is_available():
        pytest.skip("a GPU is visible: the no-CUDA error cannot be provoked")
    assert main(args + extra) == 1
    assert message in capsys.readouterr().err


def test_unconditional_network_rejects_a_class(tmp_path, capsys):
    args = ["generate", "--network", str(pkl("sg2ada_r32_uncond_fp16")), "--seeds", "0", "--outdir", str(tmp_path)]
    assert main(args + ["--class", "0"]) == 1
    assert "unconditional" in capsys.readouterr().err


def test_convert_then_generate_from_the_converted_file(tmp_path, capsys):
    src = pkl("sg2ada_r64_cond4")
    dst = tmp_path / "g.safetensors"
    assert main(["convert", str(src), str(dst)]) == 0
    assert "64x64x3" in capsys.readouterr().out
    assert main(["convert", str(src), str(dst)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "g.txt")]) == 1
    assert "must end in" in capsys.readouterr().err
    for net, sub in ((src, "a"), (dst, "b")):
        args = ["generate", "--network", str(net), "--seeds", "5", "--label", "0,0.5,0.5,0",
                "--outdir", str(tmp_path / sub), "--quiet"]  # fmt: skip
        assert main(args) == 0
    a, b = (imageio.read_png(tmp_path / s / "seed0005.png") for s in "ab")
    np.testing.assert_array_equal(a, b)
