"""Entry point of the ``synthcore`` command. Each subcommand lives in its own module with
``add_parser(subparsers)`` and ``run(args) -> int``."""

import argparse
import sys
from typing import List, Optional

from synthcore import __version__
from synthcore.allocator import tune_allocator
from synthcore.cli import convert, demo, embed, generate, info, plot, references, render, variations

COMMANDS = [info, demo, embed, generate, convert, references, variations, render, plot]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthcore",
        description="Synthetic face-dataset generation with native CPU/CUDA kernels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"synthcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what run.jsonl records (the demo calls main)
    if args.command is None:
        parser.print_help()
        return 2
    tune_allocator()
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, TypeError) as exc:
        print(f"synthcore {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
