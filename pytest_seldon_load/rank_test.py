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
    return strata_p_value(((n, m),), u2)


@functools.lru_cache(maxsize=64)
def _strata_p_by_distance(sizes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """As `_p_by_distance`, for the sum of the U of independent strata (sizes n_s, m_s).

    Each stratum's U is symmetric about n_s·m_s / 2, so their sum is symmetric about half the
    total, and the two-sided p-value is again a tail of the distance from the centre.
    """
    if len(sizes) == 1:
        return _p_by_distance(*sizes[0])
    probabilities = np.ones(1)
    for n, m in sizes:
        probabilities = np.convolve(probabilities, _u_distribution(n, m))
    total = probabilities.size - 1
    distance = np.abs(2 * np.arange(total + 1) - total)
    by_distance = np.bincount(distance, weights=probabilities, minlength=total + 1)
    p = np.minimum(np.cumsum(by_distance[::-1])[::-1], 1.0)
    p.setflags(write=False)
    return p


def strata_p_value(sizes: tuple[tuple[int, int], ...], u2: np.ndarray | int) -> np.ndarray:
    """Two-sided exact p-value of the summed U (twice it: `u2`) of strata of these sizes."""
    pairs = sum(n * m for n, m in sizes)
    distance = np.abs(np.asarray(u2, dtype=np.int64) - pairs)
    return _strata_p_by_distance(tuple(sorted(sizes)))[np.minimum(distance, pairs)]


def smallest_p(n_baseline: int, n_current: int) -> float:
    """The smallest two-sided p-value these sizes can give (no overlap at all)."""
    return min(1.0, 2.0 / math.comb(n_baseline + n_current, n_baseline))


def smallest_strata_p(sizes: tuple[tuple[int, int], ...]) -> float:
    """The smallest two-sided p-value a stratified test of these sizes can give."""
    return min(1.0, 2.0 * math.prod(1.0 / math.comb(n + m, n) for n, m in sizes))


def _check(sample: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(sample, dtype=float).ravel()
    if values.size == 0:
        raise ValueError(f"the {name} sample is empty")
    if values.size > MAX_SAMPLE:
        raise ValueError(f"the {name} sample has {values.size} values; at most {MAX_SAMPLE}")
    if not np.isfinite(values).all():
        raise ValueError(f"the {name} sample holds a value that is not finite")
    return values


def rank_shift(
    baseline: np.ndarray,
    current: np.ndarray,
    confidence: float,
    *,
    baseline_strata: np.ndarray | None = None,
    current_strata: np.ndarray | None = None,
) -> ShiftEstimate:
    """The shift that best aligns current with baseline, and every shift the test accepts.

    The interval is [low, high]; the p-value is the test's at shift 0. `low > 0 or high < 0`
    exactly when `p_value < 1 - confidence`.

    With strata (one label per value, both sides), values are only compared within their
    stratum: U sums the strata's U (exact: the convolution of their distributions) and the
    shift is the median of the within-stratum differences. A stratum only one side has
    tells nothing about a shift and is left out.
    """
    x, y = _check(baseline, "baseline"), _check(current, "current")
    groups = _strata(x, y, baseline_strata, current_strata)
    sizes = tuple((xs.size, ys.size) for xs, ys in groups)
    if not sizes:
        raise ValueError("no stratum holds values of both samples")
    alpha = 1.0 - confidence
    differences = np.sort(
        np.concatenate([(ys[:, None] - xs[None, :]).ravel() for xs, ys in groups])
    )
    total = differences.size
    shift = float(np.median(differences))
    points = np.unique(differences)
    # At a pairwise difference D: U just below it counts every pair with y - x >= D, just
    # above it every pair with y - x > D; a break of the ties at D gives any U in between.
    above = 2 * (total - np.searchsorted(differences, points, side="right"))
    at_or_above = 2 * (total - np.searchsorted(differences, points, side="left"))
    least_favourable = np.clip(total, above, at_or_above)  # 2U nearest the centre
    accepted = np.flatnonzero(strata_p_value(sizes, least_favourable) >= alpha)
    low = float(points[accepted[0]]) if accepted.size else shift
    high = float(points[accepted[-1]]) if accepted.size else shift
    # Beyond every difference U is its maximum (below) or 0 (above): open ends if even that
    # passes.
    if strata_p_value(sizes, 2 * total) >= alpha:
        low = -math.inf
    if strata_p_value(sizes, 0) >= alpha:
        high = math.inf
    above0 = 2 * (total - int(np.searchsorted(differences, 0.0, side="right")))
    at_or_above0 = 2 * (total - int(np.searchsorted(differences, 0.0, side="left")))
    p_value = float(strata_p_value(sizes, min(max(total, above0), at_or_above0)))
    method = METHOD if len(sizes) == 1 else f"{METHOD}, {len(sizes)} strata"
    return ShiftEstimate(shift, min(low, shift), max(high, shift), p_value, method)


def _strata(
    x: np.ndarray,
    y: np.ndarray,
    x_strata: np.ndarray | None,
    y_strata: np.ndarray | None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (baseline, current) values of each stratum both sides hold, in label order."""
    if x_strata is None and y_strata is None:
        return [(x, y)]
    if x_strata is None or y_strata is None:
        raise ValueError("strata must be given for both samples or neither")
    xl, yl = np.asarray(x_strata).ravel(), np.asarray(y_strata).ravel()
    if xl.size != x.size or yl.size != y.size:
        raise ValueError(
            f"strata must label every value: {xl.size} labels for {x.size} baseline values, "
            f"{yl.size} for {y.size} current values"
        )
    shared = np.intersect1d(xl, yl)
    return [(x[xl == label], y[yl == label]) for label in shared]


MAX_PERMUTATION_TOTAL = 5000
"""The largest total a permutation of counts is enumerated over; larger counts are divided
(each by the same factor, rounded down) first: a statistic of the values still, so exact."""


def permutation_sum_p(baseline: np.ndarray, current: np.ndarray) -> float:
    """One-sided exact permutation p-value that the current sample's counts are larger: the
    share of all ways to pick the current sample's size from the pooled counts whose sum
    reaches the current sample's.

    Why not the U test: counts of rare events are mostly 0, and ties that many leave the
    rank test nearly blind; the sum keeps the size of every count. Exact for any counts
    under "the samples are exchangeable": each value's side is a random draw.
    """
    x = np.asarray(baseline, dtype=np.int64).ravel()
    y = np.asarray(current, dtype=np.int64).ravel()
    if (x < 0).any() or (y < 0).any():
        raise ValueError("counts must not be negative")
    values = np.concatenate([x, y])
    total = int(values.sum())
    if total > MAX_PERMUTATION_TOTAL:
        values = values // math.ceil(total / MAX_PERMUTATION_TOTAL)
        total = int(values.sum())
    observed = int(values[x.size :].sum())
    if observed == 0:
        return 1.0
    m = y.size
    # ways[j, s]: subsets of j values so far with sum s (floats: counts reach 1e35)
    ways = np.zeros((m + 1, total + 1))
    ways[0, 0] = 1.0
    for value in values:
        shifted = np.zeros_like(ways)
        shifted[1:, value:] = ways[:-1, : total + 1 - value]
        ways += shifted
    return float(min(1.0, ways[m, observed:].sum() / ways[m].sum()))
