"""Random calls of every native entry point must never end the process, hang, or disagree with the reference.

Each batch runs in a child process (fuzz_native_worker.py), because the failure being looked for is the process
dying: a signal, libgomp's exit on a nonsense thread count, an abort from an uncaught C++ exception. Bounded and
seeded: the same cases every run; a failing case is named by its seed and index.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthcore._native import is_built, native_module
from tests.conftest import subprocess_env

WORKER = Path(__file__).with_name("fuzz_native_worker.py")
SEEDS = [11, 12, 13, 14]
CASES_PER_BATCH = 250  # about 60 s for all batches on two busy cores
TIMEOUT_S = 240


def test_worker_covers_every_entry_point():
    """A new entry point must get a fuzz case: the worker's case names cover every kernel function."""
    if not is_built():
        pytest.skip("no native module")
    text = WORKER.read_text()
    kernels = {
        name
        for name in dir(native_module())
        if not name.startswith("_") and name not in ("build_info", "set_cpu_isa", "cpu_isa")
    }
    missing = {name for name in kernels if f"M.{name}(" not in text}
    assert not missing, f"no fuzz case calls {sorted(missing)}"


@pytest.mark.parametrize("seed", SEEDS)
def test_random_native_calls(seed):
    if not is_built():
        pytest.skip("no native module")
    try:
        proc = subprocess.run(
            [sys.executable, "-W", "ignore", str(WORKER), str(seed), str(CASES_PER_BATCH)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=subprocess_env(),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"fuzz batch {seed} hung (over {TIMEOUT_S} s)")
    assert proc.returncode == 0, (
        f"fuzz batch {seed} ended the process (exit status {proc.returncode}; negative = signal):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[-1].get("done") == CASES_PER_BATCH, f"batch {seed} did not finish: {proc.stdout[-2000:]}"
    disagreements = [line for line in lines if "error" in line]
    assert not disagreements, f"native and reference disagree: {disagreements}"


def _threads_calls(threads):
    """One valid call of every entry point that takes a thread count, with the given count."""
    import torch

    from synthcore.ops._backend import to_native as n

    x = torch.randn(2, 3, 4, 5)
    xl = x.contiguous(memory_format=torch.channels_last)
    d = torch.rand(2, 3)
    f = torch.ones(2, 2)
    acc = tuple(torch.zeros(4, dtype=t) for t in (torch.float64,) * 3 + (torch.float32,) * 2 + (torch.int64,) * 2)
    m = native_module()
    return {
        "upfirdn2d": lambda: m.upfirdn2d(n(x), n(f), n(torch.empty(2, 3, 3, 4)), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0,
                                         threads),
        "upfirdn2d (channels_last)": lambda: m.upfirdn2d(
            n(xl), n(f), n(torch.empty(2, 3, 3, 4, memory_format=torch.channels_last)), 1, 1, 1, 1, 0, 0, 0, 0,
            False, 1.0, threads),
        "bias_act": lambda: m.bias_act(n(x), None, None, n(torch.empty_like(x)), 0, 2, 0.2, 1.0, -1.0, 0, threads),
        "pairwise_epilogue": lambda: m.pairwise_epilogue(n(torch.rand(3, 4)), None, None, None, None,
                                                         tuple(n(a) for a in acc), None, 0, 0, 0, 1.4, 1.0, 1.4,
                                                         0.999999, False, 0, False, False, threads),
        "pairwise_sparse_accumulate": lambda: m.pairwise_sparse_accumulate(
            n(torch.rand(2, 3)), n(torch.rand(3, 4)), n(torch.rand(2, 4)), n(torch.zeros(2, 4)), None, threads),
        "langevin": lambda: m.langevin(None, None, None, n(torch.empty(3, 4)), 0.0, 1.0, 0.0, 0.0, 1, 0, 0, True,
                                       threads),
        "modconv_epilogue": lambda: m.modconv_epilogue(n(x), n(d), None, None, n(torch.empty_like(x)), 2, 0.2, 1.0,
                                                       -1.0, threads),
        "modconv_epilogue_grad": lambda: m.modconv_epilogue_grad(
            n(torch.randn_like(x)), n(x), n(d), None, None, n(torch.empty_like(x)), n(torch.empty(2, 3)),
            n(torch.empty(2, 3)), 2, 0.2, 1.0, -1.0, threads),
        "modconv_scale_grad": lambda: m.modconv_scale_grad(n(torch.randn_like(x)), n(x), n(d), n(torch.empty_like(x)),
                                                           n(torch.empty(2, 3)), threads),
    }  # fmt: skip


def test_every_entry_point_refuses_a_nonsense_thread_count():
    """threads <= 0 reached `omp parallel num_threads(...)` and libgomp ended the process; now each entry point
    raises ValueError naming the argument (checked in the same process: a regression would kill the test run)."""
    if not is_built():
        pytest.skip("no native module")
    for call in _threads_calls(2).values():
        call()  # the valid call works
    for threads in (0, -1, -(2**40), 2**40):
        for name, call in _threads_calls(threads).items():
            with pytest.raises(ValueError, match="threads"):
                call()
                pytest.fail(f"{name} accepted threads={threads}")
