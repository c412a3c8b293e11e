"""The run's timeline cut into N-second windows, each window's percentile read from its
seconds' histograms added exactly: what a budget "in every 10s" judges.

A whole-run p99 of a long soak can hide ten bad seconds among an hour of good ones; the same
budget held in every window cannot. Windows count from the first measured second; the last one
may be shorter than the others and is judged like them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hdr import percentiles, slot_counts, slot_values_ms
from .result import LoadResult


@dataclass(frozen=True)
class WindowPercentile:
    """One window: its first and last second, and its latency and service percentiles (ms)."""

    first: int
    last: int
    latency: float
    service: float

    @property
    def seconds(self) -> str:
        """How a message names it: ``seconds 20-29`` (from the end of the warm-up)."""
        return (
            f"second {self.first}"
            if self.first == self.last
            else (f"seconds {self.first}-{self.last}")
        )


def window_percentiles(result: LoadResult, q: float, seconds: int) -> list[WindowPercentile]:
    """The q-th percentile of every `seconds`-second window of the timeline that holds an
    answer, in time order."""
    if seconds < 1:
        raise ValueError(f"a window is at least 1 second, got {seconds}")
    latency: dict[int, np.ndarray] = {}
    service: dict[int, np.ndarray] = {}
    last: dict[int, int] = {}
    for window in result.windows:
        start = (max(window.second, 0) // seconds) * seconds
        latency[start] = latency.get(start, 0) + window.latency_counts()
        service[start] = service.get(start, 0) + slot_counts(window.service)
        last[start] = max(last.get(start, start), window.second)
        window.compact()  # keep an hour of windows a few hundred bytes each
    starts = [s for s in sorted(latency) if np.sum(latency[s]) > 0]
    if not starts:
        return []
    values = slot_values_ms()
    at = {
        "latency": percentiles(np.stack([latency[s] for s in starts]), q, values),
        "service": percentiles(np.stack([service[s] for s in starts]), q, values),
    }
    return [
        WindowPercentile(
            start,
            min(last[start], start + seconds - 1),
            float(at["latency"][i]),
            float(at["service"][i]),
        )
        for i, start in enumerate(starts)
    ]
