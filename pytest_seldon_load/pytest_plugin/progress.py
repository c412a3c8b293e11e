"""Live progress of a load run: one terminal line, rewritten twice a second.

A load test can run for minutes; without a sign of life a user cannot tell a slow server from
a hung test. The line shows elapsed/total time, requests sent, the achieved rate, the p99 of
the last half second and the errors so far.

It must never slow the engine: it runs as the engine's companion, a task on the run's own
event loop that wakes every REFRESH_S, reads the live counters and writes one short line. The
p99 comes from a vectorised pass over the histogram's counts (about 0.1 ms), never from a
per-request hook.

It writes to a duplicate of the terminal taken before pytest starts capturing output, so it
is seen while the test's own output is captured, and it puts the cursor back where pytest's
line was, so pytest's dots and PASSED land where they belong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..durations import format_ms

if TYPE_CHECKING:  # the command line shows progress too, without importing pytest
    import pytest
    from hdrh.histogram import HdrHistogram

    from ..engine import ActiveRun, Companion

REFRESH_S = 0.5
CLEAR_TO_END = "\x1b[K"
UP_ONE_LINE = "\x1b[1A"


def progress_blocker(config: pytest.Config, environ: Mapping[str, str] | None = None) -> str:
    """Why live progress stays off ("" when it may show): it is for a person at a terminal."""
    environ = os.environ if environ is None else environ
    if config.getoption("load_no_progress", default=False):
        return "--load-no-progress"
    if hasattr(config, "workerinput"):
        return "an xdist worker has no terminal of its own"
    if (config.getoption("verbose", default=0) or 0) < 0:
        return "-q"
    if environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        return "CI is set"
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return "no terminal reporter"
    return ""


class TerminalLine:
    """One line below pytest's current one, rewritten in place, then taken away again."""

    def __init__(self, fd: int, column: int, width: int) -> None:
        self.fd = fd
        self.column = column
        self.width = max(20, width)
        self.opened = False

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self.fd, text.encode("utf-8", "replace"))

    def show(self, text: str) -> None:
        text = text[: self.width - 1]
        self._write(("\r" if self.opened else "\n") + text + CLEAR_TO_END)
        self.opened = True

    def close(self) -> None:
        """Erase the line and put the cursor back at the end of pytest's line."""
        if self.opened:
            right = f"\x1b[{self.column}C" if self.column > 0 else ""
            self._write("\r" + CLEAR_TO_END + UP_ONE_LINE + right)
            self.opened = False


class RecentLatency:
    """The p99 of the answers recorded since the previous look (not since the start)."""

    def __init__(self, histogram: HdrHistogram) -> None:
        from .. import hdr  # numpy: loaded with the first run, not when a session starts

        self._counts = hdr.counts_view(histogram)
        self._previous = self._counts.copy()

    def p99(self) -> float:
        from .. import hdr

        now = self._counts.copy()
        recent = now.astype("float64") - self._previous
        self._previous = now
        return float(hdr.percentiles(recent, 99.0))


def progress_text(run: ActiveRun, label: str, recent_p99: float, now: float) -> str:
    """elapsed/total, sent, achieved rate against target, recent p99, errors."""
    total = run.pacer.duration
    if not run.start:
        return f"  {label}  starting"
    elapsed = min(max(0.0, now - run.start), total)
    recorder = run.recorder
    measured = elapsed - run.warmup
    phase = "warm-up " if measured < 0 else ""
    rate = recorder.requests / measured if measured > 0.05 else 0.0
    p99 = format_ms(recent_p99) if recent_p99 == recent_p99 else "-"
    return (
        f"  {label}  {phase}{elapsed:4.1f}/{total:g}s  sent {recorder.requests}  "
        f"{rate:.0f}/s of {run.pacer.profile.rate:g}/s  p99 {p99}  errors {recorder.errors}"
    )


@dataclass
class LiveProgress:
    """Makes a progress companion for each run, all writing to one terminal descriptor.

    `column()` says where the terminal's cursor stands (a line pytest is writing); `flush()`
    empties pytest's own buffer before a progress line is drawn."""

    fd: int
    column: Callable[[], int] = lambda: 0
    flush: Callable[[], None] = lambda: None
    refresh_s: float = REFRESH_S

    def width(self) -> int:
        """The terminal's width; a terminal that does not know it gets $COLUMNS or 100."""
        try:
            columns = os.get_terminal_size(self.fd).columns
        except OSError:
            columns = 0
        if columns <= 0:
            fallback = os.environ.get("COLUMNS", "")
            columns = int(fallback) if fallback.isdigit() else 100
        return columns

    def companion(self, label: str) -> Companion:
        """The companion for one run: enter it with the live ActiveRun on the run's loop."""
        self.flush()
        line = TerminalLine(self.fd, self.column(), self.width())
        refresh_s = self.refresh_s

        from ..engine import while_running  # the run is starting: the engine is loaded

        @contextlib.asynccontextmanager
        async def show_progress(run: ActiveRun) -> AsyncIterator[None]:
            recent = RecentLatency(run.recorder.latency)

            async def refresh() -> None:
                while True:
                    await asyncio.sleep(refresh_s)
                    line.show(progress_text(run, label, recent.p99(), time.perf_counter()))

            try:
                async with while_running(refresh()):
                    yield
            finally:
                line.close()

        return show_progress

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def terminal_progress(config: pytest.Config) -> LiveProgress | None:
    """A LiveProgress on a duplicate of pytest's terminal, or None when it should not show.

    Call it from pytest_configure: output capturing has not started, so file descriptor 1
    is still the terminal, and the duplicate stays the terminal while tests run captured.
    """
    if progress_blocker(config):
        return None
    try:
        if not os.isatty(1):
            return None
        fd = os.dup(1)
    except OSError:
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    writer = getattr(reporter, "_tw", None)

    def column() -> int:
        return int(getattr(writer, "width_of_current_line", 0) or 0)

    def flush() -> None:
        if reporter is not None:
            with contextlib.suppress(Exception):
                reporter.flush()

    return LiveProgress(fd, column, flush)
