"""One progress reporter for every long command (build-dataset, priors, grids, train, train-rcnn, eval).

Why one helper: a job started from a terminal wants a live bar, but the same job under ``nohup``, a batch
scheduler or CI writes to a file, where a bar is either nothing at all (rich disables itself) or a wall of
control codes. This helper picks the form from where its output goes:

- a terminal: a rich bar (count, elapsed, ETA, and a short ``info`` text such as the loss);
- anything else: one plain line every ``interval`` seconds, e.g.
  ``build: 12/40 scenes, 3.1 s/scene, ETA 1m27s (last tiny_011)``, and a closing line for jobs that ran long
  enough to have printed one. Short jobs (tests, tiny scenes) print nothing in that mode.

The plain lines are INFO records of this module's logger, so they go wherever the ``nerfseg`` log goes (the
CLI's stderr handler, or a Python caller's own logging setup), and both forms follow its level:
``nerfseg --quiet`` (warnings only) hides them, as does a Python caller that configured no INFO logging.
``NERFSEG_PROGRESS=off`` silences both forms; ``NERFSEG_PROGRESS=plain`` forces the plain lines on a terminal;
``NERFSEG_PROGRESS_SECONDS`` sets the interval of the plain lines (default 30 s).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any, Callable, TextIO

DEFAULT_INTERVAL_S = 30.0
ENV_MODE = "NERFSEG_PROGRESS"
ENV_INTERVAL = "NERFSEG_PROGRESS_SECONDS"

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``4s``, ``1m27s``, ``2h05m``: short enough for a log line, exact enough for an ETA."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _plural(unit: str, n: float) -> str:
    return unit if n == 1 or unit.endswith("s") else unit + "s"


def _interval_from_env() -> float:
    raw = os.environ.get(ENV_INTERVAL)
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value > 0 else DEFAULT_INTERVAL_S


class Progress:
    """Progress of ``total`` units of work; use as a context manager and call :meth:`advance` per unit.

    ``label`` starts every line (``build``), ``unit`` names what is counted (``scene``, ``step``).
    ``completed`` counts work done before this call (a resumed job): it shows in the count but not in the
    rate, so the ETA is not flattered by work that took no time now. ``stream`` is where the bar draws and
    whose being a terminal picks the form (default stderr, where the CLI's log handler writes too; stdout
    stays for results); the plain lines go to the logger. ``clock`` and ``interactive`` exist for tests.
    """

    def __init__(self, total: int, label: str, unit: str = "item", *, enabled: bool = True, completed: int = 0,
                 stream: TextIO | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic, interactive: bool | None = None) -> None:
        self.total, self.label, self.unit = int(total), label, unit
        self.done = int(completed)
        self._start_done = int(completed)
        self.stream = stream if stream is not None else sys.stderr
        self.interval = float(interval) if interval is not None else _interval_from_env()
        self.clock = clock
        self.info = ""
        mode = os.environ.get(ENV_MODE, "").strip().lower()
        # INFO off for this logger (``nerfseg --quiet``) hides the bar as well as the lines: both are INFO output
        self.enabled = enabled and mode not in ("off", "0", "no", "false") and logger.isEnabledFor(logging.INFO)
        if interactive is None:
            interactive = mode != "plain" and bool(getattr(self.stream, "isatty", lambda: False)())
        self.interactive = interactive
        self._rich: Any = None
        self._task: Any = None
        self._t0 = self._last = 0.0
        self._printed = False

    # -- context -----------------------------------------------------------------------------------

    def __enter__(self) -> "Progress":
        self._t0 = self._last = self.clock()
        form = "off" if not self.enabled else "a bar" if self.interactive else f"a line every {self.interval:g} s"
        logger.debug("%s: %d %s to do (%d done before), progress: %s", self.label, self.total,
                     _plural(self.unit, self.total), self._start_done, form)
        if self.enabled and self.interactive:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), console=Console(file=self.stream))
            self._rich.start()
            self._task = self._rich.add_task(self.label, total=self.total or None, completed=self.done, info="")
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self.enabled and self._printed and exc_type is None:
            self._emit(self.summary_line(self.clock()))

    # -- reporting ---------------------------------------------------------------------------------

    def advance(self, n: int = 1, info: str | None = None) -> None:
        """``n`` more units done; ``info`` is a short text shown after the count (the last scene, the loss)."""
        self.done += n
        if info is not None:
            self.info = info
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, advance=n, info=self.info)
            return
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(self.line(now))

    def line(self, now: float) -> str:
        """The periodic plain line: ``label: done/total units, rate, ETA`` (+ info)."""
        elapsed = max(now - self._t0, 0.0)
        ran = self.done - self._start_done
        parts = [f"{self.label}: {self.done}/{self.total} {_plural(self.unit, self.total)}"]
        if ran > 0 and elapsed > 0:
            per = elapsed / ran
            parts.append(f"{per:.1f} s/{self.unit}" if per >= 1.0 else f"{1.0 / per:.1f} {_plural(self.unit, 2)}/s")
            parts.append(f"ETA {format_duration(per * max(self.total - self.done, 0))}")
        else:
            parts.append(f"{format_duration(elapsed)} elapsed")
        text = ", ".join(parts)
        return f"{text} ({self.info})" if self.info else text

    def summary_line(self, now: float) -> str:
        elapsed = max(now - self._t0, 0.0)
        return f"{self.label}: {self.done}/{self.total} {_plural(self.unit, self.total)} in {format_duration(elapsed)}"

    def _emit(self, text: str) -> None:
        self._printed = True
        logger.info(text)  # logging's handlers swallow a closed stream's errors: a job never stops for its log
