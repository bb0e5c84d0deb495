"""The StyleGAN2 generator against the official reference outputs, both impls; random generators; gradients."""

import math

import pytest
import torch

from synthcore.nets.generator_files import load_generator
from synthcore.nets.stylegan2 import CPU_CHANNELS_LAST_MIN_RES, Generator, normalize_2nd_moment
from tests.conftest import cuda_only
from tests.nets.sg2_data import MODELS, arrays, assert_close, generator, pkl

TRUNCATIONS = {"psi1": (1, None), "psi0.7": (0.7, None), "psi0.5_cutoff3": (0.5, 3)}


@pytest.mark.parametrize("impl", ["reference", "native"])
@pytest.mark.parametrize("name", MODELS)
def test_reproduces_reference_outputs(name, impl):
    """ws and images of G_ema (every truncation and noise mode), synthesis from per-layer ws, and G."""
    ref = arrays(name)
    G = generator(name)
    z, c = torch.from_numpy(ref["z"]), torch.from_numpy(ref["c"])
    with torch.no_grad():
        assert_close(G.mapping.w_avg, ref["w_avg"], "w_avg")
        for t, (psi, cutoff) in TRUNCATIONS.items():
            ws = G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff, impl=impl)
            assert_close(ws, ref[f"ws_{t}"], f"ws_{t}")
            for noise in ("const", "none"):
                assert_close(G.synthesis(ws, noise_mode=noise, impl=impl), ref[f"img_{t}_{noise}"], f"img_{t}_{noise}")
        img = G(z, c, 0.7, noise_mode="const", impl=impl)
        assert_close(img, ref["img_psi0.7_const"], "G(z, c) psi 0.7")
        ws_in = torch.from_numpy(ref["synth_ws_in"])
        for noise in ("const", "none"):
            assert_close(G.synthesis(ws_in, noise_mode=noise, impl=impl), ref[f"synth_img_{noise}"], f"synth {noise}")
        assert_close(generator(name, "G")(z, c, impl=impl), ref["G_img_psi1_const"], "G (not G_ema)")


@pytest.mark.parametrize("name", MODELS)
def test_per_module_trace(name):
    """Every traced intermediate (mapping layers, styles, layer outputs, ToRGB, running image) for sample 0."""
    ref = arrays(name)
    G = generator(name)
    keys = [k for k in ref if k.startswith("trace/")]
    assert keys
    got = {}
    mods = dict(G.named_modules())
    hooks = []
    for key in keys:
        path = key[len("trace/") :]
        pick_img = path.endswith(".img")
        mod = mods[path[: -len(".img")] if pick_img else path]

        def hook(_m, _inp, out, key=key, pick_img=pick_img):
            got[key] = out[1] if pick_img else out

        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            ws = G.mapping(torch.from_numpy(ref["z"][:1]), torch.from_numpy(ref["c"][:1]))
            G.synthesis(ws, noise_mode="const")
    finally:
        for h in hooks:
            h.remove()
    for key in keys:
        assert_close(got[key], ref[key], key)


def test_fp16_path_on_cpu_half():
    """Blocks flagged use_fp16 run in float16 when asked (CPU half here, as in the reference); img stays float32."""
    name = "sg2ada_r32_uncond_fp16"
    ref = arrays(name)
    G = generator(name)
    z = torch.from_numpy(ref["z"])
    with torch.no_grad():
        img16 = G(z, force_fp32=False, impl="reference")
        img32 = G(z)  # CPU default: float32 everywhere
    assert img16.dtype == torch.float32 and img32.dtype == torch.float32
    assert_close(img16, ref["img_psi1_const_fp16path"], "fp16 path", atol=5e-2, rtol=0)
    assert_close(img32, ref["img_psi1_const"], "fp32 path")
    assert (img16 - img32).abs().max() > 1e-4  # float16 really ran


def test_native_refuses_cpu_half():
    G = generator("sg2ada_r32_uncond_fp16")
    with pytest.raises(RuntimeError, match="native"):
        G(torch.randn(1, G.z_dim), force_fp32=False, impl="native")


def _small(arch="skip", res=32, c_dim=0, seed=0, **kw):
    return Generator(
        z_dim=16, c_dim=c_dim, w_dim=24, img_resolution=res, img_channels=3, channel_base=256, channel_max=16,
        mapping_kwargs={"num_layers": 2}, architecture=arch, seed=seed, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "arch,res", [("skip", 32), ("resnet", 32), ("orig", 32), ("skip", 128), ("resnet", 128), ("orig", 128)]
)
def test_random_generator_native_matches_reference_with_gradients(arch, res):
    """From CPU_CHANNELS_LAST_MIN_RES up the native blocks run channels_last: covered by the 128 cases."""
    G = _small(arch, res=res, c_dim=3, conv_clamp=0.8)
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    layouts = {}  # block resolution -> whether conv1's input was channels_last
    for r in G.synthesis.block_resolutions[1:]:
        getattr(G.synthesis, f"b{r}").conv1.register_forward_pre_hook(
            lambda m, args, r=r: layouts.update({r: args[0].is_contiguous(memory_format=torch.channels_last)})
        )
    with torch.no_grad():  # noise strengths start at 0 and biases at 0; move them so every term matters
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.normal_(0, 0.2)
    z, c = torch.randn(3, 16, generator=torch.Generator().manual_seed(1)), torch.eye(3)
    ws = G.mapping(z, c, truncation_psi=0.8)
    outs, grads = {}, {}
    for impl in ("reference", "native"):
        w = ws.detach().clone().requires_grad_(True)
        img = G.synthesis(w, noise_mode="const", impl=impl)
        (img * torch.linspace(-1, 1, img.numel()).reshape(img.shape)).sum().backward()
        outs[impl], grads[impl] = img.detach(), w.grad
        assert layouts == {r: impl == "native" and r >= CPU_CHANNELS_LAST_MIN_RES for r in layouts}, impl
    assert outs["native"].shape == (3, 3, res, res)
    assert_close(outs["native"], outs["reference"], f"{arch} images")
    assert grads["reference"].abs().max() > 0 and torch.isfinite(grads["reference"]).all()
    scale = grads["reference"].abs().max().item()
    assert (grads["native"] - grads["reference"]).abs().max().item() <= 1e-4 * max(1.0, scale)
    if arch == "resnet":
        assert hasattr(G.synthesis.b8, "skip") and not hasattr(G.synthesis.b8, "torgb")
    if arch == "orig":
        assert not hasattr(G.synthesis.b8, "torgb") and hasattr(getattr(G.synthesis, f"b{res}"), "torgb")


def test_seeded_init_is_reproducible_and_official_shaped():
    a, b, c = _small(seed=3), _small(seed=3), _small(seed=4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.synthesis.b4.const, c.synthesis.b4.const)
    # official initialisation: affine biases 1, biases and noise strengths 0, w_avg 0, mapping weights / lr 0.01
    assert torch.all(a.synthesis.b8.conv0.affine.bias == 1) and torch.all(a.synthesis.b8.conv0.bias == 0)
    assert a.synthesis.b8.conv0.noise_strength.item() == 0 and torch.all(a.mapping.w_avg == 0)
    assert 50 < a.mapping.fc0.weight.std().item() < 150
    assert a.mapping.fc0.weight_gain == pytest.approx(0.01 / math.sqrt(16))


@pytest.mark.parametrize("res", [4, 8, 64])
def test_any_power_of_two_resolution(res):
    G = _small(res=res)
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    with torch.no_grad():
        assert G(torch.randn(2, 16)).shape == (2, 3, res, res)


def test_truncation_and_w_avg_tracking():
    G = _small()
    z = torch.randn(5, 16)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        ws = G.mapping(z)
        assert ws.shape == (5, G.num_ws, 24) and torch.equal(ws[:, 0], ws[:, -1])
        w0 = G.mapping(z, truncation_psi=0)
        assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
        wc = G.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
        assert torch.allclose(wc[:, 2:], ws[:, 2:])
        assert torch.allclose(wc[:, :2], G.mapping.w_avg + 0.5 * (ws[:, :2] - G.mapping.w_avg))
        before = G.mapping.w_avg.clone()
        G.mapping(z, update_emas=True)
        expected = ws[:, 0].mean(0) + G.mapping.w_avg_beta * (before - ws[:, 0].mean(0))
        assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)


def test_noise_modes():
    G = _small()
    with torch.no_grad():
        for p in G.parameters():
            if p.ndim == 0:
                p.fill_(0.5)
        ws = G.mapping(torch.randn(2, 16))
        const = [G.synthesis(ws, noise_mode="const") for _ in range(2)]
        rand = [G.synthesis(ws, noise_mode="random") for _ in range(2)]
        none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(const[0], const[1])
    assert not torch.equal(rand[0], rand[1])
    assert not torch.equal(none, const[0])


def test_set_impl_applies_to_every_layer():
    G = _small().set_impl("reference")
    assert all(m.impl == "reference" for m in G.modules() if hasattr(m, "impl"))
    with pytest.raises(ValueError, match="impl"):
        G.set_impl("fast")


def test_bad_inputs_give_clear_errors():
    G = _small(c_dim=2)
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(2, 16))
    with pytest.raises(ValueError, match=r"z must have shape \[N, 16\]"):
        G(torch.randn(2, 15), torch.eye(2))
    with pytest.raises(ValueError, match="noise_mode"):
        G(torch.randn(2, 16), torch.eye(2), noise_mode="fixed")
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.randn(2, 3, 24))
    with pytest.raises(ValueError, match="power of two"):
        _small(res=48)
    with pytest.raises(ValueError, match="unknown synthesis kwargs"):
        _small(channel_bse=3)
    with pytest.raises(ValueError, match="architecture"):
        _small(arch="stylegan3")


def test_normalize_2nd_moment():
    x = torch.randn(4, 10) * 3
    y = normalize_2nd_moment(x)
    assert torch.allclose(y.square().mean(1), torch.ones(4), atol=1e-5)


@cuda_only
@pytest.mark.parametrize("impl", [None, "reference"])
def test_cuda_matches_reference_fp32_and_fp16(impl):
    """On CUDA: float32 (force_fp32) within the float32 tolerance, the default fp16 blocks within 5e-2."""
    name = "sg2ada_r32_uncond_fp16"
    ref = arrays(name)
    G = load_generator(pkl(name), device="cuda")
    z = torch.from_numpy(ref["z"]).cuda()
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # TF32 alone errs ~1e-3
    try:
        with torch.no_grad():
            img32 = G(z, impl=impl, force_fp32=True)
            img16 = G(z, impl=impl)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert img16.dtype == torch.float32
    assert_close(img32, ref["img_psi1_const"], "cuda fp32")
    assert_close(img16, ref["img_psi1_const"], "cuda fp16 blocks", atol=5e-2, rtol=0)
