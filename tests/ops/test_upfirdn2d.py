import json
import random

import numpy as np
import pytest
import torch

from synthcore import ops
from synthcore._native import native_module
from synthcore.ops._backend import to_native
from tests.conftest import cuda_only

TOL = dict(atol=1e-4, rtol=1e-4)  # the test data README's suggested float32 tolerance


# --- agreement with the official op's reference outputs ----------------------------------------------------


def _cases(testdata, prefix):
    cases = json.loads((testdata / "stylegan2" / "ops_cases.json").read_text())["cases"]
    return [c for c in cases if c["op"].startswith(prefix)]


def _load(testdata):
    return np.load(testdata / "stylegan2" / "ops_reference.npz")


FUNCS = {
    "upfirdn2d.upfirdn2d": ops.upfirdn2d,
    "upfirdn2d.upsample2d": ops.upsample2d,
    "upfirdn2d.downsample2d": ops.downsample2d,
    "upfirdn2d.filter2d": ops.filter2d,
}


def test_setup_filter_matches_testdata(testdata):
    data = _load(testdata)
    cases = _cases(testdata, "upfirdn2d.setup_filter")
    assert len(cases) == 10
    for case in cases:
        kwargs = {k: v for k, v in case["args"].items() if k != "f"}
        f_in = data[case["inputs"]["f_in"]].tolist() if "f_in" in case["inputs"] else None
        if f_in is not None and len(f_in) == 1 and case["name"].endswith("scalar2"):
            f_in = f_in[0]
        out = ops.setup_filter(f_in, **kwargs)
        ref = data[case["output"]]
        assert list(out.shape) == list(ref.shape), case["name"]
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-7, rtol=1e-6, err_msg=case["name"])


@pytest.mark.parametrize("impl", ["reference", "native"])
def test_resampling_matches_testdata(testdata, impl, cpu_isa):
    data = _load(testdata)
    cases = [c for p in FUNCS for c in _cases(testdata, p)]
    assert len(cases) == 33
    for case in cases:
        args = {k: v for k, v in case["args"].items() if k not in ("f", "impl")}
        x = torch.from_numpy(data[case["inputs"]["x"]])
        fkey = case["inputs"].get("f")
        f = torch.from_numpy(data[fkey]) if fkey else None
        y = FUNCS[case["op"]](x, f, impl=impl, **args)
        ref = torch.from_numpy(data[case["output"]])
        assert y.shape == ref.shape, case["name"]
        torch.testing.assert_close(y, ref, **TOL, msg=case["name"])


# --- native vs reference on random geometry ----------------------------------------------------------------


def _random_case(rng: random.Random):
    ux, uy = rng.choice([(1, 1), (2, 2), (1, 2), (3, 1), (4, 4)])
    dx, dy = rng.choice([(1, 1), (2, 2), (2, 1), (1, 3)])
    kind = rng.choice(["2d", "sep", "rank1"])
    if kind == "sep":
        n = rng.randint(1, 9)
        f = torch.rand(n) + 0.1
    elif kind == "rank1":
        f = ops.setup_filter(torch.rand(rng.randint(2, 6)) + 0.1)
    else:
        f = torch.randn(rng.randint(1, 5), rng.randint(1, 6))
    h, w = rng.randint(1, 13), rng.randint(1, 13)
    pad = [rng.randint(-2, 5) for _ in range(4)]
    fw, fh = (f.shape[0], f.shape[0]) if f.ndim == 1 else (f.shape[1], f.shape[0])
    # keep the padded image at least as large as the filter
    pad[1] = max(pad[1], fw - w * ux - pad[0])
    pad[3] = max(pad[3], fh - h * uy - pad[2])
    x = torch.randn(rng.randint(1, 3), rng.randint(1, 4), h, w)
    return dict(
        x=x,
        f=f,
        up=[ux, uy],
        down=[dx, dy],
        padding=pad,
        flip_filter=rng.random() < 0.5,
        gain=rng.choice([1.0, 2.5, 0.3]),
    )


@pytest.fixture(params=["auto", "rows", "lanes"])
def kernel_path(request, monkeypatch):
    """The CPU kernel has a row path and a lane-blocked path; the automatic choice depends on the shape."""
    if request.param != "auto":
        monkeypatch.setenv("SYNTHCORE_UPFIRDN2D_PATH", request.param)
    return request.param


@pytest.mark.parametrize("seed", range(6))
def test_native_matches_reference_random(seed, cpu_isa, kernel_path):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    for _ in range(40):
        case = _random_case(rng)
        ref = ops.upfirdn2d(**case, impl="reference")
        nat = ops.upfirdn2d(**case, impl="native")
        assert nat.shape == ref.shape
        torch.testing.assert_close(nat, ref, atol=1e-5, rtol=1e-5, msg=str({k: v for k, v in case.items() if k != "x"}))


@pytest.mark.parametrize(
    "shape,fn",
    [
        ((2, 16, 32, 32), ops.upsample2d),
        ((2, 16, 64, 64), ops.downsample2d),
        ((3, 5, 33, 17), ops.filter2d),
        ((1, 1, 40, 40), ops.upsample2d),  # single plane: the kernel splits rows across threads
        ((4, 64, 8, 8), ops.downsample2d),  # lane path by default
        ((3, 5, 8, 8), ops.filter2d),  # planes not a multiple of the lane count
    ],
)
def test_native_matches_reference_stylegan_filter(shape, fn, cpu_isa, kernel_path):
    x = torch.randn(shape)
    f = ops.setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(fn(x, f, impl="native"), fn(x, f, impl="reference"), atol=1e-5, rtol=1e-5)


def test_backward_matches_reference():
    torch.manual_seed(0)
    rng = random.Random(1)
    for _ in range(25):
        case = _random_case(rng)
        grads = []
        for impl in ("reference", "native"):
            x = case["x"].clone().requires_grad_(True)
            y = ops.upfirdn2d(**{**case, "x": x}, impl=impl)
            gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
            (y * gy).sum().backward()
            grads.append(x.grad)
        torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_native_matches_reference(seed, dtype, cpu_isa):
    """A channels_last input runs the NHWC kernel and gives a channels_last output, forward and backward."""
    rng = random.Random(100 + seed)
    torch.manual_seed(seed)
    for _ in range(25):
        case = _random_case(rng)
        n, c, h, w = case["x"].shape
        x = torch.randn(n, c + 2, h, w, dtype=dtype)  # at least 3 channels, so the two layouts differ
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        case = {**case, "x": x, "f": case["f"].to(dtype)}
        ref = ops.upfirdn2d(**case, impl="reference")
        nat = ops.upfirdn2d(**case, impl="native")
        assert nat.shape == ref.shape
        if nat.shape[2] * nat.shape[3] > 1:
            assert nat.is_contiguous(memory_format=torch.channels_last) and not nat.is_contiguous()
        tol = 1e-5 if dtype == torch.float32 else 1e-6  # the native filter taps are float32
        msg = str({k: v for k, v in case.items() if k != "x"})
        torch.testing.assert_close(nat, ref, atol=tol, rtol=tol, msg=msg)
        gy = torch.randn_like(ref)
        (g_ref,) = torch.autograd.grad(ref, x, gy)
        (g_nat,) = torch.autograd.grad(nat, x, gy)
        torch.testing.assert_close(g_nat, g_ref, atol=tol, rtol=tol, msg=msg)


@pytest.mark.parametrize("fn", [ops.upsample2d, ops.downsample2d, ops.filter2d])
def test_channels_last_stylegan_shapes(fn, cpu_isa):
    x = torch.randn(2, 64, 32, 32).contiguous(memory_format=torch.channels_last)
    f = ops.setup_filter([1, 3, 3, 1])
    nat = fn(x, f, impl="native")
    torch.testing.assert_close(nat, fn(x, f, impl="reference"), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(nat, fn(x.contiguous(), f, impl="native"), atol=1e-5, rtol=1e-5)


def test_native_kernel_requires_matching_layouts():
    from synthcore._native import native_module
    from synthcore.ops._backend import to_native

    x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    f = torch.ones(1, 1)
    m = native_module()
    args = (1, 1, 1, 1, 0, 0, 0, 0, False, 1.0, 1, 0)
    with pytest.raises(ValueError, match="channels_last"):
        m.upfirdn2d(to_native(x), to_native(f), to_native(torch.empty(1, 4, 6, 6)), *args)
    with pytest.raises(ValueError, match="contiguous"):
        m.upfirdn2d(to_native(x.transpose(2, 3)), to_native(f), to_native(torch.empty_like(x)), *args)
    y = torch.empty_like(x)
    m.upfirdn2d(to_native(x), to_native(f), to_native(y), *args)
    assert torch.equal(y, x)


@pytest.mark.parametrize(
    "up,down,pad,filt",
    [
        ([2, 2], [1, 1], [2, 1, 2, 1], "F4"),
        ([1, 1], [2, 2], [1, 1, 1, 1], "F4"),
        ([3, 1], [1, 2], [1, -1, 0, 2], "rand2d"),
        ([1, 2], [2, 1], [0, 1, 1, 0], "sep"),
    ],
)
def test_gradcheck_float64(up, down, pad, filt):
    torch.manual_seed(0)
    f = {"F4": ops.setup_filter([1, 3, 3, 1]), "rand2d": torch.randn(3, 2), "sep": torch.rand(5)}[filt].double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)

    def fn(x):
        return ops.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=True, gain=1.5, impl="native")

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


# --- bad inputs ----------------------------------------------------------------------------------------------

F4 = ops.setup_filter([1, 3, 3, 1])


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_bad_inputs_raise_clear_errors(impl):
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="4 dimensions"):
        ops.upfirdn2d(torch.randn(3, 8, 8), F4, impl=impl)
    with pytest.raises(ValueError, match="1 or 2 dimensions"):
        ops.upfirdn2d(x, torch.ones(1, 2, 2), impl=impl)
    with pytest.raises(TypeError, match="floating-point"):
        ops.upfirdn2d(x.to(torch.int32), F4, impl=impl)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ops.upfirdn2d(x.numpy(), F4, impl=impl)
    with pytest.raises(ValueError, match="factors must be >= 1"):
        ops.upfirdn2d(x, F4, up=0, impl=impl)
    with pytest.raises(ValueError, match="padding must be"):
        ops.upfirdn2d(x, F4, padding=[1, 2, 3], impl=impl)
    with pytest.raises(ValueError, match="output would be empty"):
        ops.upfirdn2d(x, F4, padding=-4, impl=impl)
    with pytest.raises(ValueError, match="too large"):
        ops.upfirdn2d(x, F4, padding=2**31, impl=impl)
    with pytest.raises(ValueError, match="filter is empty"):
        ops.upfirdn2d(x, torch.ones(0, 3), impl=impl)
    with pytest.raises(ValueError, match="gain must be finite"):
        ops.upfirdn2d(x, F4, gain=float("inf"), impl=impl)
    with pytest.raises(ValueError, match="impl must be"):
        ops.upfirdn2d(x, F4, impl="fast")


def test_native_unavailable_is_an_error_not_a_fallback():
    with pytest.raises(RuntimeError, match="impl='native' is not available"):
        ops.upfirdn2d(torch.randn(1, 1, 4, 4, dtype=torch.float16), F4, impl="native")
    # impl=None falls back to the reference for a dtype the native CPU kernels do not take
    y = ops.upfirdn2d(torch.randn(1, 1, 4, 4, dtype=torch.bfloat16), F4, impl=None)
    assert y.dtype == torch.bfloat16


def test_device_mismatch_is_rejected():
    other = "cuda" if torch.cuda.is_available() else "meta"
    with pytest.raises(ValueError, match="is on"):
        ops.upfirdn2d(torch.randn(1, 1, 4, 4, device=other), F4)
    with pytest.raises(ValueError, match="is on"):
        ops.bias_act(torch.randn(2, 3), torch.zeros(3, device=other))


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_empty_noncontiguous_and_nan(impl):
    empty = torch.randn(0, 3, 8, 8)
    assert ops.upsample2d(empty, F4, impl=impl).shape == (0, 3, 16, 16)
    x = torch.randn(2, 3, 9, 8)
    nc = x.transpose(2, 3)  # non-contiguous view, shape [2, 3, 8, 9]
    torch.testing.assert_close(ops.upsample2d(nc, F4, impl=impl), ops.upsample2d(nc.contiguous(), F4, impl=impl))
    x[0, 0, 4, 4] = float("nan")
    y = ops.filter2d(x, F4, impl=impl)
    assert torch.isnan(y[0, 0, 3:6, 3:6]).all()  # NaN spreads over the filter's footprint, not beyond
    assert not torch.isnan(y[0, 1]).any() and not torch.isnan(y[1]).any()


F4_1D = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("kind", ["2d-rank-one", "2d", "1d"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_non_finite_filter_taps_give_what_the_reference_gives(bad, kind, channels_last, cpu_isa):
    """A NaN or infinite tap meets the zero-inserted and padded samples too (0 * inf = NaN): the rank-one split
    and the zero-skipping kernels dropped it (native 9.0, reference NaN)."""
    f = {"2d-rank-one": torch.outer(F4_1D, F4_1D), "2d": torch.rand(3, 4, generator=torch.Generator().manual_seed(1)),
         "1d": F4_1D.clone()}[kind].clone()  # fmt: skip
    f.view(-1)[1] = bad
    x = torch.randn(2, 3, 5, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    geometries = [([1, 1], [1, 1], [1, 1, 1, 1]), ([2, 2], [1, 1], [2, 1, 2, 1]), ([1, 1], [2, 2], [1, 1, 1, 1]),
                  ([2, 1], [1, 2], [3, -1, 0, 2])]  # fmt: skip
    for up, down, pad in geometries:
        nat = ops.upfirdn2d(x, f, up=up, down=down, padding=pad, impl="native")
        ref = ops.upfirdn2d(x, f, up=up, down=down, padding=pad, impl="reference")
        assert torch.equal(torch.isnan(nat), torch.isnan(ref)), (kind, up, down, pad)
        assert torch.equal(nat[~torch.isnan(nat)], ref[~torch.isnan(ref)]), (kind, up, down, pad)


def test_huge_factor_on_an_empty_axis_matches_the_reference():
    """Width 0 with up = 2^31 - 1 raised std::bad_alloc natively; the reference returns zeros."""
    x = torch.randn(1, 2, 3, 0)
    kw = dict(up=[2**31 - 1, 1], padding=[3, 1, 1, 1])
    ref = ops.upfirdn2d(x, F4, impl="reference", **kw)
    torch.testing.assert_close(ops.upfirdn2d(x, F4, impl="native", **kw), ref)
    assert ref.shape == (1, 2, 2, 1)


def test_native_scalar_arguments_are_validated():
    """Every scalar of the raw entry point is checked before a kernel runs, with a ValueError naming it; sizes are
    computed in 64 bits (a wrapped size would be an out-of-bounds write)."""
    m = native_module()
    x, f, y = torch.randn(1, 1, 4, 4), torch.ones(2, 2), torch.empty(1, 1, 3, 3)

    def call(up_x=1, up_y=1, down_x=1, down_y=1, pads=(0, 0, 0, 0), gain=1.0, threads=1):
        m.upfirdn2d(to_native(x), to_native(f), to_native(y), up_x, up_y, down_x, down_y, *pads, False, gain, threads)

    call()
    for kwargs, name in ((dict(up_x=0), "up_x"), (dict(up_y=-3), "up_y"), (dict(down_x=2**31), "down_x"),
                         (dict(down_y=-(2**40)), "down_y"), (dict(pads=(2**40, 0, 0, 0)), "pad_x0"),
                         (dict(pads=(0, 0, 0, -(2**31))), "pad_y1"), (dict(gain=float("nan")), "gain"),
                         (dict(threads=0), "threads")):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            call(**kwargs)
    with pytest.raises(ValueError, match="upsampled size"):  # 4 * 2^29 = 2^31 samples: would wrap in int32
        call(up_x=2**29)


def test_float64_native():
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    y = ops.upsample2d(x, F4, impl="native")
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, ops.upsample2d(x, F4.double(), impl="reference"))


# --- CUDA -----------------------------------------------------------------------------------------------------


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("seed", range(3))
def test_cuda_native_matches_reference(dtype, seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    for _ in range(20):
        case = _random_case(rng)
        case["x"] = case["x"].cuda().to(dtype)
        case["f"] = case["f"].cuda()
        ref = ops.upfirdn2d(**{**case, "x": case["x"].float()}, impl="reference")
        nat = ops.upfirdn2d(**case, impl="native")
        torch.testing.assert_close(nat.float(), ref, atol=tol, rtol=tol)


@cuda_only
def test_cuda_gradcheck():
    f = ops.setup_filter([1, 3, 3, 1], device="cuda").double()
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ops.upsample2d(x, f, impl="native"), (x,))
