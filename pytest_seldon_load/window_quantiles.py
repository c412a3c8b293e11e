"""Each window's percentile with its outliers set aside: the p99 of the model, not of a pause.

At 200 requests a second, a second's p99 is its second-highest request: one stop-the-world
pause, or one request of a heavy tail, sets it, and a rank test over such seconds sees the
pauses, not the model. So each window sets aside its requests above SET_ASIDE_FACTOR times
its own p90 and gives the percentile of the rest.

Why the p90: a pause delays a few requests (at most a few percent of a second's), so it
moves the p99 and never the p90; and the bar is scale free, so a uniformly slower server
moves the p90 and the bar alike and no request crosses it for being slower. One fixed rule
for every window of both runs: under "no change" the windows stay exchangeable, and the
rank test over them stays exact.

What is set aside is counted, not forgotten: a run that sets significantly more aside has a
fatter tail or new pauses, which is a worse p99, and regression.py then compares the raw
percentiles (`more_set_aside`).
"""

from __future__ import annotations

import numpy as np

from .hdr import percentiles
from .rank_test import permutation_sum_p

SET_ASIDE_FACTOR = 3.0
"""Requests above this multiple of their window's p90 are set aside. A lognormal service
time of sigma 0.25 (a steady model server) never reaches it (5 sigma above the median), a
10 ms pause on a 1 ms server always does. benchmarks/regression_power.py chose it
(BENCHMARKS.md)."""


def set_aside_percentiles(
    counts: np.ndarray, values: np.ndarray, q: float, factor: float = SET_ASIDE_FACTOR
) -> tuple[np.ndarray, np.ndarray]:
    """The q-th percentile of each window (row of slot `counts`, `values` naming the
    columns) without its requests above `factor` x the window's p90, and how many of its
    requests each window set aside (nan and 0 for an empty window)."""
    counts = np.asarray(counts, dtype=np.float64)
    bar = factor * percentiles(counts, 90.0, values)
    with np.errstate(invalid="ignore"):
        above = values[None, :] > bar[:, None]  # an empty window's nan bar sets none aside
    kept = np.where(above, 0.0, counts)
    aside = np.where(above, counts, 0.0).sum(axis=-1).astype(np.int64)
    return percentiles(kept, q, values), aside


def more_set_aside(baseline: np.ndarray, current: np.ndarray, confidence: float) -> bool:
    """Did the current run set significantly more requests aside than the baseline (the
    exact one-sided permutation test of the per-window counts)? Then the outliers are the
    change itself, and comparing without them would hide it."""
    return permutation_sum_p(baseline, current) < 1.0 - confidence
