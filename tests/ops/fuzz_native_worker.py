"""One batch of random calls of every native entry point, run in a child process by test_fuzz_native.py.

Usage: ``python fuzz_native_worker.py SEED COUNT``. Each case draws an entry point of ``synthcore._native``'s
module and random scalars (negative, zero, huge, NaN) and tensors (empty, tiny, wrong rank). A call may raise any
Python exception (that is the module refusing bad input); it must not end the process. When a call succeeds on
finite inputs its result is compared with a plain-torch reference. Prints one JSON line per disagreement and a
final ``{"done": COUNT}``; a crash shows up in the parent as a signal, an exit code or a missing "done" line.
"""

import json
import math
import random
import sys

import torch

from synthcore import ops
from synthcore._native import native_module
from synthcore.ops._backend import to_native

M = native_module()
BIG = [2**31 - 1, 2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1]
ACT_NAMES = list(ops.ACTIVATIONS)


def pick_int(r: random.Random, typical: list) -> int:
    """Usually a sensible value, sometimes zero, negative or huge."""
    u = r.random()
    if u < 0.7:
        return r.choice(typical)
    if u < 0.8:
        return r.choice([0, -1, -2, -(2**31), -(2**62)])
    return r.choice(BIG)


def pick_float(r: random.Random, typical: list) -> float:
    u = r.random()
    if u < 0.8:
        return r.choice(typical)
    return r.choice([0.0, -1.0, -1e30, 1e30, float("nan"), float("inf"), -float("inf"), 1e-300])


def pick_threads(r: random.Random) -> int:
    return pick_int(r, [1, 2, 2, 3])


def rand_tensor(r: random.Random, shape, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(r.randrange(2**31))
    return torch.randn(*shape, generator=g, dtype=dtype)


def finite(*values) -> bool:
    for v in values:
        if isinstance(v, torch.Tensor):
            if not bool(torch.isfinite(v).all()):
                return False
        elif isinstance(v, float) and not math.isfinite(v):
            return False
    return True


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    if a.shape != b.shape:
        return False
    a, b = a.detach(), b.detach()
    scale = max(1.0, float(b.abs().max())) if b.numel() and bool(torch.isfinite(b).all()) else 1.0
    return bool(torch.allclose(a.double(), b.double(), atol=tol * scale, rtol=tol, equal_nan=True))


# --- one generator per entry point: returns (call, check) where check(result) -> error string or None ---------


def case_upfirdn2d(r: random.Random):
    dtype = r.choice([torch.float32, torch.float64])
    n, c = r.choice([0, 1, 2]), r.choice([1, 3])
    h, w = r.choice([0, 1, 3, 5]), r.choice([0, 1, 4, 6])
    x = rand_tensor(r, (n, c, h, w), dtype)
    if r.random() < 0.3 and x.numel():
        x = x.contiguous(memory_format=torch.channels_last)
    taps = r.choice([1, 2, 3, 4])
    f = rand_tensor(r, (taps, taps) if r.random() < 0.5 else (taps,), dtype)
    if r.random() < 0.15:
        f.view(-1)[r.randrange(f.numel())] = r.choice([float("nan"), float("inf"), -float("inf")])
    up = [pick_int(r, [1, 2, 3]) for _ in range(2)]
    down = [pick_int(r, [1, 2, 3]) for _ in range(2)]
    pad = [pick_int(r, [0, 1, 2, -1]) for _ in range(4)]
    gain = pick_float(r, [1.0, 4.0, 0.5])
    flip = r.random() < 0.5
    threads = pick_threads(r)
    fw = f.shape[-1]
    fh = f.shape[0]
    # The output the caller would allocate; a nonsense geometry gets a small (wrong) output instead.
    ok_geom = all(1 <= v <= 64 for v in up + down) and all(abs(p) <= 64 for p in pad)
    if ok_geom:
        span_w, span_h = w * up[0] + pad[0] + pad[1], h * up[1] + pad[2] + pad[3]
        out_h, out_w = (span_h - fh) // down[1] + 1, (span_w - fw) // down[0] + 1
        ok_geom = out_h >= 0 and out_w >= 0 and span_w >= fw and span_h >= fh
    if not ok_geom:
        out_h, out_w = r.choice([0, 1, 2]), r.choice([0, 1, 2])
    fmt = torch.channels_last if not x.is_contiguous() else torch.contiguous_format
    y = torch.empty(n, c, max(out_h, 0), max(out_w, 0), dtype=dtype, memory_format=fmt)

    def call():
        M.upfirdn2d(to_native(x), to_native(f), to_native(y), up[0], up[1], down[0], down[1], *pad, flip, gain,
                    threads)  # fmt: skip
        return y

    def check(out):
        if not (ok_geom and finite(gain)):
            return None
        ref = ops.upfirdn2d_reference(x, f, up, down, pad, flip, gain)
        if finite(f) and not close(out, ref, 1e-4):
            return "upfirdn2d differs from the reference"
        if not finite(f) and not torch.equal(torch.isnan(out), torch.isnan(ref)):  # the non-finite-filter rule
            return "upfirdn2d: NaN pattern differs from the reference for a non-finite filter"
        return None

    return call, check


def case_bias_act(r: random.Random):
    dtype = r.choice([torch.float32, torch.float64])
    shape = r.choice([(0,), (5,), (2, 3), (2, 3, 4), (1, 2, 3, 2)])
    x = rand_tensor(r, shape, dtype)
    dim = pick_int(r, [0, 1, len(shape) - 1])
    use_b = r.random() < 0.6
    b = rand_tensor(r, (shape[dim] if 0 <= dim < len(shape) else r.choice([1, 3]),), dtype) if use_b else None
    act = pick_int(r, list(range(9)))
    alpha = pick_float(r, [0.2, 0.0, 0.5])
    gain = pick_float(r, [1.0, math.sqrt(2), 0.3])
    clamp = pick_float(r, [-1.0, 256.0, 0.5])
    order = pick_int(r, [0, 0, 1, 2])
    m = rand_tensor(r, shape, dtype) if order != 0 or r.random() < 0.2 else None
    out = torch.empty_like(x)
    threads = pick_threads(r)

    def call():
        M.bias_act(to_native(x), None if b is None else to_native(b), None if m is None else to_native(m),
                   to_native(out), dim, act, alpha, gain, clamp, order, threads)  # fmt: skip
        return out

    def check(res):
        if order != 0 or not 0 <= act < 9 or not finite(alpha, gain) or math.isnan(clamp):
            return None
        name = ACT_NAMES[act]
        ref = ops.bias_act_reference(x, b, dim, name, alpha, gain, None if clamp < 0 else clamp)
        return None if close(res, ref, 1e-4) else f"bias_act {name} differs from the reference"

    return call, check


def case_langevin(r: random.Random):
    dtype = r.choice([torch.float32, torch.float64])
    rows, dim = r.choice([0, 1, 3, 7]), r.choice([0, 1, 4, 9])
    w, F, avg = rand_tensor(r, (rows, dim), dtype), rand_tensor(r, (rows, dim), dtype), rand_tensor(r, (dim,), dtype)
    out = torch.empty(rows, dim, dtype=dtype)
    dt, mu = pick_float(r, [0.1, 0.0, 1.0]), pick_float(r, [1.0, 0.5])
    k_l, eta = pick_float(r, [0.1, 0.0]), pick_float(r, [0.01, 1.0])
    seed = r.choice([0, 5, 2**63 + 5, 2**64 - 1])
    step, row_offset = pick_int(r, [0, 1, 100]), pick_int(r, [0, 3])
    noise_only = r.random() < 0.3
    threads = pick_threads(r)

    def call():
        M.langevin(None if noise_only else to_native(w), None if noise_only else to_native(F), to_native(avg)
                   if not noise_only else None, to_native(out), dt, mu, k_l, eta, seed, step, row_offset, noise_only,
                   threads)  # fmt: skip
        return out

    def check(res):
        if not (0 <= step < 2**32 and 0 <= row_offset < 2**40):
            return None
        xi = ops.langevin.langevin_noise_reference(rows, dim, seed, step, row_offset, dtype, torch.device("cpu"))
        if noise_only:
            ref = xi
        else:
            if not (finite(dt, mu, k_l, eta) and dt >= 0 and mu > 0):
                return None
            ref = w + dt / mu * (F + k_l * (avg - w)) + math.sqrt(dt) / mu * eta * xi
        return None if close(res, ref, 1e-4) else "langevin differs from the reference"

    return call, check


def _modconv_tensors(r, dtype):
    n, c, h, w = r.choice([0, 1, 2]), r.choice([1, 3]), r.choice([1, 3]), r.choice([1, 4])
    t = rand_tensor(r, (n, c, h, w), dtype)
    if r.random() < 0.3:
        t = t.contiguous(memory_format=torch.channels_last)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    d = rand_tensor(r, (n, c), acc).abs() + 0.1 if r.random() < 0.7 else None
    noise = rand_tensor(r, (r.choice([1, max(n, 1)]), h * w), dtype) if r.random() < 0.5 else None
    bias = rand_tensor(r, (c,), dtype) if r.random() < 0.6 else None
    return t, d, noise, bias, acc


def _epilogue_reference(t, d, noise, bias, act, alpha, gain, clamp):
    z = t.double()
    n, c, h, w = t.shape
    if d is not None:
        z = z * d.double()[:, :, None, None]
    if noise is not None:
        z = z + noise.double().reshape(noise.shape[0], 1, h, w)
    if bias is not None:
        z = z + bias.double()[None, :, None, None]
    return z


def case_modconv_epilogue(r: random.Random):
    dtype = r.choice([torch.float32, torch.float64])
    t, d, noise, bias, _ = _modconv_tensors(r, dtype)
    out = torch.empty_like(t)
    act, alpha, gain = pick_int(r, list(range(9))), pick_float(r, [0.2, 0.0]), pick_float(r, [1.0, 1.4])
    clamp, threads = pick_float(r, [-1.0, 0.7, 256.0]), pick_threads(r)

    def call():
        M.modconv_epilogue(to_native(t), *(None if v is None else to_native(v) for v in (d, noise, bias)),
                           to_native(out), act, alpha, gain, clamp, threads)  # fmt: skip
        return out

    def check(res):
        if not (0 <= act < 9 and finite(alpha, gain)) or math.isnan(clamp):
            return None
        z = _epilogue_reference(t, d, noise, bias, act, alpha, gain, clamp)
        ref = ops.bias_act_reference(z, None, 1, ACT_NAMES[act], alpha, gain, None if clamp < 0 else clamp)
        return None if close(res, ref, 1e-4) else f"modconv_epilogue {ACT_NAMES[act]} differs from the reference"

    return call, check


def case_modconv_epilogue_grad(r: random.Random):
    dtype = r.choice([torch.float32, torch.float64])
    t, d, noise, bias, acc = _modconv_tensors(r, dtype)
    gy = rand_tensor(r, t.shape, dtype).contiguous(memory_format=torch.channels_last if not t.is_contiguous() else
                                                   torch.contiguous_format)  # fmt: skip
    gt = torch.empty_like(t)
    gd, gsum = torch.empty(t.shape[:2], dtype=acc), torch.empty(t.shape[:2], dtype=acc)
    act, alpha, gain = pick_int(r, list(range(9))), pick_float(r, [0.2, 0.0]), pick_float(r, [1.0, 1.4])
    clamp, threads = pick_float(r, [-1.0, 0.7, 256.0]), pick_threads(r)

    def call():
        M.modconv_epilogue_grad(to_native(gy), to_native(t), *(None if v is None else to_native(v) for v in (d, noise,
                                bias)), to_native(gt), to_native(gd), to_native(gsum), act, alpha, gain, clamp,
                                threads)  # fmt: skip
        return gt, gd, gsum

    def check(res):
        if not (0 <= act < 9 and finite(alpha, gain)) or math.isnan(clamp):
            return None
        z = _epilogue_reference(t, d, noise, bias, act, alpha, gain, clamp).requires_grad_(True)
        y = ops.bias_act_reference(z, None, 1, ACT_NAMES[act], alpha, gain, None if clamp < 0 else clamp)
        (gz,) = torch.autograd.grad(y, z, gy.double())
        ref_gt = gz if d is None else gz * d.double()[:, :, None, None]
        ok = close(res[0], ref_gt, 1e-4) and close(res[1], (gz * t.double()).sum((2, 3)), 1e-4)
        ok = ok and close(res[2], gz.sum((2, 3)), 1e-4)
        return None if ok else f"modconv_epilogue_grad {ACT_NAMES[act]} differs from the reference"

    return call, check


def case_modconv_scale_grad(r: random.Random):
    dtype = r.choice([torch.float32, torch.float64])
    x, _, _, _, acc = _modconv_tensors(r, dtype)
    fmt = torch.channels_last if not x.is_contiguous() else torch.contiguous_format
    g = rand_tensor(r, x.shape, dtype).contiguous(memory_format=fmt)
    s = rand_tensor(r, x.shape[:2], acc)
    gx, gs = torch.empty_like(x), torch.empty(x.shape[:2], dtype=acc)
    threads = pick_threads(r)

    def call():
        M.modconv_scale_grad(to_native(g), to_native(x), to_native(s), to_native(gx), to_native(gs), threads)
        return gx, gs

    def check(res):
        ok = close(res[0], g.double() * s.double()[:, :, None, None], 1e-4)
        ok = ok and close(res[1], (g.double() * x.double()).sum((2, 3)), 1e-4)
        return None if ok else "modconv_scale_grad differs from the reference"

    return call, check


def case_pairwise(r: random.Random):
    """The pairwise epilogue and sparse accumulation through the public op (their tile bookkeeping lives there),
    with random scalars straight into the raw epilogue as well."""
    metric = r.choice(["angle", "l2"])
    # In one dimension every angle is 0 or pi, where arccos has no derivative: the angle metric needs two or more.
    n, d = r.choice([1, 2, 5, 9]), r.choice([2, 3, 8] if metric == "angle" else [1, 3, 8])
    Q = rand_tensor(r, (n, d))
    r0 = r.choice([0.5, 1.4, 3.0])
    tile = r.choice([2, 4, 2048])

    def call():
        S = rand_tensor(r, (r.choice([0, 1, 3]), r.choice([0, 1, 4])))
        rows, cols = S.shape
        acc = [torch.zeros(rows + 2, dtype=t) for t in (torch.float64,) * 3 + (torch.float32,) * 2 + (torch.int64,) * 2]
        q_sq, k_sq = torch.ones(rows + 2), torch.ones(cols + 2)
        try:
            M.pairwise_epilogue(to_native(S), to_native(q_sq), to_native(k_sq), None, None,
                                tuple(to_native(a) for a in acc), None, pick_int(r, [0, 1]), pick_int(r, [0, 1]),
                                pick_int(r, [0, 1]), pick_float(r, [1.4]), pick_float(r, [1.0]),
                                pick_float(r, [1.4]), pick_float(r, [0.999999]), r.random() < 0.5,
                                pick_int(r, [0, 1]), False, False, pick_threads(r))  # fmt: skip
        except (ValueError, TypeError):
            pass
        A = rand_tensor(r, (r.choice([0, 2]), r.choice([0, 3])))
        K = rand_tensor(r, (A.shape[1], d))
        Fr = torch.zeros(A.shape[0], d)
        try:
            M.pairwise_sparse_accumulate(to_native(A), to_native(K), to_native(Q[: A.shape[0]].contiguous()) if
                                         A.shape[0] <= n else to_native(rand_tensor(r, (A.shape[0], d))),
                                         to_native(Fr), None, pick_threads(r))  # fmt: skip
        except (ValueError, TypeError):
            pass
        return ops.pairwise(Q, metric=metric, r0=r0, exclude_self=True, tile=tile, impl="native")

    def check(res):
        ref = ops.pairwise_reference(Q, metric=metric, r0=r0, exclude_self=True)
        ok = close(res.energy, ref.energy, 1e-3) and close(res.grad, ref.grad, 1e-3)
        return None if ok else f"pairwise {metric} differs from the reference"

    return call, check


CASES = [
    case_upfirdn2d,
    case_bias_act,
    case_langevin,
    case_modconv_epilogue,
    case_modconv_epilogue_grad,
    case_modconv_scale_grad,
    case_pairwise,
]


def main(seed: int, count: int) -> None:
    torch.set_num_threads(2)
    failures = 0
    for i in range(count):
        r = random.Random(seed * 1_000_003 + i)
        make = CASES[i % len(CASES)]
        call, check = make(r)
        try:
            result = call()
        except Exception:  # a refusal (ValueError, TypeError, ...) is the module doing its job
            continue
        err = check(result)
        if err:
            failures += 1
            print(json.dumps({"seed": seed, "case": i, "entry": make.__name__, "error": err}), flush=True)
    print(json.dumps({"done": count, "failures": failures}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
