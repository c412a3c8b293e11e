"""Stop a run early when the server is failing (``seldon-load run --abort-on-error-rate``).

A run against a broken deployment should not keep hammering it for its full hour: this
companion watches the answers of the last WINDOW_S seconds on the run's own event loop and
stops the run once their error rate exceeds the limit. The result keeps what was measured
and says why it stopped (`LoadResult.aborted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from ..engine import ActiveRun, while_running

WINDOW_S = 5.0
"""How far back the error rate is taken."""
CHECK_S = 0.5
MIN_ANSWERS = 10
"""Fewer answers than this in the window are too few to judge (one failure of one)."""


@dataclass
class ErrorRateAbort:
    """A companion: ``run_load(..., companion=ErrorRateAbort(0.5))``; `reason` after a stop."""

    max_rate: float
    window_s: float = WINDOW_S
    check_s: float = CHECK_S
    min_answers: int = MIN_ANSWERS
    reason: str = field(default="", init=False)

    def __call__(self, run: ActiveRun) -> contextlib.AbstractAsyncContextManager[None]:
        return while_running(self._watch(run))

    async def _watch(self, run: ActiveRun) -> None:
        recorder = run.recorder
        samples = deque([(time.perf_counter(), recorder.ok, recorder.errors)])
        while True:
            await asyncio.sleep(self.check_s)
            now = time.perf_counter()
            samples.append((now, recorder.ok, recorder.errors))
            while len(samples) > 2 and samples[1][0] <= now - self.window_s:
                samples.popleft()
            _, ok_then, errors_then = samples[0]
            errors = recorder.errors - errors_then
            answered = recorder.ok - ok_then + errors
            if answered >= self.min_answers and errors / answered > self.max_rate:
                self.reason = (
                    f"error rate {errors / answered:.1%} ({errors} of {answered} answers in "
                    f"the last {min(now - samples[0][0], self.window_s):.1f}s) exceeded "
                    f"--abort-on-error-rate {self.max_rate:g}"
                )
                run.stop()
                return
