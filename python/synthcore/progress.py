"""Progress bars for long loops, drawn by tqdm on stderr; quiet in logs, silenced by ``set_quiet(True)``.

On a terminal the bar is a tqdm bar redrawn in place. Elsewhere (a log file, CI) a redrawn bar would be one
endless line of carriage returns, so each redraw is a line of its own in tqdm's format, at most one per
``interval`` seconds, and the final state is written once when the loop ends (not twice if the last update
already showed it). ``set_quiet(True)`` (the commands' ``--quiet``) silences every bar of the process.
"""

import sys
import time
from typing import Callable, Optional, TextIO

from tqdm import tqdm

__all__ = ["Progress", "is_quiet", "set_quiet"]

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (True) or allow (False) every progress bar created from now on in this process."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    """Whether ``set_quiet(True)`` is in force."""
    return _quiet


class _TerminalBar(tqdm):
    # No tqdm monitor thread: our loops update often enough, and a stray thread outlives short commands.
    monitor_interval = 0


class Progress:
    """``with Progress(total, "embed") as bar: ... bar.update(n)``.

    ``enabled=False`` (or ``set_quiet(True)``) writes nothing. ``clock`` times the log lines (tests pass a fake
    one); the terminal bar keeps tqdm's own clock.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: Optional[TextIO] = None,
        interval: float = 0.5,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "it",
    ) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.enabled = enabled and not _quiet
        self.clock = clock
        self.unit = unit
        self.done = 0
        self.start = clock()
        self._last_draw: Optional[float] = None
        self._drawn_done: Optional[int] = None
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        self._terminal: Optional[tqdm] = None
        if self.enabled and isatty is not None and isatty():
            self._terminal = _TerminalBar(
                total=self.total,
                desc=label or None,
                file=self.stream,
                mininterval=interval,
                unit=unit,
                dynamic_ncols=True,
                leave=True,
            )

    def line(self) -> str:
        """The current state in tqdm's format (what a log line shows)."""
        return tqdm.format_meter(
            self.done, self.total, self.clock() - self.start, prefix=self.label, ascii=True, unit=self.unit, ncols=80
        )

    def _log(self) -> None:
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._last_draw = self.clock()
        self._drawn_done = self.done

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done (clamped at ``total``)."""
        n = min(n, self.total - self.done) if self.total else n
        self.done += n
        if not self.enabled or self._closed:
            return
        if self._terminal is not None:
            self._terminal.update(n)
            return
        now = self.clock()
        if self._last_draw is None or now - self._last_draw >= self.interval:
            self._log()

    def close(self) -> None:
        """Write the final state (once) and end the bar."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._terminal is not None:
            self._terminal.close()
        elif self._drawn_done != self.done:  # the last update may already have logged the final state
            self._log()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
