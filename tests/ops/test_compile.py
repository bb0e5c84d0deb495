"""The native ops are torch.library custom ops with fake kernels and autograd, so torch.compile can trace them."""

import pytest
import torch

from synthcore import ops

F4 = ops.setup_filter([1, 3, 3, 1])


def _layer(x, b):
    y = ops.upsample2d(x, F4, impl="native")
    y = ops.bias_act(y, b, act="lrelu", clamp=256.0, impl="native")
    return ops.downsample2d(y, F4, impl="native")


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_forward_and_backward(backend):
    torch._dynamo.reset()
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    compiled = torch.compile(_layer, backend=backend, fullgraph=True)
    y_c = compiled(x, b)
    y_e = _layer(x, b)
    torch.testing.assert_close(y_c, y_e)
    gx_c, gb_c = torch.autograd.grad(y_c.square().sum(), (x, b))
    gx_e, gb_e = torch.autograd.grad(y_e.square().sum(), (x, b))
    torch.testing.assert_close(gx_c, gx_e)
    torch.testing.assert_close(gb_c, gb_e)


def test_opcheck():
    """torch.library's own consistency checks: schema, fake kernel, autograd registration."""
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    torch.library.opcheck(torch.ops.synthcore.upfirdn2d.default, (x, F4, [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0))
    torch.library.opcheck(torch.ops.synthcore.bias_act.default, (x, b, 1, 2, 0.2, 1.41, 256.0))
    torch.library.opcheck(torch.ops.synthcore.bias_act.default, (x, None, 0, 8, 0.0, 1.0, -1.0))


def test_identity_ops_compile():
    """A Langevin step built from the pairwise and update ops traces with fullgraph=True."""

    def step(e, w):
        res = ops.pairwise(e, r0=1.4, exclude_self=True, impl="native")
        return ops.langevin_update(w, -res.grad, dt=0.1, eta=0.01, seed=2**63 + 5, step=1, impl="native"), res.energy

    torch._dynamo.reset()
    e, w = torch.randn(64, 16), torch.randn(64, 16)
    w_c, energy_c = torch.compile(step, backend="aot_eager", fullgraph=True)(e, w)
    w_e, energy_e = step(e, w)
    torch.testing.assert_close(w_c, w_e)
    torch.testing.assert_close(energy_c, energy_e)
