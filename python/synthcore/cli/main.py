"""Entry point of the ``synthcore`` command. Each subcommand lives in its own module with
``add_parser(subparsers)`` and ``run(args) -> int``; what they share is in :mod:`synthcore.cli.toolkit`."""

import argparse
import sys
from typing import List, Optional

from synthcore import __version__
from synthcore.allocator import tune_allocator
from synthcore.cli import convert, demo, embed, generate, info, models, plot, references, render, toolkit, variations
from synthcore.progress import set_quiet

COMMANDS = [info, demo, embed, generate, convert, references, variations, render, plot, models]


def build_parser() -> argparse.ArgumentParser:
    parser = toolkit.Parser(
        prog="synthcore",
        description="Synthetic face-dataset generation with native CPU/CUDA kernels.",
        formatter_class=toolkit.HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"synthcore {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=toolkit.Parser)
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
    set_quiet(bool(getattr(args, "quiet", False)))  # every progress bar of the process, the demo's steps included
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except toolkit.user_errors() as exc:
        return toolkit.report_error(args.command, exc, args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
