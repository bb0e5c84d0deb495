"""A small dependency-free progress bar for long loops (stderr, redrawn at most every ``interval`` s)."""

import sys
import time
from typing import Callable, Optional, TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``with Progress(total, "embed") as bar: ... bar.update(n)``.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) each redraw is a new line, so the
    throttle keeps logs short. The final state is always written on close.
    """

    WIDTH = 24

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: Optional[TextIO] = None,
        interval: float = 0.5,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.enabled = enabled
        self.clock = clock
        self.done = 0
        self.start = clock()
        self._last_draw: Optional[float] = None
        self._drawn_done: Optional[int] = None
        self._closed = False
        isatty = getattr(self.stream, "isatty", None)
        self._inplace = bool(isatty and isatty())

    def line(self) -> str:
        elapsed = self.clock() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        eta = _duration((self.total - self.done) / rate) if rate > 0 and self.done < self.total else "--"
        head = f"{self.label}: " if self.label else ""
        return (
            f"{head}[{bar}] {self.done}/{self.total} {100 * frac:3.0f}% "
            f"{rate:.1f}/s elapsed {_duration(elapsed)} eta {eta}"
        )

    def _draw(self, final: bool = False) -> None:
        if not self.enabled:
            return
        end = "\n" if final or not self._inplace else ""
        prefix = "\r" if self._inplace else ""
        self.stream.write(prefix + self.line() + end)
        self.stream.flush()
        self._last_draw = self.clock()
        self._drawn_done = self.done

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        now = self.clock()
        if self._last_draw is None or now - self._last_draw >= self.interval:
            self._draw()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # In a log (no terminal) the last update may already have printed the final state: don't repeat it.
            if self._inplace or self._drawn_done != self.done:
                self._draw(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
