"""Shared helpers for the synthcore benchmark scripts.

Every ``bench_*.py`` module exposes ``run(args) -> list[dict]`` (one row per case) and ``main()``.
Rows are plain dicts so they can be printed, combined by ``run_all.py`` and dumped to JSON as-is.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import torch

Outputs = Union[torch.Tensor, Sequence[torch.Tensor]]

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Native vs reference tolerance. float32 is the contract (1e-4); half types round every intermediate
# differently in the two implementations, so they get a looser bound that still catches real bugs.
TOLERANCES = {torch.float32: (1e-4, 1e-4), torch.float16: (1e-2, 1e-2), torch.bfloat16: (5e-2, 2e-2)}


class MismatchError(AssertionError):
    """Native output differs from the reference: the benchmark must not report a number for it."""


# --------------------------------------------------------------------------------------------------
# Timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_call(fn: Callable[[], Any], device: torch.device) -> float:
    """One call of ``fn`` in milliseconds (CUDA events on GPU, so queued async work is charged to it)."""
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def _plan_runs(est_s: float, repeats: int, min_runs: int, min_time_s: float, max_time_s: float, max_runs: int) -> int:
    runs = repeats
    if est_s > 0:
        if runs * est_s > max_time_s:
            runs = int(max_time_s / est_s)
        elif runs * est_s < min_time_s:
            runs = math.ceil(min_time_s / est_s)
    return max(min_runs, min(max_runs, runs))


def time_fns(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = 2,
    repeats: int = 7,
    device: Union[str, torch.device],
    min_runs: int = 5,
    min_time_s: float = 0.3,
    max_time_s: float = 2.0,
    max_runs: int = 1000,
) -> dict[str, dict[str, Any]]:
    """Time several functions with their runs interleaved; return ``{name: time_fn-style dict}``.

    Interleaving (A, B, A, B, ...) spreads clock/thermal drift and allocator state over all of them
    instead of favouring whichever ran first. Each function gets its own adaptive run count.
    """
    device = torch.device(device)
    runs: dict[str, int] = {}
    for name, fn in fns.items():
        # Warm-up doubles as the per-call estimate. Stop warming early for slow calls: one call already
        # pays for lazy init / allocator growth and more would only burn the time budget.
        est_s, warm_total = 0.0, 0.0
        for _ in range(max(1, warmup)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            est_s = time.perf_counter() - t0
            warm_total += est_s
            if warm_total > 0.25 * max_time_s:
                break
        runs[name] = _plan_runs(est_s, repeats, min_runs, min_time_s, max_time_s, max_runs)

    times: dict[str, list[float]] = {name: [] for name in fns}
    _sync(device)
    for i in range(max(runs.values(), default=0)):
        for name, fn in fns.items():
            if i < runs[name]:
                times[name].append(_timed_call(fn, device))

    return {
        name: {
            "median_ms": statistics.median(t),
            "min_ms": min(t),
            "mean_ms": statistics.fmean(t),
            "runs": len(t),
        }
        for name, t in times.items()
    }


def time_fn(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 7,
    device: Union[str, torch.device],
    min_runs: int = 5,
    min_time_s: float = 0.3,
    max_time_s: float = 2.0,
    max_runs: int = 1000,
) -> dict[str, Any]:
    """Time ``fn()`` and return ``{"median_ms", "min_ms", "mean_ms", "runs"}``.

    ``repeats`` is the nominal run count; it is adapted so the timed runs of one case take roughly
    ``min_time_s``..``max_time_s`` (more runs for fast ops to beat timer noise, fewer for slow ones to
    bound the wall time), but never fewer than ``min_runs``.  CPU uses ``time.perf_counter``; CUDA
    uses CUDA events around each call and synchronizes.
    """
    stats = time_fns(
        {"fn": fn},
        warmup=warmup,
        repeats=repeats,
        device=device,
        min_runs=min_runs,
        min_time_s=min_time_s,
        max_time_s=max_time_s,
        max_runs=max_runs,
    )
    return stats["fn"]


# --------------------------------------------------------------------------------------------------
# Settings shared by all benchmark modules


def common_parser() -> argparse.ArgumentParser:
    """Parent parser with the options every benchmark script (and run_all.py) understands."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common benchmark options")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device to run on (default: cpu)")
    g.add_argument("--threads", type=int, default=2, help="torch.set_num_threads(N) (default: 2)")
    g.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write rows + machine info")
    g.add_argument("--quick", action="store_true", help="few small shapes and short timing (smoke test)")
    g.add_argument("--full", action="store_true", help="include the largest shapes even on CPU")
    g.add_argument("--dtype", choices=list(DTYPES), default="float32", help="tensor dtype (default: float32)")
    g.add_argument(
        "--strict",
        action="store_true",
        help="fail when impl='native' is unavailable for a case instead of reporting n/a",
    )
    return p


@dataclass
class Settings:
    device: torch.device
    dtype: torch.dtype
    quick: bool
    full: bool
    strict: bool
    timing: dict[str, Any]

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    @property
    def big_shapes(self) -> bool:
        """Whether to include the largest (1024-generator) shapes: always on GPU, opt-in on CPU."""
        return not self.quick and (self.full or self.device.type == "cuda")


def configure(args: argparse.Namespace) -> Settings:
    """Apply global torch settings from ``args`` (idempotent) and return the resolved settings."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        # Let cuDNN pick its fastest algorithm for the conv-based reference, so the comparison is fair.
        torch.backends.cudnn.benchmark = True
    if args.quick:
        timing = {"warmup": 1, "repeats": 5, "min_time_s": 0.05, "max_time_s": 0.5}
    else:
        timing = {"warmup": 2, "repeats": 7, "min_time_s": 0.3, "max_time_s": 2.0}
    return Settings(
        device=torch.device(args.device),
        dtype=DTYPES[args.dtype],
        quick=args.quick,
        full=args.full,
        strict=args.strict,
        timing=timing,
    )


def import_ops() -> Any:
    """Import ``synthcore.ops`` lazily, so the scripts import (and --help works) without the package."""
    try:
        import synthcore.ops as ops
    except ImportError as e:
        raise SystemExit(
            f"cannot import synthcore.ops ({e}); build/install the package first, e.g. `pip install -e .`"
        ) from e
    return ops


# --------------------------------------------------------------------------------------------------
# Running one case: correctness check, then reference and native timings


def _as_tuple(out: Outputs) -> tuple[torch.Tensor, ...]:
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


def check_close(ref: Outputs, nat: Outputs, *, dtype: torch.dtype, what: str) -> float:
    """Raise MismatchError unless every native output matches the reference; return max abs error."""
    atol, rtol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    refs, nats = _as_tuple(ref), _as_tuple(nat)
    if len(refs) != len(nats):
        raise MismatchError(f"{what}: reference returned {len(refs)} outputs, native {len(nats)}")
    worst = 0.0
    for i, (r, n) in enumerate(zip(refs, nats)):
        if r is None or n is None or r.shape != n.shape:
            shapes = (None if r is None else tuple(r.shape), None if n is None else tuple(n.shape))
            raise MismatchError(f"{what}: output {i} shape reference {shapes[0]} vs native {shapes[1]}")
        r32, n32 = r.detach().float(), n.detach().float()
        err = (r32 - n32).abs().max().item() if r32.numel() else 0.0
        if not torch.allclose(n32, r32, atol=atol, rtol=rtol) or not math.isfinite(err):
            raise MismatchError(
                f"{what}: output {i} native != reference (max abs err {err:.3g}, atol={atol}, rtol={rtol})"
            )
        worst = max(worst, err)
    return worst


def fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def run_case(
    s: Settings,
    *,
    op: str,
    shape: Sequence[int],
    ref_fn: Callable[[], Outputs],
    native_fn: Callable[[], Outputs],
    grad: bool = False,
    case: str = "",
) -> dict[str, Any]:
    """Check ``native_fn()`` against ``ref_fn()`` once, then time both; return one result row.

    Forward-only cases (``grad=False``) run under ``torch.no_grad()``.  If the native kernel is not
    built for this device/dtype (RuntimeError) the row reports n/a, unless ``--strict``.
    """
    what = f"{op} [{fmt_shape(shape)}] {s.device.type}/{s.dtype_name}"
    row: dict[str, Any] = {
        "op": op,
        "shape": fmt_shape(shape),
        "case": case,
        "device": s.device.type,
        "dtype": s.dtype_name,
        "ref_ms": None,
        "native_ms": None,
        "speedup": None,
        "reference": None,
        "native": None,
        "max_abs_err": None,
        "note": "",
    }
    with torch.set_grad_enabled(grad):
        ref_out = ref_fn()
        native_ok = True
        try:
            nat_out = native_fn()
        except RuntimeError as e:
            if s.strict:
                raise
            native_ok = False
            row["note"] = f"native unavailable: {str(e).splitlines()[0][:120]}"
        if native_ok:
            row["max_abs_err"] = check_close(ref_out, nat_out, dtype=s.dtype, what=what)
            del nat_out
        del ref_out

        fns = {"reference": ref_fn, "native": native_fn} if native_ok else {"reference": ref_fn}
        stats = time_fns(fns, device=s.device, **s.timing)
        row["reference"] = stats["reference"]
        row["ref_ms"] = row["reference"]["median_ms"]
        if native_ok:
            row["native"] = stats["native"]
            row["native_ms"] = row["native"]["median_ms"]
            row["speedup"] = row["ref_ms"] / row["native_ms"] if row["native_ms"] > 0 else None
    # Progress on stderr: a full run takes minutes and the table only appears at the end.
    sp = "n/a" if row["speedup"] is None else f"{row['speedup']:.2f}x"
    print(
        f"  {what}: reference {_fmt_ms(row['ref_ms'])} ms, native {_fmt_ms(row['native_ms'])} ms, {sp}",
        file=sys.stderr,
        flush=True,
    )
    return row


def free_memory(s: Settings) -> None:
    """Return cached blocks between big cases so one case's peak doesn't skew the next."""
    if s.device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------
# Reporting


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Software/hardware facts needed to interpret the numbers."""
    info: dict[str, Any] = {
        "timestamp": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch_cuda": torch.version.cuda,
        "git_commit": _git_commit(),
    }
    try:
        import synthcore

        info["synthcore_version"] = getattr(synthcore, "__version__", None)
    except Exception as e:  # noqa: BLE001 - report, don't crash, when the package is broken
        info["synthcore_version"] = f"import failed: {e}"
    try:
        import synthcore._native as native

        info["synthcore_build"] = native.build_info()
    except Exception as e:  # noqa: BLE001 - extension missing/unbuilt is a reportable state
        info["synthcore_build"] = f"unavailable: {e}"
    return info


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v < 1:
        return f"{v:.3f}"
    if v < 100:
        return f"{v:.2f}"
    return f"{v:.1f}"


def print_table(rows: Sequence[dict[str, Any]], file: Any = None) -> None:
    """Print rows as an aligned text table; notes (e.g. native unavailable) are listed underneath."""
    file = file or sys.stdout
    show_case = any(r.get("case") for r in rows)
    header = ["op", "shape"] + (["case"] if show_case else []) + ["device", "dtype"]
    header += ["reference ms", "native ms", "speed-up"]
    body = []
    for r in rows:
        cells = [r["op"], r["shape"]] + ([r.get("case", "")] if show_case else []) + [r["device"], r["dtype"]]
        sp = r.get("speedup")
        cells += [
            _fmt_ms(r.get("ref_ms")),
            _fmt_ms(r.get("native_ms")),
            "n/a" if sp is None else f"{sp:.2f}x",
        ]
        body.append(cells)
    n_text = len(header) - 3  # the last three columns are numbers: right-align them
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i < n_text else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    print(line(header), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for cells in body:
        print(line(cells), file=file)
    # Group identical notes: "native unavailable" usually applies to every case of a dtype/device.
    notes: dict[str, list[str]] = {}
    for r in rows:
        if r.get("note"):
            notes.setdefault(r["note"], []).append(f"{r['op']} [{r['shape']}]")
    for note, where in notes.items():
        print(f"note: {where[0] if len(where) == 1 else f'{len(where)} cases'}: {note}", file=file)
    file.flush()


def geomean_speedup(rows: Sequence[dict[str, Any]]) -> float | None:
    vals = [r["speedup"] for r in rows if r.get("speedup")]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def print_machine_summary(info: dict[str, Any], file: Any = None) -> None:
    file = file or sys.stdout
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    print(
        f"torch {info['torch']}, {info['torch_threads']} threads, CPU {info['cpu_model']}{gpu}",
        file=file,
    )
    print(f"synthcore build: {info.get('synthcore_build')}", file=file)


def write_json(path: Union[str, Path], rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write ``{"meta": ..., "rows": [...]}``; non-JSON values (paths, dtypes) are stringified."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": list(rows)}, fh, indent=2, default=str)
        fh.write("\n")


def args_meta(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def bench_main(
    run: Callable[[argparse.Namespace], list[dict[str, Any]]],
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
    print_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> int:
    """Standard ``main()`` for a single benchmark module: parse, run, print, optionally dump JSON.

    ``print_rows`` replaces the native/reference table for benchmarks whose rows have another shape.
    """
    parser = argparse.ArgumentParser(
        description=description,
        parents=[common_parser()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    configure(args)
    info = machine_info()
    print_machine_summary(info)
    rows = run(args)
    print()
    if print_rows is not None:
        print_rows(rows)
    else:
        print_table(rows)
        gm = geomean_speedup(rows)
        if gm is not None:
            print(f"geometric-mean speed-up: {gm:.2f}x over {sum(1 for r in rows if r.get('speedup'))} cases")
    if args.json is not None:
        write_json(args.json, rows, {"machine": info, "args": args_meta(args)})
        print(f"wrote {args.json}")
    return 0
