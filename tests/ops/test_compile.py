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
    """torch.library's own consistency checks (schema, fake kernel, autograd registration) for every op outside
    modconv (tests/ops/test_modconv.py has its own), the backward ops included. upfirdn2d's backward is upfirdn2d
    itself, with the factors swapped."""
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    g = torch.randn(2, 3, 6, 5, requires_grad=True)
    torch.library.opcheck(torch.ops.synthcore.upfirdn2d.default, (x, F4, [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0))
    torch.library.opcheck(torch.ops.synthcore.upfirdn2d.default, (x, F4, [1, 1], [2, 2], [1, 1, 1, 1], True, 1.0))
    x_nhwc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    torch.library.opcheck(torch.ops.synthcore.upfirdn2d.default, (x_nhwc, F4, [1, 1], [1, 1], [2, 1, 2, 1], False, 1.0))
    torch.library.opcheck(torch.ops.synthcore.bias_act.default, (x, b, 1, 2, 0.2, 1.41, 256.0))
    torch.library.opcheck(torch.ops.synthcore.bias_act.default, (x, None, 0, 8, 0.0, 1.0, -1.0))
    for act in (2, 3, 8):  # lrelu, tanh, swish: first derivatives (themselves differentiable once more)
        torch.library.opcheck(torch.ops.synthcore.bias_act_grad.default, (g, x, b, 1, act, 0.2, 1.3, 2.0, 1))
    # The second derivative is differentiable in its incoming gradient only (no third order).
    torch.library.opcheck(
        torch.ops.synthcore.bias_act_grad.default, (g, x.detach(), b.detach(), 1, 3, 0.0, 1.3, 2.0, 2)
    )


def test_opcheck_identity_ops():
    """The pairwise and Langevin ops return their own gradients / updates and are not differentiable: schema and
    fake kernel checks (inputs without requires_grad)."""
    q, keys = torch.randn(7, 4), torch.randn(5, 4)
    groups_q, groups_k = torch.tensor([0, 0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 2])
    torch.library.opcheck(torch.ops.synthcore.pairwise.default, (q, None, None, None, 0, 1.4, 1.0, 1.4, True, 0,
                                                                 True, 2048))  # fmt: skip
    torch.library.opcheck(torch.ops.synthcore.pairwise.default, (q, keys, groups_q, groups_k, 1, 2.0, 0.5, 1.0,
                                                                 False, 0, True, 3))  # fmt: skip
    w, force, avg = torch.randn(6, 8), torch.randn(6, 8), torch.randn(8)
    torch.library.opcheck(torch.ops.synthcore.langevin_update.default, (w, force, avg, 0.1, 1.0, 0.1, 0.01,
                                                                        str(2**63 + 5), 3, 0))  # fmt: skip
    torch.library.opcheck(torch.ops.synthcore.langevin_update.default, (w, force, None, 0.0, 2.0, 0.0, 0.5, "7",
                                                                        0, 11))  # fmt: skip


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
