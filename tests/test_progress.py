import io

import pytest

from synthcore import progress
from synthcore.progress import Progress, is_quiet, set_quiet


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _not_quiet():
    set_quiet(False)
    yield
    set_quiet(False)


def test_log_lines_are_throttled_with_a_final_line():
    clock, out = Clock(), io.StringIO()
    with Progress(10, "embed", stream=out, interval=1.0, clock=clock) as bar:
        bar.update(2)  # first update draws
        clock.t += 0.2
        bar.update(2)  # too soon: no new line
        clock.t += 1.0
        bar.update(2)
        clock.t += 0.1
        bar.update(1)  # too soon again: only close() shows 7/10
    text = out.getvalue()
    assert "\r" not in text  # a log gets whole lines, never in-place redraws
    lines = text.splitlines()
    assert len(lines) == 3  # two throttled draws + the final one
    assert lines[0].startswith("embed:") and " 2/10 " in lines[0] and "20%" in lines[0]
    assert " 6/10 " in lines[1]
    assert " 7/10 " in lines[2] and "70%" in lines[2]


def test_final_state_not_repeated_in_logs():
    clock, out = Clock(), io.StringIO()
    with Progress(3, stream=out, interval=0.0, clock=clock) as bar:
        bar.update(3)  # already draws 3/3; closing must not print the same state again
    assert out.getvalue().count(" 3/3 ") == 1


def test_rate_and_eta_in_tqdm_format():
    clock, out = Clock(), io.StringIO()
    bar = Progress(100, stream=out, interval=0.0, clock=clock, unit="img")
    clock.t += 10
    bar.update(50)
    line = out.getvalue().strip()
    # elapsed 10 s < eta 10 s, 5 images per second
    assert "50/100" in line and "00:10<00:10" in line and "5.00img/s" in line and "50%" in line


def test_updates_clamped_at_total():
    out = io.StringIO()
    with Progress(4, stream=out, interval=0.0, clock=Clock()) as bar:
        bar.update(3)
        bar.update(3)
        assert bar.done == 4
    assert " 4/4 " in out.getvalue() and "100%" in out.getvalue()


def test_disabled_writes_nothing():
    out = io.StringIO()
    with Progress(3, stream=out, enabled=False) as bar:
        bar.update(3)
    assert out.getvalue() == ""
    tty = Tty()
    with Progress(3, stream=tty, enabled=False) as bar:
        bar.update(3)
    assert tty.getvalue() == ""


def test_set_quiet_silences_every_bar():
    assert not is_quiet()
    set_quiet(True)
    assert is_quiet() and progress.is_quiet()
    out, tty = io.StringIO(), Tty()
    for stream in (out, tty):
        with Progress(5, "render", stream=stream, interval=0.0, clock=Clock()) as bar:
            bar.update(5)
    assert out.getvalue() == "" and tty.getvalue() == ""
    set_quiet(False)
    with Progress(5, "render", stream=out, interval=0.0, clock=Clock()) as bar:
        bar.update(5)
    assert "5/5" in out.getvalue()


def test_terminal_redraws_in_place():
    out = Tty()
    with Progress(4, "render", stream=out, interval=0.0) as bar:
        bar.update(1)
        bar.update(3)
    text = out.getvalue()
    assert text.count("\r") >= 2  # tqdm redraws the same line
    assert text.endswith("\n") and text.count("\n") == 1  # one line in the end
    assert "render:" in text and "4/4" in text and "100%" in text


def test_close_is_idempotent_and_updates_after_close_are_ignored():
    out = io.StringIO()
    bar = Progress(2, stream=out, interval=0.0, clock=Clock())
    bar.update(1)
    bar.close()
    before = out.getvalue()
    bar.update(1)
    bar.close()
    assert out.getvalue() == before and before.count("\n") == 1 and " 1/2 " in before
