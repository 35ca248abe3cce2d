"""nerfseg.progress: the plain periodic lines a long job logs when its output is not a terminal."""

from __future__ import annotations

import io
import logging
from typing import Callable

import pytest

from nerfseg.progress import Progress, format_duration


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The INFO lines of nerfseg.progress so far (the CLI's handler would print them to stderr)."""
    caplog.set_level(logging.INFO, logger="nerfseg.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "nerfseg.progress" and r.levelno == logging.INFO]


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_every_interval_with_rate_and_eta(logged: Callable[[], list[str]]) -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress(40, "build", "scene", stream=out, interval=10, clock=clock) as bar:
        assert not bar.interactive  # a StringIO is not a terminal
        for i in range(12):
            clock.t += 3.125  # exact in binary: the arithmetic below is exact too
            bar.advance(info=f"last tiny_{i:03d}")
    lines = logged()
    assert out.getvalue() == ""  # the lines are log records, not writes to the bar's stream
    # a line whenever 10 s passed since the last one: after scenes 4 (12.5 s), 8 (25 s), 12 (37.5 s);
    # ETA = 3.125 s x scenes left (36, 32, 28)
    assert lines[:3] == ["build: 4/40 scenes, 3.1 s/scene, ETA 1m52s (last tiny_003)",
                         "build: 8/40 scenes, 3.1 s/scene, ETA 1m40s (last tiny_007)",
                         "build: 12/40 scenes, 3.1 s/scene, ETA 1m28s (last tiny_011)"]
    assert lines[3:] == ["build: 12/40 scenes in 38s"]  # the closing line
    assert len(lines) == 4


def test_fast_units_show_a_rate_and_resumed_work_does_not_flatter_the_eta(logged: Callable[[], list[str]]) -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress(1000, "radiance", "step", stream=out, interval=5, clock=clock, completed=500) as bar:
        for _ in range(80):
            clock.t += 0.0625
            bar.advance(info="loss 0.0100")
    first = logged()[0]
    # 80 steps in 5 s done now (the 500 of an earlier run took no time here): 16 steps/s, 420 left -> 26 s
    assert first == "radiance: 580/1000 steps, 16.0 steps/s, ETA 26s (loss 0.0100)"


def test_short_jobs_and_disabled_progress_print_nothing(monkeypatch: pytest.MonkeyPatch, logged: Callable[[], list[str]]) -> None:
    out, clock = io.StringIO(), FakeClock()
    with Progress(3, "eval", "scene", stream=out, interval=10, clock=clock) as bar:
        for _ in range(3):
            clock.t += 1
            bar.advance()
    assert logged() == []  # under one interval: no line, no closing line
    monkeypatch.setenv("NERFSEG_PROGRESS", "off")
    with Progress(3, "eval", "scene", stream=out, interval=1, clock=clock) as bar:
        for _ in range(3):
            clock.t += 5
            bar.advance()
    assert logged() == []


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch, logged: Callable[[], list[str]]) -> None:
    monkeypatch.setenv("NERFSEG_PROGRESS_SECONDS", "2")
    out, clock = io.StringIO(), FakeClock()
    with Progress(5, "priors", "scene", stream=out, clock=clock) as bar:
        clock.t += 2
        bar.advance()
    assert logged()[0] == "priors: 1/5 scenes, 2.0 s/scene, ETA 8s"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_rich_bar(logged: Callable[[], list[str]]) -> None:
    out = Tty()
    with Progress(2, "grids", "scene", stream=out) as bar:
        assert bar.interactive and bar._rich is not None
        bar.advance(2)
    assert "grids" in out.getvalue()


def test_a_quiet_log_hides_bar_and_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="nerfseg.progress")  # what `nerfseg --quiet` sets
    out, clock = Tty(), FakeClock()
    with Progress(2, "grids", "scene", stream=out, interval=1, clock=clock) as bar:
        assert not bar.enabled and bar._rich is None
        clock.t += 5
        bar.advance(2)
    assert out.getvalue() == "" and not [r for r in caplog.records if r.name == "nerfseg.progress"]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (4.2, 87, 3600 + 5 * 60 + 3)] == ["4s", "1m27s", "1h05m"]
    assert format_duration(float("inf")) == "?"
