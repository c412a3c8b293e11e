"""The Mann-Whitney U test, exact even with ties, and the Hodges-Lehmann shift it inverts to.

Two samples x (baseline) and y (current). For a shift d, U(d) counts the pairs with
y - d > x; under "y - d is like x" every assignment of the pooled values to the two samples
is equally likely, so U(d) follows the exact Mann-Whitney distribution for the two sizes.

Ties. A tie inside one sample never changes U (both tied values are on the same side of every
value of the other sample), so it needs no correction: U is what any way of breaking it gives,
and the untied exact distribution is the exact distribution of the test after breaking ties
at random, which keeps its size. A tie ACROSS the samples at the shift tested (y - d == x)
can be broken either way; the test takes the way least favourable to a significant result
(of all the U values the breaks could give, the one closest to the centre). So a verdict
never rests on how a tie was broken, and the test stays exact-or-conservative.

The interval is every shift the same test does not reject, and the p-value at 0 is that
test's: the interval excludes 0 exactly when p < 1 - confidence. The p-value only falls as U
moves away from its centre and U only falls as d grows, so the accepted shifts are one
interval, bounded by two pairwise differences.

Cost: the null distribution takes n·m steps over n·m + 1 values (cached per pair of sizes);
MAX_SAMPLE bounds it (60 windows a side, the most a comparison uses, take a few ms).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

MAX_SAMPLE = 100
"""The largest sample a side: the exact distribution's cost grows as (n·m)²."""
METHOD = "exact"


@dataclass(frozen=True)
class ShiftEstimate:
    """Hodges-Lehmann shift of current over baseline, its interval and the test's p."""

    shift: float
    low: float
    high: float
    p_value: float
    method: str = METHOD


@functools.lru_cache(maxsize=64)
def _u_distribution(n: int, m: int) -> np.ndarray:
    """P(U = u) for u = 0 .. n·m, with no ties, sizes n and m (a read-only array).

    The number of arrangements with U = u of i x's and j y's: a y placed last is above all i
    x's (adds i), an x placed last adds nothing, so f(i, j) = f(i, j-1) shifted by i +
    f(i-1, j). Every term is a positive count: no cancellation, exact to float rounding.
    """
    size = n * m + 1
    # counts[j] holds f(i, j) for the current i; start with i = 0: one arrangement, U = 0.
    counts = np.zeros((m + 1, size))
    counts[:, 0] = 1.0
    for i in range(1, n + 1):
        # f(i, 0) = 1 at U = 0; f(i, j) = f(i-1, j) + f(i, j-1) shifted by i, which reaches
        # at most U = i·j.
        for j in range(1, m + 1):
            top = i * (j - 1) + 1
            counts[j, i : i + top] += counts[j - 1, :top]
    probabilities = counts[m] / counts[m].sum()
    probabilities.setflags(write=False)
    return probabilities


@functools.lru_cache(maxsize=64)
def _p_by_distance(n: int, m: int) -> np.ndarray:
    """Two-sided p-value for each distance k = |2U - n·m| (k = 0 .. n·m): P(|2U - nm| >= k)."""
    probabilities = _u_distribution(n, m)
    distance = np.abs(2 * np.arange(n * m + 1) - n * m)
    by_distance = np.bincount(distance, weights=probabilities, minlength=n * m + 1)
    tail = np.cumsum(by_distance[::-1])[::-1]
    p = np.minimum(tail, 1.0)
    p.setflags(write=False)
    return p


def u_p_value(n: int, m: int, u2: np.ndarray | int) -> np.ndarray:
    """Two-sided exact p-value of U = u2 / 2 (twice U: a half is possible), sizes n and m."""
    distance = np.abs(np.asarray(u2, dtype=np.int64) - n * m)
    return _p_by_distance(n, m)[np.minimum(distance, n * m)]


def smallest_p(n_baseline: int, n_current: int) -> float:
    """The smallest two-sided p-value these sizes can give (no overlap at all)."""
    return min(1.0, 2.0 / math.comb(n_baseline + n_current, n_baseline))


def _check(sample: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(sample, dtype=float).ravel()
    if values.size == 0:
        raise ValueError(f"the {name} sample is empty")
    if values.size > MAX_SAMPLE:
        raise ValueError(f"the {name} sample has {values.size} values; at most {MAX_SAMPLE}")
    if not np.isfinite(values).all():
        raise ValueError(f"the {name} sample holds a value that is not finite")
    return values


def rank_shift(baseline: np.ndarray, current: np.ndarray, confidence: float) -> ShiftEstimate:
    """The shift that best aligns current with baseline, and every shift the test accepts.

    The interval is [low, high]; the p-value is the test's at shift 0. `low > 0 or high < 0`
    exactly when `p_value < 1 - confidence`.
    """
    x, y = _check(baseline, "baseline"), _check(current, "current")
    n, m = x.size, y.size
    alpha = 1.0 - confidence
    differences = np.sort((y[:, None] - x[None, :]).ravel())
    total = differences.size
    shift = float(np.median(differences))
    points = np.unique(differences)
    # At a pairwise difference D: U just below it counts every pair with y - x >= D, just
    # above it every pair with y - x > D; a break of the ties at D gives any U in between.
    above = 2 * (total - np.searchsorted(differences, points, side="right"))
    at_or_above = 2 * (total - np.searchsorted(differences, points, side="left"))
    least_favourable = np.clip(total, above, at_or_above)  # 2U nearest the centre, n·m
    accepted = np.flatnonzero(u_p_value(n, m, least_favourable) >= alpha)
    low = float(points[accepted[0]]) if accepted.size else shift
    high = float(points[accepted[-1]]) if accepted.size else shift
    # Beyond every difference U is n·m (below) or 0 (above): open ends if even that passes.
    if u_p_value(n, m, 2 * total) >= alpha:
        low = -math.inf
    if u_p_value(n, m, 0) >= alpha:
        high = math.inf
    p_value = float(_p_at_zero(n, m, differences))
    return ShiftEstimate(shift, min(low, shift), max(high, shift), p_value)


def _p_at_zero(n: int, m: int, differences: np.ndarray) -> float:
    total = differences.size
    above = 2 * (total - int(np.searchsorted(differences, 0.0, side="right")))
    at_or_above = 2 * (total - int(np.searchsorted(differences, 0.0, side="left")))
    return float(u_p_value(n, m, min(max(total, above), at_or_above)))
