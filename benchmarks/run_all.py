"""Run every registered benchmark module in one process and print one combined table.

Each module in BENCHMARKS lives next to this file and exposes ``run(args) -> list[dict]``; it may also
expose ``add_arguments(parser)`` for options of its own. Adding a benchmark = one line in BENCHMARKS.

    python benchmarks/run_all.py [--device cuda] [--quick] [--only bias_act] [--json out.json]

A module that fails (including a native-vs-reference mismatch) is reported with its traceback, the
others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from types import ModuleType
from typing import Any, Sequence

import _harness as H

# Registry: module names under benchmarks/, run in this order.
BENCHMARKS: list[str] = [
    "bench_upfirdn2d",
    "bench_bias_act",
    "bench_modconv",
    "bench_generator",
    "bench_pairwise",
    "bench_langevin",
]


def _short(name: str) -> str:
    return name[len("bench_") :] if name.startswith("bench_") else name


def _select(only: str | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    by_short = {_short(n): n for n in BENCHMARKS}
    unknown = [w for w in wanted if w not in BENCHMARKS and w not in by_short]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; registered: {[_short(n) for n in BENCHMARKS]}")
    return [w if w in BENCHMARKS else by_short[w] for w in wanted]


def _load(names: Sequence[str]) -> dict[str, ModuleType]:
    # Modules are imported before parsing so their extra options can join the combined parser.
    return {name: importlib.import_module(name) for name in names}


def build_parser(modules: dict[str, ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        parents=[H.common_parser()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated subset of {', '.join(_short(n) for n in BENCHMARKS)}",
    )
    parser.add_argument("--list", action="store_true", help="list registered benchmarks and exit")
    for mod in modules.values():
        add = getattr(mod, "add_arguments", None)
        if add is not None:
            add(parser)
    return parser


def _pre_only(argv: Sequence[str]) -> str | None:
    # --only must be known before the full parse (it decides which modules get imported).
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--only")
    known, _ = pre.parse_known_args(argv)
    return known.only


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = _select(_pre_only(argv))
    modules = _load(names)
    args = build_parser(modules).parse_args(argv)
    if args.list:
        for name, mod in modules.items():
            summary = (mod.__doc__ or "").strip().splitlines()
            print(f"{_short(name):20s} {summary[0] if summary else ''}")
        return 0

    H.configure(args)
    info = H.machine_info()
    H.print_machine_summary(info)

    all_rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    per_module: dict[str, dict[str, Any]] = {}
    for name, mod in modules.items():
        print(f"\n== {name} ==", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rows = mod.run(args)
        except Exception as e:  # noqa: BLE001 - report every failing module, then exit non-zero
            traceback.print_exc()
            failures[name] = f"{type(e).__name__}: {e}"
            continue
        for r in rows:
            r["bench"] = _short(name)
        all_rows += rows
        per_module[name] = {"seconds": time.perf_counter() - t0, "geomean_speedup": H.geomean_speedup(rows)}

    print()
    if all_rows:
        H.print_table(all_rows)
    print()
    for name, stats in per_module.items():
        gm = stats["geomean_speedup"]
        gm_txt = "n/a" if gm is None else f"{gm:.2f}x"
        print(f"{_short(name)}: geometric-mean speed-up {gm_txt}, {stats['seconds']:.1f} s")
    for name, msg in failures.items():
        print(f"FAILED {_short(name)}: {msg}")

    if args.json is not None:
        meta = {"machine": info, "args": H.args_meta(args), "modules": per_module, "failures": failures}
        H.write_json(args.json, all_rows, meta)
        print(f"wrote {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
