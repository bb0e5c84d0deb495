import io

from synthcore.progress import Progress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_throttled_and_final_line():
    clock, out = Clock(), io.StringIO()
    with Progress(10, "embed", stream=out, interval=1.0, clock=clock) as bar:
        bar.update(2)  # first update draws
        clock.t += 0.2
        bar.update(2)  # too soon: no new line
        clock.t += 1.0
        bar.update(2)
        clock.t += 0.1
        bar.update(1)  # too soon again: only close() shows 7/10
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # two throttled draws + the final one
    assert lines[0].startswith("embed: [") and " 2/10 " in lines[0]
    assert " 6/10 " in lines[1] and "eta" in lines[1]
    assert " 7/10 " in lines[2] and "70%" in lines[2]


def test_final_state_not_repeated_in_logs():
    clock, out = Clock(), io.StringIO()
    with Progress(3, stream=out, interval=0.0, clock=clock) as bar:
        bar.update(3)  # already draws 3/3; closing must not print the same line again
    assert out.getvalue().count(" 3/3 ") == 1


def test_rate_and_eta():
    clock, out = Clock(), io.StringIO()
    bar = Progress(100, stream=out, interval=0.0, clock=clock)
    clock.t += 10
    bar.update(50)
    line = out.getvalue().strip()
    assert "5.0/s" in line and "eta 0:10" in line and "50/100" in line and "elapsed 0:10" in line


def test_disabled_writes_nothing():
    out = io.StringIO()
    with Progress(3, stream=out, enabled=False) as bar:
        bar.update(3)
    assert out.getvalue() == ""


def test_terminal_redraws_in_place():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out, clock = Tty(), Clock()
    with Progress(4, stream=out, interval=0.0, clock=clock) as bar:
        bar.update(1)
        bar.update(3)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "100%" in text
