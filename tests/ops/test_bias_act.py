import json

import numpy as np
import pytest
import torch

from synthcore import ops
from tests.conftest import cuda_only

ACTS = list(ops.ACTIVATIONS)


def test_testdata_cases_cover_every_activation(testdata):
    cases = json.loads((testdata / "stylegan2" / "ops_cases.json").read_text())["cases"]
    acts = {c["args"]["act"] for c in cases if c["op"] == "bias_act.bias_act"}
    assert acts == set(ACTS)


@pytest.mark.parametrize("impl", ["reference", "native"])
def test_matches_testdata(testdata, impl, cpu_isa):
    data = np.load(testdata / "stylegan2" / "ops_reference.npz")
    cases = json.loads((testdata / "stylegan2" / "ops_cases.json").read_text())["cases"]
    cases = [c for c in cases if c["op"] == "bias_act.bias_act"]
    assert len(cases) == 46
    for case in cases:
        args = {k: v for k, v in case["args"].items() if k != "impl"}
        x = torch.from_numpy(data[case["inputs"]["x"]])
        bkey = case["inputs"].get("b")
        b = torch.from_numpy(data[bkey]) if bkey else None
        y = ops.bias_act(x, b, impl=impl, **args)
        torch.testing.assert_close(y, torch.from_numpy(data[case["output"]]), atol=1e-4, rtol=1e-4, msg=case["name"])


CONFIGS = [
    dict(shape=(4, 8, 5, 7), dim=1),
    dict(shape=(3, 6), dim=1),  # fully connected layer: bias per element of a row
    dict(shape=(2, 3, 40), dim=2),
    dict(shape=(5, 4, 33), dim=0),
    dict(shape=(2, 64, 16, 16), dim=1),  # large enough to use threads
    dict(shape=(7,), dim=0),
]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_native_matches_reference(act, cfg, cpu_isa):
    torch.manual_seed(cfg)
    c = CONFIGS[cfg]
    x = torch.randn(c["shape"]) * 3
    b = torch.randn(c["shape"][c["dim"]])
    for kwargs in (dict(), dict(gain=0.7, clamp=1.3), dict(alpha=0.1, gain=1.0), dict(clamp=0.0)):
        for bias in (b, None):
            ref = ops.bias_act(x, bias, dim=c["dim"], act=act, impl="reference", **kwargs)
            nat = ops.bias_act(x, bias, dim=c["dim"], act=act, impl="native", **kwargs)
            torch.testing.assert_close(nat, ref, atol=1e-6, rtol=1e-5, msg=f"{act} {c} {kwargs}")


@pytest.mark.parametrize("act", ACTS)
def test_backward_matches_reference(act):
    torch.manual_seed(0)
    x0 = torch.randn(3, 5, 4, 6) * 2
    b0 = torch.randn(5)
    gy = torch.randn(3, 5, 4, 6)
    for kwargs in (dict(), dict(gain=0.7, clamp=1.3)):
        grads = []
        for impl in ("reference", "native"):
            x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
            (ops.bias_act(x, b, act=act, impl=impl, **kwargs) * gy).sum().backward()
            grads.append((x.grad, b.grad))
        torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grads[1][1], grads[0][1], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("act", ACTS)
def test_second_order_matches_reference(act):
    torch.manual_seed(1)
    x0 = torch.randn(2, 4, 3, 3, dtype=torch.float64) * 2
    b0 = torch.randn(4, dtype=torch.float64)
    results = []
    for impl in ("reference", "native"):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        y = ops.bias_act(x, b, act=act, gain=1.3, clamp=2.0, impl=impl)
        (gx,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
        gx.pow(2).sum().backward()
        results.append((x.grad, b.grad))
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])


@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_float64(act):
    torch.manual_seed(2)
    # keep samples away from the kinks of relu/lrelu/elu/selu, where finite differences are meaningless
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    x = (x + 0.1 * torch.sign(x)).requires_grad_(True)
    b = (torch.randn(3, dtype=torch.float64) * 0.01).requires_grad_(True)

    def fn(x, b):
        return ops.bias_act(x, b, act=act, gain=1.1, clamp=10.0, impl="native")

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_bad_inputs_raise_clear_errors(impl):
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="unknown activation"):
        ops.bias_act(x, act="gelu", impl=impl)
    with pytest.raises(ValueError, match="entries"):
        ops.bias_act(x, torch.randn(4), impl=impl)
    with pytest.raises(ValueError, match="out of range"):
        ops.bias_act(x, torch.randn(3), dim=3, impl=impl)
    with pytest.raises(ValueError, match="1 dimensions"):
        ops.bias_act(x, torch.randn(3, 1), impl=impl)
    with pytest.raises(TypeError, match="dtype"):
        ops.bias_act(x, torch.randn(3, dtype=torch.float64), impl=impl)
    with pytest.raises(TypeError, match="floating-point"):
        ops.bias_act(x.long(), impl=impl)
    with pytest.raises(ValueError, match="clamp"):
        ops.bias_act(x, clamp=-1, impl=impl)
    with pytest.raises(ValueError, match="finite"):
        ops.bias_act(x, gain=float("nan"), impl=impl)


@pytest.mark.parametrize("impl", ["native", "reference"])
@pytest.mark.parametrize("act", ACTS)
def test_nan_passes_through(impl, act):
    x = torch.tensor([[float("nan"), 1.0, -1.0]])
    y = ops.bias_act(x, torch.zeros(3), act=act, clamp=5.0, impl=impl)
    assert torch.isnan(y[0, 0]) and not torch.isnan(y[0, 1:]).any()


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_empty_and_noncontiguous(impl):
    assert ops.bias_act(torch.randn(0, 4, 3), torch.randn(4), act="lrelu", impl=impl).shape == (0, 4, 3)
    x = torch.randn(4, 6, 5).transpose(0, 2)  # [5, 6, 4] non-contiguous
    b = torch.randn(6)
    torch.testing.assert_close(
        ops.bias_act(x, b, act="swish", impl=impl), ops.bias_act(x.contiguous(), b, act="swish", impl="reference")
    )


def test_negative_dim_and_float64():
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(
        ops.bias_act(x, b, dim=-1, act="tanh", impl="native"), ops.bias_act(x, b, dim=2, act="tanh", impl="reference")
    )


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("act", ACTS)
def test_cuda_matches_reference(dtype, act):
    torch.manual_seed(0)
    x = torch.randn(4, 16, 9, 9, device="cuda") * 2
    b = torch.randn(16, device="cuda")
    tol = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    ref = ops.bias_act(x, b, act=act, clamp=3.0, impl="reference")
    nat = ops.bias_act(x.to(dtype), b.to(dtype), act=act, clamp=3.0, impl="native")
    torch.testing.assert_close(nat.float(), ref, atol=tol, rtol=tol)
    xg = x[:1, :2, :2, :2].double().clone().requires_grad_(True)
    bg = b[:2].double()
    assert torch.autograd.gradcheck(lambda v: ops.bias_act(v, bg, act=act, impl="native"), (xg,))
