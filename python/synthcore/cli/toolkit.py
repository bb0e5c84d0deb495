"""What every ``synthcore`` command shares: parsers and help, option types, the device, the op implementation,
model files, the run-record options, and how errors reach the user.

Commands import this module and never each other (``identity_common`` holds the options of the two identity
commands and imports only this).

Errors
    A command raises :class:`UserError` (or a ``ValueError`` / ``OSError``, which loaders raise for bad files)
    for anything the user can cause by a file or an option, with a message naming that file or option. The entry
    point prints it as one line, ``synthcore <command>: error: <message>``, and exits 1; ``--debug`` prints the
    traceback as well. Anything else is a bug and keeps its traceback. Bad option syntax (argparse) is one line too
    and exits 2.
"""

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, NoReturn, Optional, Tuple, Type

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEVICE_HELP",
    "HelpFormatter",
    "Parser",
    "UserError",
    "add_command",
    "add_device_option",
    "add_impl_option",
    "check_at_least",
    "crop_of",
    "finite_float",
    "impl_of",
    "model_file",
    "options_of",
    "recorded_model_file",
    "report_error",
    "resolve_device",
    "samples_generator",
    "user_errors",
]

DEVICE_HELP = "cpu, cuda, cuda:1, ... (default: auto = cuda if a GPU is visible, else cpu)"


class UserError(ValueError):
    """A bad option or input file: reported as one line naming it, without a traceback (``--debug`` shows one).

    A ``ValueError`` so that library code catching those keeps working.
    """


def user_errors() -> Tuple[Type[BaseException], ...]:
    """Exception types the entry point reports as one line: the user caused them, the code is not at fault.

    ``ValueError`` and ``OSError`` are what loaders and checks raise for bad files and options (with the name in
    the message); the run directory's lock refusal and running out of GPU memory are situations, not bugs.
    """
    from synthcore.dataset.rundir import RunDirLocked

    types: Tuple[Type[BaseException], ...] = (ValueError, OSError, RunDirLocked, MemoryError)
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return types + ((oom,) if oom is not None else ())


def report_error(command: str, exc: BaseException, debug: bool) -> int:
    """Print ``exc`` as ``synthcore <command>: error: ...`` (with its traceback when ``debug``); the exit status."""
    if debug:
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    message = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever the message holds
    print(f"synthcore {command}: error: {message}", file=sys.stderr)
    return 1


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" where the help does not already state the default and there is one to state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``<prog>: error: ...``, exit status 2) instead of the usage
    block followed by the message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_command(
    sub: Any, name: str, *, help: str, description: Optional[str] = None, quiet: bool = True
) -> argparse.ArgumentParser:
    """A command's parser with the shared help format and the common options ``--quiet`` and ``--debug``."""
    p = sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    # SUPPRESS: absent here, the top-level ``synthcore --debug`` value stands.
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error"
    )
    return p


def finite_float(text: str) -> float:
    """argparse type of every float option: a finite number (``nan`` and ``inf`` would silently ruin a run)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def resolve_device(name: str, option: str = "--device") -> "torch.device":
    """The torch device of a ``--device`` value: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (which must exist)."""
    import torch

    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"{option} {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise UserError(f"{option} {name}: synthcore runs on cpu or cuda devices")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (dev.index or 0) >= visible:
        raise UserError(f"{option} {name}: no such CUDA device ({visible} visible)")
    return dev


def crop_of(name: str) -> Optional[str]:
    """The crop preset a ``--crop`` value names (None for ``none``: the full frame)."""
    from synthcore.align import CROP_PRESETS

    if name == "none":
        return None
    if name not in CROP_PRESETS:
        raise UserError(f"unknown --crop {name!r}; choose none or one of {', '.join(CROP_PRESETS)}")
    return name


def check_at_least(option: str, value: int, low: int) -> None:
    """``option`` must be at least ``low``."""
    if value < low:
        raise UserError(f"{option} must be at least {low}, got {value}")


def add_impl_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--impl",
        choices=["auto", "native", "reference"],
        default="auto",
        help="op implementation: native kernels, pure-torch references, or auto (native where built)",
    )


def impl_of(args: argparse.Namespace) -> Optional[str]:
    """The ``impl`` argument of the ops for ``--impl`` (None: each op's default)."""
    return None if args.impl == "auto" else args.impl


def options_of(args: argparse.Namespace) -> Dict[str, Any]:
    """The parsed options as a plain dict (for the run record): without the plumbing entries."""
    return {k: v for k, v in vars(args).items() if k not in ("run", "command", "argv", "debug")}


def model_file(option: str, given: str) -> Path:
    """The file a model option names: a path to an existing file, or the name of an installed model
    (``synthcore.models``). Raises :class:`UserError` naming ``option`` otherwise."""
    path = Path(given)
    if path.is_file():
        return path
    if path.exists():
        raise UserError(f"{option} {given}: not a file")
    try:
        from synthcore import models
    except ImportError:  # no model registry in this build: paths only
        models = None  # type: ignore[assignment]
    if models is not None and models.is_model_name(given):
        try:
            return Path(models.model_path(given))
        except FileNotFoundError as exc:  # not installed: the message says how to install it
            raise UserError(f"{option} {given}: {exc}") from None
    raise UserError(f"{option} {given}: no such file" + ("" if models is None else " and no model of that name"))


def recorded_model_file(
    kind: str, given: Optional[str], recorded: str, want_sha256: str, ignore_hash: bool, made: str
) -> Path:
    """The model file for ``--<kind>`` (``network``, ``embedder``): ``given``, or the one a collection recorded;
    checked against the recorded SHA-256 (``made``: what was made with it, for the message) unless ``ignore_hash``.
    """
    from synthcore.fileio import sha256_file

    if given is None:
        if not recorded:
            raise UserError(f"the collection records no {kind} file; pass --{kind}")
        path = Path(recorded)
        if not path.is_file():
            raise UserError(f"the collection's {kind} {recorded} is not there; pass --{kind}")
    else:
        path = model_file(f"--{kind}", given)
    if want_sha256 and not ignore_hash:
        got = sha256_file(path)
        if got != want_sha256:
            noun = "generator" if kind == "network" else kind
            raise UserError(
                f"--{kind} {path} (sha256 {got[:12]}...) is not the {noun} {made} (sha256 {want_sha256[:12]}...); "
                "pass --ignore-hash to use it anyway"
            )
    return path


def samples_generator(attrs: Dict[str, Any], given: Optional[str], ignore_hash: bool) -> Path:
    """The generator of a sample collection (its ``attrs``): ``--network`` or the recorded file, hash-checked."""
    recorded, sha = str(attrs.get("generator", "")), str(attrs.get("generator_sha256", ""))
    return recorded_model_file("network", given, recorded, sha, ignore_hash, "the samples were made with")
