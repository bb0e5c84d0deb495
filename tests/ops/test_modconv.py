import json
import sys

import numpy as np
import pytest
import torch

import synthcore.ops.modconv  # noqa: F401  (the module, shadowed on the package by the function of that name)
from synthcore import ops
from tests.conftest import cuda_only

M = sys.modules["synthcore.ops.modconv"]
C = sys.modules["synthcore.ops.conv2d_resample"]
F4 = ops.setup_filter([1, 3, 3, 1])


def _cases(testdata, op):
    return [c for c in json.loads((testdata / "stylegan2" / "ops_cases.json").read_text())["cases"] if c["op"] == op]


@pytest.mark.parametrize("impl", ["reference", "native"])
def test_conv2d_resample_matches_testdata(testdata, impl, cpu_isa):
    data = np.load(testdata / "stylegan2" / "ops_reference.npz")
    cases = _cases(testdata, "conv2d_resample.conv2d_resample")
    assert len(cases) == 12
    for c in cases:
        x = torch.from_numpy(data[c["inputs"]["x"]])
        w = torch.from_numpy(data[c["inputs"]["w"]])
        f = torch.from_numpy(data[c["inputs"]["f"]]) if c["inputs"]["f"] else None
        kw = {
            k: v for k, v in c["args"].items() if k in ("up", "down", "padding", "groups", "flip_weight", "flip_filter")
        }
        y = ops.conv2d_resample(x, w, f, impl=impl, **kw)
        ref = torch.from_numpy(data[c["output"]])
        torch.testing.assert_close(y, ref, atol=1e-4, rtol=1e-4, msg=c["name"])


def _modconv_inputs(data, c):
    inp = c["inputs"]
    x = torch.from_numpy(data["modconv/x"])
    if c["args"].get("x_dtype") == "float16":
        x = x.half()
    w = torch.from_numpy(data[inp["weight"]])
    s = torch.from_numpy(data[inp["styles"]])
    noise = torch.from_numpy(data[inp["noise"]]) if inp["noise"] else None
    f = torch.from_numpy(data[c["args"]["resample_filter"]]) if "resample_filter" in c["args"] else None
    kw = {k: v for k, v in c["args"].items() if k in ("up", "down", "padding", "demodulate", "flip_weight")}
    return x, w, s, noise, f, kw


@pytest.mark.parametrize("impl", ["grouped", "scaled", "native"])
def test_modconv_matches_testdata(testdata, impl, cpu_isa):
    data = np.load(testdata / "stylegan2" / "ops_reference.npz")
    cases = _cases(testdata, "networks.modulated_conv2d")
    assert len(cases) == 54
    for c in cases:
        x, w, s, noise, f, kw = _modconv_inputs(data, c)
        if impl == "native":
            if x.dtype == torch.float16:
                continue  # no native CPU half kernels; the CUDA test covers half
            y = ops.modconv(x, w, s, noise, resample_filter=f, impl="native", **kw)
        else:
            y = ops.modconv_reference(x, w, s, noise, resample_filter=f, strategy=impl, **kw)
        ref = torch.from_numpy(data[c["output"]])
        tol = 5e-2 if x.dtype == torch.float16 else 1e-4
        torch.testing.assert_close(y.float(), ref.float(), atol=tol, rtol=tol, msg=c["name"])


# Random layers: (N, I, O, H, k, up, down, padding, flip_weight)
GEOMETRIES = [
    (2, 6, 5, 8, 3, 1, 1, 1, True),
    (3, 4, 7, 5, 3, 2, 1, 1, False),  # SynthesisLayer up
    (2, 5, 3, 8, 3, 1, 2, 1, True),  # down
    (2, 8, 3, 16, 1, 1, 1, 0, True),  # ToRGB (weight-scaling path)
    (2, 6, 9, 3, 1, 1, 1, 0, True),  # 1x1 with more outputs than pixels (activation-scaling path)
    (1, 3, 4, 6, 3, 1, 1, [2, 0, 1, 1], True),
    (2, 4, 4, 6, 1, 2, 1, 0, False),  # 1x1 up (resnet-skip-like geometry)
    (2, 4, 4, 8, 1, 1, 2, 0, True),
    (1, 4, 2, 8, 3, 1, 1, 1, True),  # one sample, small weight: styles folded into the weight without autograd
    (1, 4, 2, 8, 3, 2, 1, 1, False),
]
EPILOGUES = [
    dict(act="lrelu", clamp=None),
    dict(act="lrelu", clamp=0.8, gain=1.3),
    dict(act="linear"),
    dict(act="tanh", clamp=0.5),
    dict(act="swish", alpha=None),
]


def _random_layer(geo, seed, dtype=torch.float64, noise_kind="batch", device="cpu"):
    n, i, o, h, k, up, down, padding, flip = geo
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, i, h, h, generator=g, dtype=dtype)
    w = torch.randn(o, i, k, k, generator=g, dtype=dtype)
    s = torch.randn(n, i, generator=g, dtype=dtype) + 0.5
    kw = dict(up=up, down=down, padding=padding, flip_weight=flip, resample_filter=F4.to(dtype))
    oh, ow = C._output_hw((h, h), (k, k), F4, up, down, C._parse_padding(padding))
    noise = {
        "none": None,
        "batch": torch.randn(n, 1, oh, ow, generator=g, dtype=dtype),
        "shared": torch.randn(oh, ow, generator=g, dtype=dtype),
    }[noise_kind]
    b = torch.randn(o, generator=g, dtype=dtype)
    to = dict(device=device)
    return x.to(**to), w.to(**to), s.to(**to), None if noise is None else noise.to(**to), b.to(**to), kw


@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
@pytest.mark.parametrize("demodulate", [True, False])
def test_native_forward_matches_reference(geo, demodulate, cpu_isa):
    for e, epi in enumerate(EPILOGUES):
        for noise_kind in ("none", "batch", "shared"):
            x, w, s, noise, b, kw = _random_layer(GEOMETRIES[geo], seed=geo * 10 + e, dtype=torch.float32,
                                                  noise_kind=noise_kind)  # fmt: skip
            ref = ops.modconv_reference(x, w, s, noise, b, demodulate=demodulate, **kw, **epi)
            with torch.no_grad():  # in-place epilogue path
                nat = ops.modconv(x, w, s, noise, b, demodulate=demodulate, impl="native", **kw, **epi)
            torch.testing.assert_close(nat, ref, atol=1e-4, rtol=1e-4, msg=f"{GEOMETRIES[geo]} {epi} {noise_kind}")


@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
def test_native_backward_matches_reference(geo, cpu_isa):
    for e, epi in enumerate(EPILOGUES[:3]):
        for demodulate in (True, False):
            x, w, s, noise, b, kw = _random_layer(GEOMETRIES[geo], seed=100 + geo * 10 + e, dtype=torch.float32)
            leaves = [t.requires_grad_(True) for t in (x, w, s, noise, b)]
            ref = ops.modconv_reference(x, w, s, noise, b, demodulate=demodulate, **kw, **epi)
            nat = ops.modconv(x, w, s, noise, b, demodulate=demodulate, impl="native", **kw, **epi)
            torch.testing.assert_close(nat, ref, atol=1e-4, rtol=1e-4)
            gy = torch.randn_like(ref)
            g_ref = torch.autograd.grad(ref, leaves, gy)
            g_nat = torch.autograd.grad(nat, leaves, gy)
            for name, a, r in zip(("x", "weight", "styles", "noise", "bias"), g_nat, g_ref):
                scale = r.abs().max().item() + 1e-6
                torch.testing.assert_close(a / scale, r / scale, atol=2e-5, rtol=0, msg=f"grad {name} {epi}")


def test_shared_noise_gradient_sums_over_batch():
    x, w, s, noise, b, kw = _random_layer(GEOMETRIES[0], seed=7, dtype=torch.float64, noise_kind="shared")
    noise.requires_grad_(True)
    y = ops.modconv(x, w, s, noise, b, impl="native", act="lrelu", **kw)
    (g,) = torch.autograd.grad(y.sum(), noise)
    y_ref = ops.modconv_reference(x, w, s, noise, b, act="lrelu", **kw)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), noise)
    assert g.shape == noise.shape
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("geo", [0, 1, 2, 3, 6])
def test_gradcheck_float64(geo):
    n, i, o, h, k, up, down, padding, flip = GEOMETRIES[geo]
    small = (min(n, 2), min(i, 3), min(o, 3), min(h, 5), k, up, down, padding, flip)
    x, w, s, noise, b, kw = _random_layer(small, seed=geo, dtype=torch.float64)
    for t in (x, w, s, noise, b):
        t.requires_grad_(True)

    def fn(x, w, s, noise, b):
        return ops.modconv(x, w, s, noise, b, impl="native", act="lrelu", clamp=2.5, **kw)

    assert torch.autograd.gradcheck(fn, (x, w, s, noise, b), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_no_grad_result_is_not_an_alias_of_inputs():
    x, w, s, noise, b, kw = _random_layer(GEOMETRIES[0], seed=3, dtype=torch.float32)
    before = [t.clone() for t in (x, w, s, noise, b)]
    with torch.no_grad():
        ops.modconv(x, w, s, noise, b, impl="native", act="lrelu", **kw)
    for a, t in zip(before, (x, w, s, noise, b)):
        assert torch.equal(a, t)


def test_demod_coefficients_match_per_sample_weights():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 4, 3, 3, generator=g, dtype=torch.float64)
    s = torch.randn(3, 4, generator=g, dtype=torch.float64)
    d = ops.demod_coefficients(w, s)
    wn = w[None] * s[:, None, :, None, None]
    torch.testing.assert_close(d, (wn.square().sum([2, 3, 4]) + 1e-8).rsqrt())


def test_bad_inputs_are_rejected():
    x, w, s, noise, b, kw = _random_layer(GEOMETRIES[0], seed=0, dtype=torch.float32)
    with pytest.raises(ValueError, match="styles must be"):
        ops.modconv(x, w, s[:, :-1], **kw)
    with pytest.raises(ValueError, match="channels"):
        ops.modconv(x[:, :-1], w, s[:, :-1], **kw)
    with pytest.raises(ValueError, match="noise has shape"):
        ops.modconv(x, w, s, noise[..., :-1], **kw)
    with pytest.raises(ValueError, match="bias has"):
        ops.modconv(x, w, s, noise, b[:-1], **kw)
    with pytest.raises(ValueError, match="unknown activation"):
        ops.modconv(x, w, s, act="gelu", **kw)
    with pytest.raises(ValueError, match="impl"):
        ops.modconv(x, w, s, impl="fast", **kw)
    with pytest.raises(ValueError, match="resample filter"):
        ops.modconv(x, w, s, up=2, padding=1)
    with pytest.raises(ValueError, match="up must be"):
        ops.modconv(x, w, s, up=0, resample_filter=F4)
    with pytest.raises(ValueError, match="empty output"):
        ops.modconv(x[:, :, :2, :2], w, s, padding=0)
    with pytest.raises(ValueError, match="dimensions"):
        ops.modconv(x[0], w, s)
    with pytest.raises(TypeError, match="floating-point"):
        ops.modconv(x.long(), w, s)
    with pytest.raises(ValueError, match="strategy"):
        ops.modconv_reference(x, w, s, strategy="fused", **kw)
    with pytest.raises(ValueError, match="groups"):
        ops.conv2d_resample(x, w[:, :3], groups=4)


def test_native_kernels_validate_arguments():
    from synthcore._native import native_module
    from synthcore.ops._backend import to_native

    m = native_module()
    t = torch.randn(2, 3, 4, 4)
    with pytest.raises(TypeError, match="d"):
        m.modconv_epilogue(to_native(t), to_native(torch.ones(2, 3, dtype=torch.float64)), None, None,
                           to_native(torch.empty_like(t)), 2, 0.2, 1.0, -1.0, 1)  # fmt: skip
    with pytest.raises(ValueError, match="noise"):
        m.modconv_epilogue(to_native(t), None, to_native(torch.ones(3, 16)), None, to_native(torch.empty_like(t)),
                           2, 0.2, 1.0, -1.0, 1)  # fmt: skip
    with pytest.raises(ValueError, match="act"):
        m.modconv_epilogue(to_native(t), None, None, None, to_native(torch.empty_like(t)), 99, 0.2, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="overlap"):
        m.modconv_epilogue(to_native(t), None, None, to_native(t[0, 0, 0, :3]), to_native(t), 2, 0.2, 1.0, -1.0, 1)


# --- second derivatives (path-length regularisation differentiates a gradient through the generator) -----------

# (N, I, O, H, k, up, down, padding, flip_weight): 3x3 plain, up, down; 1x1 on the activation-scaling path
# (more outputs than O * 8 <= H * W allows) and on the weight-scaling (ToRGB) path.
DOUBLE_BACKWARD_GEOMETRIES = [
    (2, 2, 2, 3, 3, 1, 1, 1, True),
    (2, 2, 2, 3, 3, 2, 1, 1, False),
    (2, 2, 2, 4, 3, 1, 2, 1, True),
    (2, 3, 4, 2, 1, 1, 1, 0, True),
    (2, 3, 2, 4, 1, 1, 1, 0, True),
]


@pytest.mark.parametrize("geo", DOUBLE_BACKWARD_GEOMETRIES)
@pytest.mark.parametrize("demodulate", [True, False])
def test_gradgradcheck_float64(geo, demodulate):
    x, w, s, noise, b, kw = _random_layer(geo, seed=sum(geo[:5]), dtype=torch.float64)
    leaves = tuple(t.requires_grad_(True) for t in (x, w, s, noise, b))
    act = "tanh" if demodulate else "lrelu"  # a curved activation (second derivative through z) and a kinked one

    def fn(x, w, s, noise, b):
        return ops.modconv(x, w, s, noise, b, demodulate=demodulate, impl="native", act=act, clamp=2.5, **kw)

    # fast_mode checks random projections of the second-derivative matrix instead of every entry: the same
    # analytical-vs-numerical comparison at a fraction of the cost.
    assert torch.autograd.gradgradcheck(fn, leaves, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def _path_length_grads(impl, x, w, s, noise, b, kw, gy, demodulate, act):
    """d/d(w, s, x, b) of |d<y, gy>/ds|^2: a gradient taken with create_graph, then differentiated again."""
    y = ops.modconv(x, w, s, noise, b, demodulate=demodulate, act=act, impl=impl, **kw)
    (gs,) = torch.autograd.grad((y * gy).sum(), s, create_graph=True)
    # Piecewise-linear activations leave some leaves out of the second-order graph: those derivatives are zero.
    return torch.autograd.grad(gs.square().sum(), (x, w, s, noise, b), allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("geo", DOUBLE_BACKWARD_GEOMETRIES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_second_derivatives_match_reference(geo, channels_last):
    for demodulate, act in ((True, "swish"), (False, "lrelu")):
        x, w, s, noise, b, kw = _random_layer(geo, seed=40 + geo[3], dtype=torch.float64)
        if channels_last:
            x = _nhwc(x)
        leaves = [t.requires_grad_(True) for t in (x, w, s, noise, b)]
        gy = torch.randn(ops.modconv_reference(*leaves, **kw).shape, dtype=torch.float64)
        ref = _path_length_grads("reference", *leaves, kw, gy, demodulate, act)
        nat = _path_length_grads("native", *leaves, kw, gy, demodulate, act)
        for name, a, r in zip(("x", "weight", "styles", "noise", "bias"), nat, ref):
            torch.testing.assert_close(a, r, atol=1e-9, rtol=1e-7, msg=f"{geo} {act} d/d{name}")


def test_opcheck():
    """torch.library's consistency checks (schema, fake kernel, autograd registration) for every modconv op,
    the backward ops included (their own autograd gives the second derivatives)."""
    t = torch.randn(2, 3, 5, 4, requires_grad=True)
    d = torch.rand(2, 3, requires_grad=True)
    noise = torch.randn(1, 20, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    gy = torch.randn(2, 3, 5, 4, requires_grad=True)
    s = torch.randn(2, 3, requires_grad=True)
    ops_and_args = [
        (torch.ops.synthcore.modconv_epilogue.default, (t, d, noise, b, 2, 0.2, 1.41, 256.0)),
        (torch.ops.synthcore.modconv_epilogue.default, (t, None, None, None, 3, 0.0, 1.0, -1.0)),
        (torch.ops.synthcore.modconv_epilogue_grad.default, (gy, t, d, noise, b, 2, 0.2, 1.41, 256.0)),
        (torch.ops.synthcore.modconv_epilogue_grad.default, (gy, t, d, noise, b, 8, 0.0, 1.41, 0.7)),
        (torch.ops.synthcore.modconv_epilogue_grad.default, (gy, t, None, None, None, 3, 0.0, 1.0, -1.0)),
        (torch.ops.synthcore.modconv_scale.default, (t, s)),
        (torch.ops.synthcore.modconv_scale_grad.default, (gy, t, s)),
        (torch.ops.synthcore.modconv_epilogue_.default, (t.detach().clone(), d.detach(), None, b.detach(), 2, 0.2,
                                                         1.41, -1.0)),
    ]  # fmt: skip
    for op, args in ops_and_args:
        torch.library.opcheck(op, args)
    nhwc = _nhwc(t.detach()).requires_grad_(True)
    torch.library.opcheck(torch.ops.synthcore.modconv_scale_grad.default, (_nhwc(gy.detach()), nhwc, s))


def test_torch_compile_layer():
    torch._dynamo.reset()
    x, w, s, noise, b, kw = _random_layer(GEOMETRIES[1], seed=5, dtype=torch.float32)
    x.requires_grad_(True)
    s.requires_grad_(True)

    def layer(x, s):
        return ops.modconv(x, w, s, noise, b, impl="native", act="lrelu", clamp=256.0, **kw)

    y_c = torch.compile(layer, backend="aot_eager", fullgraph=True)(x, s)
    y_e = layer(x, s)
    torch.testing.assert_close(y_c, y_e)
    g_c = torch.autograd.grad(y_c.sum(), (x, s))
    g_e = torch.autograd.grad(y_e.sum(), (x, s))
    for a, r in zip(g_c, g_e):
        torch.testing.assert_close(a, r)


def test_weight_derived_cache_follows_in_place_changes():
    """Frozen weights keep their demodulation sums and transposed up-conv weight; an in-place update (an
    optimiser step, load_state_dict) must invalidate them."""
    x, w, s, noise, b, kw = _random_layer(GEOMETRIES[1], seed=21, dtype=torch.float32)
    with torch.no_grad():
        y0 = ops.modconv(x, w, s, noise, b, impl="native", **kw)
        assert set(w.__dict__["_synthcore_derived"]) == {"demod-sums", "transposed-False-1"}
        assert torch.equal(ops.modconv(x, w, s, noise, b, impl="native", **kw), y0)  # from the cache
        w.mul_(-0.5)
        y1 = ops.modconv(x, w, s, noise, b, impl="native", **kw)
    torch.testing.assert_close(y1, ops.modconv_reference(x, w, s, noise, b, **kw), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(y1, y0)
    wg = w.clone().requires_grad_(True)  # a trained weight: nothing kept
    ops.modconv(x, wg, s, noise, b, impl="native", **kw)
    assert "_synthcore_derived" not in wg.__dict__


# --- channels_last (NHWC) on CPU ------------------------------------------------------------------------------


def _nhwc(t):
    return t.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_native_matches_reference(geo, dtype, cpu_isa):
    o, h = GEOMETRIES[geo][2:4]
    for e, epi in enumerate(EPILOGUES[:3]):
        for demodulate in (True, False):
            x, w, s, noise, b, kw = _random_layer(GEOMETRIES[geo], seed=300 + geo * 10 + e, dtype=dtype)
            x = _nhwc(x)
            leaves = [t.requires_grad_(True) for t in (x, w, s, noise, b)]
            ref = ops.modconv_reference(x, w, s, noise, b, demodulate=demodulate, **kw, **epi)
            nat = ops.modconv(x, w, s, noise, b, demodulate=demodulate, impl="native", **kw, **epi)
            k, up, down = GEOMETRIES[geo][4:7]
            few_outputs_1x1 = k == 1 and up == down == 1 and o * 8 <= h * h  # ToRGB: a 3-channel NCHW image
            if not few_outputs_1x1 and o > 1 and nat.shape[2] * nat.shape[3] > 1:  # else the strides coincide
                assert nat.is_contiguous(memory_format=torch.channels_last) and not nat.is_contiguous()
            tol = 1e-4 if dtype == torch.float32 else 1e-10
            torch.testing.assert_close(nat, ref, atol=tol, rtol=tol, msg=f"{GEOMETRIES[geo]} {epi}")
            with torch.no_grad():  # the in-place epilogue
                nat_ng = ops.modconv(x, w, s, noise, b, demodulate=demodulate, impl="native", **kw, **epi)
            torch.testing.assert_close(nat_ng, ref, atol=tol, rtol=tol)
            gy = torch.randn_like(ref)  # NCHW gradient into a channels_last output: the op converts it
            g_ref = torch.autograd.grad(ref, leaves, gy)
            g_nat = torch.autograd.grad(nat, leaves, gy)
            for name, a, r in zip(("x", "weight", "styles", "noise", "bias"), g_nat, g_ref):
                scale = r.abs().max().item() + 1e-6
                torch.testing.assert_close(a / scale, r / scale, atol=tol / 5, rtol=0, msg=f"grad {name} {epi}")


def test_channels_last_matches_nchw_native():
    """The two native layouts compute the same function (up to float32 summation order)."""
    x, w, s, noise, b, kw = _random_layer((3, 32, 16, 12, 3, 2, 1, 1, False), seed=11, dtype=torch.float32)
    outs = []
    for xx in (x, _nhwc(x)):
        xx = xx.clone().requires_grad_(True)
        ss = s.clone().requires_grad_(True)
        y = ops.modconv(xx, w, ss, noise, b, act="lrelu", clamp=1.5, impl="native", **kw)
        gx, gs = torch.autograd.grad(y, (xx, ss), torch.ones_like(y))
        outs.append((y, gx, gs))
    for a, r in zip(*outs):
        torch.testing.assert_close(a, r, atol=2e-4, rtol=2e-4)


def test_channels_last_gradients_do_not_depend_on_thread_count():
    """The per-channel style and demodulation gradients are summed over pixels in fixed blocks, reduced in a
    fixed order: the same bits with 1 or 2 threads."""
    x, w, s, noise, b, kw = _random_layer((2, 24, 20, 40, 3, 1, 1, 1, True), seed=12, dtype=torch.float32)
    x = _nhwc(x)
    grads = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ss = s.clone().requires_grad_(True)
        y = ops.modconv(x.requires_grad_(True), w, ss, noise, b, act="lrelu", impl="native", **kw)
        grads.append(torch.autograd.grad(y, (x, ss), torch.cos(y.detach())))
    for a, r in zip(*grads):
        assert torch.equal(a, r)


def test_channels_last_native_kernels_check_layouts():
    from synthcore._native import native_module
    from synthcore.ops._backend import to_native

    m = native_module()
    t = _nhwc(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="channels_last"):  # output in the other layout
        m.modconv_epilogue(to_native(t), None, None, None, to_native(torch.empty(2, 3, 4, 4)), 2, 0.2, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="contiguous"):  # neither layout
        m.modconv_epilogue(to_native(t.transpose(2, 3)), None, None, None, to_native(t), 2, 0.2, 1.0, -1.0, 1)
    out = torch.empty_like(t)
    m.modconv_epilogue(to_native(t), None, None, None, to_native(out), 0, 0.0, 1.0, -1.0, 1)  # linear: a copy
    assert torch.equal(out, t)


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("geo", range(len(GEOMETRIES)))
def test_cuda_native_matches_reference(dtype, geo):
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    x, w, s, noise, b, kw = _random_layer(GEOMETRIES[geo], seed=geo, dtype=torch.float32, device="cuda")
    kw["resample_filter"] = kw["resample_filter"].cuda()
    ref = ops.modconv_reference(x.double(), w.double(), s.double(), noise.double(), b.double(), act="lrelu",
                                clamp=2.0, **{**kw, "resample_filter": kw["resample_filter"].double()})  # fmt: skip
    xs = x.to(dtype).requires_grad_(True)
    ss = s.clone().requires_grad_(True)
    nat = ops.modconv(xs, w, ss, noise.to(dtype), b.to(dtype), act="lrelu", clamp=2.0, impl="native", **kw)
    tol = {torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1e-1}[dtype]
    scale = ref.abs().max().item()
    torch.testing.assert_close(nat.double() / scale, ref / scale, atol=tol, rtol=0)
    gy = torch.randn_like(ref)
    gx, gs = torch.autograd.grad(nat, (xs, ss), gy.to(dtype))
    x64, s64 = x.double().requires_grad_(True), s.double().requires_grad_(True)
    ref = ops.modconv_reference(x64, w.double(), s64, noise.double(), b.double(), act="lrelu", clamp=2.0,
                                **{**kw, "resample_filter": kw["resample_filter"].double()})  # fmt: skip
    rx, rs = torch.autograd.grad(ref, (x64, s64), gy)
    for a, r in ((gx, rx), (gs, rs)):
        sc = r.abs().max().item() + 1e-6
        torch.testing.assert_close(a.double() / sc, r / sc, atol=tol * 3, rtol=0)
