"""How often assert_no_regression cries wolf, and how often it catches a real slowdown.

Synthetic runs stand in for real ones, so the truth is known: each second of a run draws its
latencies from a server model, and the "current" run's latencies are the model's times
(1 + shift) (with --tail-only, only those above the run's p90: p99 moves, p50 does not).
A/A pairs (shift 0) measure false alarms; +10%, +20% measure detection. The default goes
through the real code path (per-second histograms → compare_runs) at p99, confidence 0.99
and --tolerance (10%).

Server models (200 req/s unless --rate):
  steady       lognormal latencies (median 1 ms, sigma 0.25), calibrated on 10 s runs of the
               local MLServer iris model: per-second p99/p50 of 1.4-2.6.
  disturbed    the same, but one second in five has 2-10% of its requests delayed by an
               extra Exp(2 ms), as in noisy local runs.
  pauses-3s    stop-the-world stalls of 10-30 ms every 3 s (host steal on a CI runner).
  pauses-5s    30-70 ms pauses every 5 s (a garbage-collected server).
  pauses-1s    3-8 ms stalls every second.
  heavy-tail   no pauses; 0.5% of requests take an extra Pareto(1.5) × 2 ms.
  pauses-tail  10-50 ms pauses every 2 s and the heavy tail.
A request that arrives during a pause waits for its end; pauses come every period ±10%, at
a random phase; arrivals are Poisson.

Methods (--methods; the alternatives work on the same pairs, from per-second histograms on a
shared log grid, vectorised with numpy):
  default      the shipped rule: each second's requests above 3x its p90 set aside, the exact
               rank test within disturbance levels of the rest; when the current run sets
               significantly more aside, the plain test on the raw p99
  levels       the rule before: the raw p99, the exact rank test within disturbance levels
  plain        the rule before that: the same test on the raw p99, every second alike
  windows      the plain test on 3-second windows
  two-strata   the stratified test with two levels only (quiet, over twice the typical)
  bootstrap    a block bootstrap over seconds of the pooled p99 (percentile interval)
  permutation  a permutation test over seconds of the pooled p99
  medians      a permutation test on the difference of the per-second p99 medians
  level-p90    levels, comparing p90 (level-p95: p95) in disturbed seconds, p99 in quiet ones
  hd           levels on a Harrell-Davis p99 of each second (a Beta-weighted mean of all its
               order statistics) instead of the raw p99
  trimmed      outliers set aside (3x p90), plain test of the rest (trimmed-2x: 2x p90;
               trimmed-gate05: the count test at 0.05; trimmed-hd: a Harrell-Davis p99 of the
               rest; trimmed-levels, trimmed-2x-levels, trimmed-2.5x-levels: within levels,
               trimmed-levels is the default's rule on the grid; trimmed-levels-ranks: its
               count test on the counts' ranks; ranks-either, sum-either: that count test
               or the default's, then the raw p99 compared plainly or within levels)
  either       a regression when the default or the rule before finds one, each at 0.995

    .venv/bin/python benchmarks/regression_power.py [--trials 200] [--rate 200]
        [--seconds 10 30] [--shifts 0 0.05 0.1 0.2] [--models steady pauses-3s ...]
        [--methods default levels ...] [--tolerance 10%] [--tail-only]
        [--worse tail|pauses] [--repeat N] [--real PAIRS]

--worse gives the current run's server twice (--worse-factor) the tail share or pauses twice
as often (a worse p99 that a method setting outliers aside must still fail; the output says
how much it moves the p99 of a long run); --repeat N makes each side
N independent runs of --seconds, one after the other (repeated short runs combined).

The last column is the median `detectable` the default reported (what the run could have
caught 95 times in 100). --real PAIRS adds A/A pairs of back-to-back real runs against a
local MLServer (needs the `local` extra): what the machine's run-to-run drift does to a
single-run baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from bench_common import print_machine

from pytest_seldon_load.hdr import Packed
from pytest_seldon_load.rank_test import rank_shift, smallest_p, smallest_strata_p
from pytest_seldon_load.regression import compare_runs
from pytest_seldon_load.result import LoadResult, Window, new_histogram

HDR_SUB_BUCKET_MAGNITUDE = 11  # 2048 sub-buckets: 3 significant digits, 1 µs unit


def hdr_slots(values_us: np.ndarray) -> np.ndarray:
    """HdrHistogram's counts index of each value (1 µs .. 1 h, 3 significant digits)."""
    values = np.maximum(values_us.astype(np.int64), 1)
    _, bit_length = np.frexp((values | 2047).astype(np.float64))
    bucket = bit_length.astype(np.int64) - HDR_SUB_BUCKET_MAGNITUDE
    sub_bucket = values >> bucket
    return ((bucket + 1) << 10) + (sub_bucket - 1024)


def histogram_of(values_us: np.ndarray):
    """An HdrHistogram holding `values_us`, filled in one vectorised step."""
    histogram = new_histogram()
    if values_us.size:
        counts = np.bincount(hdr_slots(values_us), minlength=histogram.counts_len)
        np.ctypeslib.as_array(histogram.counts)[:] = counts[: histogram.counts_len]
        used = np.flatnonzero(counts)
        histogram.set_internal_tacking_values(int(used[0]), int(used[-1]), int(counts.sum()))
    return histogram


@dataclass(frozen=True)
class ServerModel:
    """Latencies (ms) of one second of a run."""

    name: str
    median_ms: float = 1.0
    sigma: float = 0.25
    disturbed_share: float = 0.0
    """Share of seconds with a disturbance."""

    def second(self, rng: np.random.Generator, n: int) -> np.ndarray:
        latencies = rng.lognormal(math.log(self.median_ms), self.sigma, n)
        if self.disturbed_share and rng.random() < self.disturbed_share:
            hit = rng.random(n) < rng.uniform(0.02, 0.10)
            latencies[hit] += rng.exponential(2.0 * self.median_ms, int(hit.sum()))
        return latencies

    def run(self, rng: np.random.Generator, rate: float, seconds: int) -> list[np.ndarray]:
        return [self.second(rng, int(rng.poisson(rate))) for _ in range(seconds)]


@dataclass(frozen=True)
class PausingModel:
    """A server that stops the world now and then, with a heavy-tailed service time.

    Service time: lognormal (median 1 ms, sigma 0.25), plus, for `tail_share` of requests, a
    Pareto (Lomax) extra of scale `tail_ms` and index `tail_alpha` (a heavy tail: a few
    requests take 10-100x the median). Pauses: every `period_s` (±10% jitter, random phase)
    the server stalls for a length drawn uniformly in `pause_ms`; a request that arrives during
    a pause waits for its end. Arrivals are Poisson, as the engine's open-loop schedule.
    """

    name: str
    period_s: float = 0.0
    pause_ms: tuple[float, float] = (0.0, 0.0)
    tail_share: float = 0.0
    tail_ms: float = 2.0
    tail_alpha: float = 1.5
    median_ms: float = 1.0
    sigma: float = 0.25

    def run(self, rng: np.random.Generator, rate: float, seconds: int) -> list[np.ndarray]:
        counts = rng.poisson(rate, seconds)
        arrivals = np.concatenate([s + np.sort(rng.random(n)) for s, n in enumerate(counts)])
        latencies = rng.lognormal(math.log(self.median_ms), self.sigma, arrivals.size)
        if self.tail_share:
            hit = rng.random(arrivals.size) < self.tail_share
            latencies[hit] += self.tail_ms * rng.pareto(self.tail_alpha, int(hit.sum()))
        if self.period_s:
            gaps = self.period_s * rng.uniform(0.9, 1.1, int(seconds / self.period_s) + 2)
            starts = rng.uniform(0, self.period_s) + np.concatenate(([0.0], np.cumsum(gaps)))
            ends = starts + rng.uniform(*self.pause_ms, starts.size) / 1000.0
            last = np.searchsorted(starts, arrivals, side="right") - 1
            wait = np.where(last >= 0, ends[np.maximum(last, 0)] - arrivals, 0.0)
            latencies += np.maximum(wait, 0.0) * 1000.0
        return np.split(latencies, np.cumsum(counts)[:-1])


STEADY = ServerModel("steady")
DISTURBED = ServerModel("disturbed", disturbed_share=0.2)
PAUSES_3S = PausingModel("pauses-3s", period_s=3.0, pause_ms=(10.0, 30.0))
"""Host steal as on a shared CI runner: 10-30 ms stalls every 3 s."""
PAUSES_5S = PausingModel("pauses-5s", period_s=5.0, pause_ms=(30.0, 70.0))
"""A garbage-collected server: 30-70 ms stop-the-world pauses every 5 s."""
PAUSES_1S = PausingModel("pauses-1s", period_s=1.0, pause_ms=(3.0, 8.0))
"""Frequent short stalls: 3-8 ms every second (most seconds hold one)."""
HEAVY_TAIL = PausingModel("heavy-tail", tail_share=0.005)
"""No pauses; 0.5% of requests take an extra Pareto(1.5) x 2 ms."""
PAUSES_TAIL = PausingModel("pauses-tail", period_s=2.0, pause_ms=(10.0, 50.0), tail_share=0.005)
"""Both: 10-50 ms pauses every 2 s and the heavy tail."""
MODELS = {
    model.name: model
    for model in (STEADY, DISTURBED, PAUSES_3S, PAUSES_5S, PAUSES_1S, HEAVY_TAIL, PAUSES_TAIL)
}
BURSTY = [PAUSES_3S.name, PAUSES_5S.name, PAUSES_1S.name, HEAVY_TAIL.name, PAUSES_TAIL.name]


def synthetic_run(
    rng: np.random.Generator,
    rate: float,
    seconds: int,
    model: ServerModel | PausingModel = STEADY,
    scale: float = 1.0,
) -> LoadResult:
    """A LoadResult of `seconds` one-second windows at `rate` (Poisson counts), the model's
    latencies times `scale`."""
    return run_of(model.run(rng, rate, seconds), rate, scale)


def run_of(per_second_ms: list[np.ndarray], rate: float, scale: float = 1.0) -> LoadResult:
    """A LoadResult holding these latencies (ms) of each second, times `scale`."""
    windows, every = [], []
    for second, latencies in enumerate(per_second_ms):
        n = int(latencies.size)
        values_us = np.round(latencies * scale * 1000.0)
        every.append(values_us)
        packed = Packed.of_counts(np.bincount(hdr_slots(values_us), minlength=1)) if n else Packed()
        windows.append(Window.packed(second, n, n, 0, packed, packed))
    values = np.concatenate(every)
    total = int(values.size)
    return LoadResult(
        target_rate=rate,
        duration=float(len(per_second_ms)),
        scheduled=total,
        requests=total,
        ok=total,
        latency=histogram_of(values),
        service=histogram_of(values),
        windows=windows,
        arrival="poisson",
    )


# --- the methods compared ------------------------------------------------------------------


@dataclass
class Pair:
    """One baseline/current pair: per-second latencies (ms), and what methods need of them."""

    baseline_ms: list[np.ndarray]
    current_ms: list[np.ndarray]
    rate: float
    tolerance: str
    _runs: tuple[LoadResult, LoadResult] | None = None
    _counts: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def runs(self) -> tuple[LoadResult, LoadResult]:
        """Real LoadResults (per-second HDR histograms), for the shipped code path."""
        if self._runs is None:
            self._runs = (run_of(self.baseline_ms, self.rate), run_of(self.current_ms, self.rate))
        return self._runs

    @property
    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-second counts on a shared log grid (0.2% wide bins): histograms that merge
        exactly, for the alternatives, vectorised."""
        if self._counts is None:
            self._counts = _binned(self.baseline_ms, self.current_ms)
        return self._counts

    @property
    def tolerance_log(self) -> float:
        return math.log1p(float(self.tolerance.rstrip("%")) / 100.0)


Outcome = tuple[bool, float]
"""Flagged as a regression, and the change the method could detect (nan if it does not say)."""

_BIN = math.log(1.002)
_LOWEST = math.log(0.005)
ALPHA = 0.01


def _binned(*runs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    slots = [[np.floor((np.log(s) - _LOWEST) / _BIN).astype(int) for s in run] for run in runs]
    width = max(int(i.max()) for run in slots for i in run if i.size) + 1
    base, current = (np.stack([np.bincount(i, minlength=width) for i in run]) for run in slots)
    return base, current


def _quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """The q-th percentile of each row of binned counts (the bin's middle)."""
    cumulative = np.cumsum(counts, axis=-1)
    target = np.maximum(np.floor(q / 100.0 * cumulative[..., -1:] + 0.5), 1.0)
    index = (cumulative < target - 0.5).sum(-1)
    return np.exp(_LOWEST + (index + 0.5) * _BIN)


def shipped(pair: Pair) -> Outcome:
    """The default: compare_runs, the one rule of assert_no_regression."""
    comparison = compare_runs(*pair.runs, tolerance=pair.tolerance)
    return comparison.is_regression, comparison.detectable


def _raw_p99(pair: Pair, *, levels: bool) -> Outcome:
    """The exact rank test on every second's raw p99, within disturbance levels or not."""
    from pytest_seldon_load import regression

    baseline, current = pair.runs
    limit = regression.parse_tolerance("p99", pair.tolerance)
    values = (regression.window_values(baseline, "p99"), regression.window_values(current, "p99"))
    strata = regression.disturbance_levels(baseline, current) if levels else None
    comparison = regression._compare(baseline, current, "p99", limit, 0.99, "", *values, strata)
    return comparison.is_regression, comparison.detectable


def plain_rank_test(pair: Pair) -> Outcome:
    """The rule before levels: the same exact rank test on per-second p99, every second
    alike."""
    return _raw_p99(pair, levels=False)


def levels_before(pair: Pair) -> Outcome:
    """The rule before outliers were set aside: the raw per-second p99, within disturbance
    levels (the default's fallback when the current run sets more aside)."""
    return _raw_p99(pair, levels=True)


def either_rule(pair: Pair, confidence: float = 0.995) -> Outcome:
    """A regression when either the default or the rule before finds one, each at half the
    risk (Bonferroni): the raw p99 within levels sees a fatter tail the default sets aside."""
    from pytest_seldon_load import regression

    baseline, current = pair.runs
    limit = regression.parse_tolerance("p99", pair.tolerance)
    new = compare_runs(baseline, current, tolerance=pair.tolerance, confidence=confidence)
    old = regression._compare(
        baseline,
        current,
        "p99",
        limit,
        confidence,
        "",
        regression.window_values(baseline, "p99"),
        regression.window_values(current, "p99"),
        regression.disturbance_levels(baseline, current),
    )
    return new.is_regression or old.is_regression, new.detectable


def _flag(p_value: float, shift: float, pair: Pair) -> Outcome:
    return bool(p_value < ALPHA and shift > pair.tolerance_log), math.nan


def longer_windows(pair: Pair, width: int = 3) -> Outcome:
    """Rank test on the p99 of 3-second windows (merged histograms)."""
    base, current = pair.counts

    def merged(counts: np.ndarray) -> np.ndarray:
        groups = np.arange(counts.shape[0]) // width
        return np.stack([counts[groups == g].sum(0) for g in np.unique(groups)])

    x, y = np.log(_quantile(merged(base), 99)), np.log(_quantile(merged(current), 99))
    if smallest_p(x.size, y.size) >= ALPHA:
        return False, math.nan
    estimate = rank_shift(x, y, 0.99)
    return _flag(estimate.p_value, estimate.shift, pair)


def two_strata(pair: Pair) -> Outcome:
    """Stratified rank test with two strata only: quiet, and over twice the typical spread."""
    base, current = pair.counts
    x, y = np.log(_quantile(base, 99)), np.log(_quantile(current, 99))
    spread_b = x - np.log(_quantile(base, 50))
    spread_c = y - np.log(_quantile(current, 50))
    limit = np.median(np.r_[spread_b, spread_c]) + math.log(2.0)
    labels_b, labels_c = (spread_b > limit).astype(int), (spread_c > limit).astype(int)
    shared = np.intersect1d(labels_b, labels_c)
    sizes = tuple((int((labels_b == s).sum()), int((labels_c == s).sum())) for s in shared)
    if smallest_strata_p(sizes) < ALPHA:
        estimate = rank_shift(x, y, 0.99, baseline_strata=labels_b, current_strata=labels_c)
    else:
        estimate = rank_shift(x, y, 0.99)
    return _flag(estimate.p_value, estimate.shift, pair)


def block_bootstrap(pair: Pair, resamples: int = 1000) -> Outcome:
    """Bootstrap over seconds of the pooled p99 (histograms merge exactly); percentile CI."""
    rng = np.random.default_rng(0)
    base, current = pair.counts
    used = (base.sum(0) + current.sum(0)) > 0
    base, current = base[:, used].astype(float), current[:, used].astype(float)

    def resampled(counts: np.ndarray) -> np.ndarray:
        n = counts.shape[0]
        weights = np.zeros((resamples, n))
        np.add.at(weights, (np.arange(resamples)[:, None], rng.integers(0, n, (resamples, n))), 1)
        return weights @ counts

    change = float(np.log(_quantile(current.sum(0), 99) / _quantile(base.sum(0), 99)))
    draws = np.log(_quantile(resampled(current), 99) / _quantile(resampled(base), 99))
    low = float(np.quantile(draws, ALPHA / 2))
    return bool(low > 0 and change > pair.tolerance_log), math.nan


def permutation_pooled(pair: Pair, permutations: int = 1000) -> Outcome:
    """Permutation test over seconds of the pooled p99: which run a second came from."""
    rng = np.random.default_rng(0)
    base, current = pair.counts
    used = (base.sum(0) + current.sum(0)) > 0
    every = np.concatenate([base[:, used], current[:, used]]).astype(float)
    n = base.shape[0]
    change = float(np.log(_quantile(every[n:].sum(0), 99) / _quantile(every[:n].sum(0), 99)))
    order = np.argsort(rng.random((permutations, every.shape[0])), axis=1)
    mask = np.zeros((permutations, every.shape[0]))
    mask[np.arange(permutations)[:, None], order[:, :n]] = 1.0
    null = np.log(_quantile((1 - mask) @ every, 99) / _quantile(mask @ every, 99))
    p_value = (1 + int((np.abs(null) >= abs(change)).sum())) / (permutations + 1)
    return _flag(p_value, change, pair)


def permutation_medians(pair: Pair, permutations: int = 2000) -> Outcome:
    """Permutation test on the per-second p99: difference of the two runs' medians."""
    rng = np.random.default_rng(0)
    base, current = pair.counts
    x, y = np.log(_quantile(base, 99)), np.log(_quantile(current, 99))
    both, n = np.r_[x, y], x.size
    change = float(np.median(y) - np.median(x))
    shuffled = both[np.argsort(rng.random((permutations, both.size)), axis=1)]
    null = np.median(shuffled[:, n:], 1) - np.median(shuffled[:, :n], 1)
    p_value = (1 + int((np.abs(null) >= abs(change)).sum())) / (permutations + 1)
    return _flag(p_value, change, pair)


def _centres(width: int) -> np.ndarray:
    return np.exp(_LOWEST + (np.arange(width) + 0.5) * _BIN)


def _stratified_estimate(
    x: np.ndarray, y: np.ndarray, labels_b: np.ndarray, labels_c: np.ndarray
) -> tuple[float, float]:
    """(p, shift) of the rank test within levels, as the default's fallbacks: the plain test
    when the current run is significantly more disturbed or the levels cannot reach 0.99."""
    from pytest_seldon_load.regression import more_disturbed

    if (labels_b.any() or labels_c.any()) and not more_disturbed(labels_b, labels_c, 0.99):
        shared = np.intersect1d(labels_b, labels_c)
        sizes = tuple((int((labels_b == s).sum()), int((labels_c == s).sum())) for s in shared)
        if sizes and smallest_strata_p(sizes) < ALPHA:
            e = rank_shift(x, y, 0.99, baseline_strata=labels_b, current_strata=labels_c)
            return e.p_value, e.shift
    e = rank_shift(x, y, 0.99)
    return e.p_value, e.shift


def _levels(spread_b: np.ndarray, spread_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = float(np.median(np.r_[spread_b, spread_c])) + np.log((1.3, 2.0, 5.0))
    return np.digitize(spread_b, edges), np.digitize(spread_c, edges)


def per_level_quantile(pair: Pair, low_q: float = 90.0) -> Outcome:
    """Within levels as the default, but disturbed windows (level 2 and up) give their p90,
    which a short pause does not reach; quiet ones their p99."""
    base, current = pair.counts
    p99b, p99c = np.log(_quantile(base, 99)), np.log(_quantile(current, 99))
    lb, lc = _levels(p99b - np.log(_quantile(base, 50)), p99c - np.log(_quantile(current, 50)))
    x = np.where(lb >= 2, np.log(_quantile(base, low_q)), p99b)
    y = np.where(lc >= 2, np.log(_quantile(current, low_q)), p99c)
    p, shift = _stratified_estimate(x, y, lb, lc)
    return _flag(p, shift, pair)


def _harrell_davis(counts: np.ndarray, q: float) -> np.ndarray:
    """Harrell-Davis estimate of the q-th percentile of each row: a Beta-weighted mean of
    all order statistics, each bin weighted by the Beta mass of the ranks it holds."""
    from scipy.special import betainc

    n = counts.sum(-1, keepdims=True).astype(float)
    a, b = q / 100.0 * (n + 1), (1 - q / 100.0) * (n + 1)
    upper = np.cumsum(counts, -1) / n
    lower = upper - counts / n
    weights = betainc(a, b, np.clip(upper, 0, 1)) - betainc(a, b, np.clip(lower, 0, 1))
    return (weights * _centres(counts.shape[-1])).sum(-1)


def harrell_davis(pair: Pair) -> Outcome:
    """The default's levels and test on a Harrell-Davis p99 of each second."""
    base, current = pair.counts
    x, y = np.log(_harrell_davis(base, 99)), np.log(_harrell_davis(current, 99))
    lb, lc = _levels(x - np.log(_quantile(base, 50)), y - np.log(_quantile(current, 50)))
    p, shift = _stratified_estimate(x, y, lb, lc)
    return _flag(p, shift, pair)


def _set_aside(counts: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Each row's counts with the requests above factor x its p90 removed, and how many."""
    above = _centres(counts.shape[-1])[None, :] > factor * _quantile(counts, 90)[:, None]
    return np.where(above, 0, counts), np.where(above, counts, 0).sum(-1)


def _more_set_aside(aside_b: np.ndarray, aside_c: np.ndarray, ranks: bool = False) -> float:
    """One-sided exact permutation p of the current run's total set-aside count (with
    `ranks`, of the sum of the counts' mid-ranks: the Wilcoxon test, exact with ties)."""
    from pytest_seldon_load.rank_test import permutation_sum_p

    if ranks:
        both = np.r_[aside_b, aside_c]
        order = np.sort(both)
        doubled = np.searchsorted(order, both, "left") + np.searchsorted(order, both, "right")
        aside_b, aside_c = doubled[: aside_b.size], doubled[aside_b.size :]
    return permutation_sum_p(aside_b, aside_c)


def trimmed(
    pair: Pair,
    factor: float = 3.0,
    gate: float = ALPHA,
    levels: bool = False,
    smooth: bool = False,
    ranks: bool = False,
    fallback: str = "plain",
) -> Outcome:
    """p99 of each second without its requests above `factor` x that second's p90; when the
    current run sets significantly more aside (the exact permutation test of the counts),
    the default on the raw p99 instead: a fatter tail or new pauses are the change."""
    base, current = pair.counts
    kept_b, aside_b = _set_aside(base, factor)
    kept_c, aside_c = _set_aside(current, factor)
    if _more_set_aside(aside_b, aside_c, ranks) < gate:
        flagged = fallback != "levels" and plain_rank_test(pair)[0]
        return flagged or (fallback != "plain" and levels_before(pair)[0]), math.nan
    quantile = _harrell_davis if smooth else _quantile
    x, y = np.log(quantile(kept_b, 99)), np.log(quantile(kept_c, 99))
    if levels:
        lb, lc = _levels(x - np.log(_quantile(kept_b, 50)), y - np.log(_quantile(kept_c, 50)))
        p, shift = _stratified_estimate(x, y, lb, lc)
    else:
        estimate = rank_shift(x, y, 0.99)
        p, shift = estimate.p_value, estimate.shift
    return _flag(p, shift, pair)


METHODS: dict[str, Callable[[Pair], Outcome]] = {
    "outliers set aside, levels (default)": shipped,
    "raw p99, levels (before)": levels_before,
    "raw p99, plain (levels before)": plain_rank_test,
    "rank test, 3 s windows": longer_windows,
    "two strata (quiet/disturbed)": two_strata,
    "block bootstrap, pooled p99": block_bootstrap,
    "permutation, pooled p99": permutation_pooled,
    "permutation, median window p99": permutation_medians,
    "levels, p90 in disturbed windows": per_level_quantile,
    "levels, p95 in disturbed windows": lambda pair: per_level_quantile(pair, 95.0),
    "levels, Harrell-Davis p99": harrell_davis,
    "trimmed p99 (3x p90)": trimmed,
    "trimmed p99 (2x p90)": lambda pair: trimmed(pair, 2.0),
    "trimmed p99 (3x p90), gate 0.05": lambda pair: trimmed(pair, gate=0.05),
    "trimmed p99 (3x p90), levels": lambda pair: trimmed(pair, levels=True),
    "trimmed Harrell-Davis p99 (3x p90)": lambda pair: trimmed(pair, smooth=True),
    "trimmed p99 (2x p90), levels": lambda pair: trimmed(pair, 2.0, levels=True),
    "trimmed p99 (2.5x p90), levels": lambda pair: trimmed(pair, 2.5, levels=True),
    "trimmed p99 (3x p90), levels, rank gate": lambda pair: trimmed(pair, levels=True, ranks=True),
    "default or levels before, each at 0.995": either_rule,
    "trimmed, levels; rank gate, then raw plain or levels": lambda pair: trimmed(
        pair, levels=True, ranks=True, fallback="either"
    ),
    "trimmed, levels; sum gate, then raw plain or levels": lambda pair: trimmed(
        pair, levels=True, fallback="either"
    ),
}
SHORT = dict(
    zip(
        (
            "default",
            "levels",
            "plain",
            "windows",
            "two-strata",
            "bootstrap",
            "permutation",
            "medians",
            "level-p90",
            "level-p95",
            "hd",
            "trimmed",
            "trimmed-2x",
            "trimmed-gate05",
            "trimmed-levels",
            "trimmed-hd",
            "trimmed-2x-levels",
            "trimmed-2.5x-levels",
            "trimmed-levels-ranks",
            "either",
            "ranks-either",
            "sum-either",
        ),
        METHODS,
        strict=True,
    )
)


# --- the measurement -----------------------------------------------------------------------


@dataclass
class Cell:
    flagged: int = 0
    trials: int = 0
    detectable: list[float] | None = None

    @property
    def rate(self) -> float:
        return self.flagged / self.trials if self.trials else math.nan


def slowed(per_second: list[np.ndarray], shift: float, tail_only: bool) -> list[np.ndarray]:
    """The run's latencies with the truth applied: every latency times (1 + shift), or with
    `tail_only` only those above the run's p90 (p99 moves by the shift, p50 not at all)."""
    if not tail_only:
        return [latencies * (1.0 + shift) for latencies in per_second]
    p90 = float(np.quantile(np.concatenate(per_second), 0.9))
    return [np.where(s > p90, s * (1.0 + shift), s) for s in per_second]


def measure(
    methods: Sequence[str],
    model: ServerModel | PausingModel,
    rate: float,
    seconds: int,
    shift: float,
    trials: int,
    tolerance: str = "10%",
    tail_only: bool = False,
    repeat: int = 1,
    worse: str = "",
    worse_factor: float = 2.0,
) -> dict[str, Cell]:
    """Each method's verdicts on the same seeded pairs. With `repeat`, each side is that many
    independent runs of `seconds` one after the other; with `worse`, the current run's
    server has twice the tail share ("tail") or pauses twice as often ("pauses")."""
    cells = {name: Cell(detectable=[]) for name in methods}
    current_model = worsened(model, worse, worse_factor)
    for trial in range(trials):
        rng = np.random.default_rng(1_000_003 * trial + 7)
        baseline = [s for _ in range(repeat) for s in model.run(rng, rate, seconds)]
        current = slowed(
            [s for _ in range(repeat) for s in current_model.run(rng, rate, seconds)],
            shift,
            tail_only,
        )
        pair = Pair(baseline, current, rate, tolerance)
        for name in methods:
            flagged, detectable = METHODS[name](pair)
            cell = cells[name]
            cell.flagged += flagged
            cell.trials += 1
            if math.isfinite(detectable) and cell.detectable is not None:
                cell.detectable.append(detectable)
    return cells


def worsened(
    model: ServerModel | PausingModel, worse: str, factor: float = 2.0
) -> ServerModel | PausingModel:
    """The model with `factor` x the tail share ("tail") or pauses `factor` x as often
    ("pauses")."""
    if not worse:
        return model
    if not isinstance(model, PausingModel):
        raise SystemExit(f"--worse needs a pausing or heavy-tail model, not {model.name}")
    if worse == "tail":
        return dataclasses.replace(model, tail_share=factor * model.tail_share)
    return dataclasses.replace(model, period_s=model.period_s / factor)


def true_change(
    model: ServerModel | PausingModel, other: ServerModel | PausingModel, rate: float
) -> tuple[float, float]:
    """How much `other` moves the p99 of a long run (3,000 s a side), and the p99 of the
    median second: what a worse tail does to the metric judged."""
    rng = np.random.default_rng(0)
    runs = [model.run(rng, rate, 3000), other.run(rng, rate, 3000)]
    pooled = [float(np.quantile(np.concatenate(run), 0.99)) for run in runs]
    typical = [float(np.median([np.quantile(s, 0.99) for s in run if s.size])) for run in runs]
    return pooled[1] / pooled[0] - 1.0, typical[1] / typical[0] - 1.0


def _label(shift: float) -> str:
    return "A/A" if shift == 0 else f"+{shift:.0%}"


def synthetic_table(args: argparse.Namespace) -> list[str]:
    methods = [SHORT[m] for m in args.methods]
    truth = " (tail only)" if args.tail_only else ""
    if args.worse:
        truth += f" ({args.worse} x{args.worse_factor:g})"
        for model_name in args.models:
            model = MODELS[model_name]
            run_p99, second_p99 = true_change(
                model, worsened(model, args.worse, args.worse_factor), args.rate
            )
            print(
                f"{model_name}, {args.worse} x{args.worse_factor:g}: the p99 of a long run "
                f"moves {run_p99:+.0%}, the median second's p99 {second_p99:+.0%}"
            )
        print()
    header = [
        "server model",
        "method",
        "run",
        *((_label(s) if not (args.worse and s == 0) else "+0%") + truth for s in args.shifts),
        "detectable (median)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model_name in args.models:
        model = MODELS[model_name]
        for seconds in args.seconds:
            started = time.perf_counter()
            by_shift = [
                measure(
                    methods,
                    model,
                    args.rate,
                    seconds,
                    s,
                    args.trials,
                    args.tolerance,
                    args.tail_only,
                    args.repeat,
                    args.worse,
                    args.worse_factor,
                )
                for s in args.shifts
            ]
            took = time.perf_counter() - started
            run_label = f"{seconds} s at {args.rate:g}/s"
            if args.repeat > 1:
                run_label = f"{args.repeat} x {run_label}"
            for name in methods:
                cells = [cells_of[name] for cells_of in by_shift]
                found = [d for c in cells for d in (c.detectable or [])]
                row = [
                    model_name,
                    name,
                    run_label,
                    *(f"{c.rate:.1%} ({c.flagged}/{c.trials})" for c in cells),
                    f"+{float(np.median(found)):.0%}" if found else "",
                ]
                lines.append("| " + " | ".join(row) + " |")
            print(f"  {model_name} {seconds}s: {took:.0f}s", file=sys.stderr)
    return lines


def real_pairs(pairs: int, rate: float, seconds: int) -> list[str]:
    """A/A on a real server: 2 × pairs back-to-back runs, each pair compared."""
    import tempfile
    from pathlib import Path

    from pytest_seldon_load.cluster.local import LocalSeldonServer, mlserver_available
    from pytest_seldon_load.engine import run_load
    from pytest_seldon_load.generate import write_prediction_replay

    if not mlserver_available():
        return ["(real runs skipped: MLServer is not installed)"]
    workdir = Path(tempfile.mkdtemp(prefix="regression-power-"))
    features = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]
    flagged, flagged_before, changes = 0, 0, []
    with LocalSeldonServer(workdir) as server:
        endpoint = server.endpoint()
        replay = write_prediction_replay(
            workdir / "iris.replay", protocol="v2", features=features, num=1000, seed=1
        )
        run_load(endpoint, replay, rate=rate, duration=3, seed=0)  # warm the server up
        for pair in range(pairs):
            first = run_load(endpoint, replay, rate=rate, duration=seconds, warmup=1, seed=pair)
            second = run_load(endpoint, replay, rate=rate, duration=seconds, warmup=1, seed=pair)
            comparison = compare_runs(first, second)
            flagged += comparison.is_regression
            flagged_before += levels_before(Pair([], [], rate, "10%", (first, second)))[0]
            changes.append(comparison.change)
            print(f"  real pair {pair + 1}: {comparison.headline()}", file=sys.stderr)
    spread = np.percentile(np.abs(changes), [50, 90]) if changes else [math.nan, math.nan]
    return [
        f"| local MLServer (real) | {SHORT['default']} | {seconds} s at {rate:g}/s | "
        f"{flagged / pairs:.1%} ({flagged}/{pairs}) | per-second p99 shift between runs of "
        f"the same server: median {spread[0]:.1%}, 90th percentile {spread[1]:.1%} |",
        f"| local MLServer (real) | {SHORT['levels']} | {seconds} s at {rate:g}/s | "
        f"{flagged_before / pairs:.1%} ({flagged_before}/{pairs}) | the same pairs |",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.20])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--methods", nargs="+", default=["default", "levels"], choices=list(SHORT))
    parser.add_argument("--tolerance", default="10%")
    parser.add_argument(
        "--tail-only", action="store_true", help="slow only the latencies above the p90"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="each side is N runs of --seconds, combined"
    )
    parser.add_argument(
        "--worse",
        choices=["tail", "pauses"],
        default="",
        help="the current run's server has twice the tail share, or pauses twice as often",
    )
    parser.add_argument("--worse-factor", type=float, default=2.0, metavar="X")
    parser.add_argument("--real", type=int, default=0, metavar="PAIRS")
    parser.add_argument("--real-seconds", type=int, default=10)
    args = parser.parse_args(argv)
    print_machine(
        "assert_no_regression: false alarms (A/A) and detection (+shift of every latency)"
    )
    print(
        f"p99, tolerance {args.tolerance}, confidence 0.99; {args.trials} seeded pairs per "
        f"cell; a flag is a 'regression' verdict.\n"
    )
    for line in synthetic_table(args):
        print(line)
    if args.real:
        print()
        print("| server | method | run | A/A flagged | note |")
        print("|---|---|---|---|---|")
        for line in real_pairs(args.real, args.rate, args.real_seconds):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
