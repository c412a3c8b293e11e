"""Did this run get worse than its baseline? Only if the change is significant AND large.

A fixed budget misses slow drift; a bare percentage delta between two runs cries wolf on noise.
A regression here needs both: the change must be statistically significant, and larger than a
tolerance (the smallest change worth a red build).

The evidence is the run's own per-second timeline. For the metric asked (say p99) each second of
each run gives one value (that second's p99); the two sets of values are compared with a
Mann-Whitney U test, and the change is the Hodges-Lehmann shift between them (the median of all
current/baseline pairwise ratios) with the confidence interval that inverts the same test. So
the p-value, the interval and the verdict always agree.

A second's p99 is the model's, not a pause's. At a few hundred requests a second, the p99 is
the second's second-slowest request: one stop-the-world pause (a GC, host steal) or one
heavy-tail request sets it. So each window first sets aside its requests above 3x its own
p90 (window_quantiles.py: scale free, one rule for every window of both runs) and gives the
percentile of the rest. What is set aside is counted: when the current run sets
significantly more aside (an exact permutation test of the per-window counts), a fatter tail
or new pauses are the change, and the raw percentiles of every window are compared alike.

Seconds are compared with their like. A second still disturbed after that (a stall that
slowed a tenth of its requests) is ranked only against seconds as disturbed: each window
gets a disturbance level from its own p99/p50 (scale free, by one rule for both runs), and
the U test sums its counts within levels: exact still, and far sharper on pausing servers.
When the current run is significantly more disturbed, the disturbance is the change, and
every window is compared alike.

Every comparison also says the smallest worsening it would have caught 95 times in 100
(`detectable`): a pass of a short, noisy run says how little it shows.

Why this and not a bootstrap of the run's p99: the run-level p99 is decided by its worst few
seconds (a scheduler hiccup, a GC pause), so it swings with how many such seconds a run happened
to get; a rank test on per-second values sees the shift of the typical second, which is where a
slower model shows, and is not thrown by a few disturbed seconds. Ranks make no assumption on
the shape of latencies, and the test is exact for short runs, where a bootstrap over ten seconds
is over-confident. benchmarks/regression_power.py measures both on synthetic runs shaped like
real ones (see BENCHMARKS.md): on a steady server they are close, on a disturbed one the rank
test has fewer false alarms and catches a +20% slowdown far more often (BENCHMARKS.md, also
for the alternatives measured against the levels on pausing servers).

What no within-run test can see: a change of the machine between the two runs (a noisy neighbour
during one of them) looks exactly like a change of the model. The tolerance, a quiet runner and
saving the baseline on the machine that compares guard against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any, Protocol

import numpy as np

from .assertions import InvalidMeasurement, describe_run
from .durations import format_ms, parse_budget_ms
from .hdr import percentiles as hdr_percentiles
from .hdr import slot_values_ms
from .judgement import LAG, NOT_COMPARABLE, UNDERPOWERED, Judgement
from .rank_test import ShiftEstimate, rank_shift, smallest_p, smallest_strata_p
from .report.json_report import SavedRunsError, read_saved_runs
from .result import LoadResult
from .timeline_windows import measured_seconds, window_counts
from .window_quantiles import SET_ASIDE_FACTOR, more_set_aside, set_aside_percentiles

LATENCY_QUANTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
METRICS = (*LATENCY_QUANTILES, "error_rate", "throughput")
MAX_WINDOWS = 60
"""Longer runs are compared in windows of several seconds: neighbouring seconds are not
independent, and a test over thousands of seconds would call a 0.1% change significant."""


class PerformanceRegression(AssertionError):
    """The run is significantly worse than its baseline, by more than the tolerance."""


# --- tolerances and options ---------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """The smallest change that counts: relative (10%) or absolute (5 ms, 0.5 points, 20/s)."""

    amount: float
    relative: bool
    text: str


_PERCENT = re.compile(r"^\s*\+?([0-9]*\.?[0-9]+)\s*%\s*$")
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(?:/s|rps|req/s)?\s*$")


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    return metric


def parse_tolerance(metric: str, tolerance: float | str) -> Tolerance:
    """ "10%" is relative, except for error_rate, where a percentage is in points ("0.5%").

    Absolute amounts are in the metric's unit: "5ms" or 5 for latencies (ms), 20 or "20/s"
    for throughput, 0.005 for error_rate. An error rate has no useful relative change (its
    baseline is often 0), hence points.
    """
    check_metric(metric)
    what = f"tolerance for {metric}"
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, str)):
        raise ValueError(f"{what}: expected '10%' or an amount, got {tolerance!r}")
    if isinstance(tolerance, str) and (match := _PERCENT.match(tolerance)):
        percent = float(match.group(1))
        if metric == "error_rate":
            if percent > 100:
                raise ValueError(f"{what}: at most 100 points, got {tolerance!r}")
            return Tolerance(percent / 100.0, False, f"+{percent:g} points")
        return Tolerance(percent / 100.0, True, f"{percent:g}%")
    if metric in LATENCY_QUANTILES:
        if tolerance in (0, "0"):
            return Tolerance(0.0, False, "0ms")
        amount = parse_budget_ms(tolerance, what)
        return Tolerance(amount, False, format_ms(amount))
    if isinstance(tolerance, str):
        match = _RATE.match(tolerance) if metric == "throughput" else None
        try:
            amount = float(match.group(1)) if match else float(tolerance)
        except ValueError:
            raise ValueError(f"{what}: expected '10%' or an amount, got {tolerance!r}") from None
    else:
        amount = float(tolerance)
    if not (amount >= 0 and math.isfinite(amount)):
        raise ValueError(f"{what}: must be a non-negative amount, got {tolerance!r}")
    if metric == "error_rate":
        if amount > 1:
            raise ValueError(f"{what}: an error rate change is a fraction like 0.005, got {amount}")
        return Tolerance(amount, False, f"+{amount * 100:g} points")
    return Tolerance(amount, False, f"{amount:g}/s")


def parse_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise ValueError(f"confidence must be a number like 0.99, got {confidence!r}")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(
            f"confidence must be at least 0.5 and below 1, like 0.99, got {confidence!r}"
        )
    return float(confidence)


def parse_min_detectable(value: float | str) -> float:
    """The largest `detectable` a comparison may have, as a fraction: a string is a
    percentage ("10%" or "10"), a number a fraction already (0.1).

    For latencies and throughput it is a relative change; for error_rate, points."""
    what = "minimum detectable change"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{what}: expected a percentage like '10%', got {value!r}")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip().removeprefix("+")
        try:
            fraction = float(text) / 100.0
        except ValueError:
            raise ValueError(f"{what}: expected a percentage like '10%', got {value!r}") from None
    else:
        fraction = float(value)
    if not (fraction > 0 and math.isfinite(fraction)):
        raise ValueError(f"{what}: must be a positive percentage, got {value!r}")
    return fraction


# --- per-window values ----------------------------------------------------------------

_SLOT_VALUES_MS = slot_values_ms()


def window_seconds(result: LoadResult) -> int:
    """Seconds per compared window: 1, or more for runs longer than MAX_WINDOWS seconds."""
    return max(1, math.ceil(measured_seconds(result) / MAX_WINDOWS))


def window_values(result: LoadResult, metric: str, histogram: str = "latency") -> np.ndarray:
    """The metric of each window of the run (nan where a window has no data for it).

    Completions after the measured period (the last answers) join its last window, so a
    straggler second of three answers does not count as a second of its own. `histogram` is
    "latency" (from the intended send) or "service" (from the actual send) for a latency
    metric.
    """
    check_metric(metric)
    if histogram not in ("latency", "service"):
        raise ValueError(f"histogram must be 'latency' or 'service', got {histogram!r}")
    n_seconds = measured_seconds(result)
    width = window_seconds(result)
    n_windows = math.ceil(n_seconds / width)

    def slot(second: int) -> int:
        return min(max(second, 0), n_seconds - 1) // width

    if metric in LATENCY_QUANTILES:
        return _window_percentiles(result, (LATENCY_QUANTILES[metric],), histogram)[0]
    sums = np.zeros((n_windows, 2))
    for window in result.windows:
        sums[slot(window.second)] += (window.errors, window.ok)
    if not result.windows:
        return np.full(n_windows, np.nan)
    if metric == "error_rate":
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums[:, 0] / (sums[:, 0] + sums[:, 1])
    covered = np.minimum(width, n_seconds - np.arange(n_windows) * width)
    return sums[:, 1] / covered


def _window_counts(result: LoadResult, histogram: str = "latency") -> tuple[np.ndarray, np.ndarray]:
    """Each window's latency counts (rows) over the slots the run used, and those slots'
    values (ms)."""
    counts = window_counts(result, window_seconds(result), histogram)
    used = counts.sum(axis=0) > 0
    return counts[:, used], _SLOT_VALUES_MS[used]


def _window_percentiles(
    result: LoadResult, quantiles: tuple[float, ...], histogram: str = "latency"
) -> np.ndarray:
    """Each of `quantiles` (rows) of each window (columns) of the run's latencies."""
    counts, values = _window_counts(result, histogram)
    if not values.size:  # no latency at all (an empty timeline, a summary-only run)
        return np.full((len(quantiles), counts.shape[0]), np.nan)
    return np.stack([hdr_percentiles(counts, q, values) for q in quantiles])


SET_ASIDE_METRICS = ("p50", "p90", "p95", "p99")
"""Latency metrics compared with each window's outliers set aside (window_quantiles.py). Not
p999: at a few hundred requests a window it is the window's slowest few, the very requests
set aside."""


def set_aside_values(
    result: LoadResult, metric: str, histogram: str = "latency"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The metric of each window without its requests above SET_ASIDE_FACTOR x the window's
    p90, the window's p99/p50 spread on the same requests (log), and how many requests each
    window set aside."""
    counts, values = _window_counts(result, histogram)
    if not values.size:
        empty = np.full(counts.shape[0], np.nan)
        return empty, empty, np.zeros(counts.shape[0], np.int64)
    kept, aside = set_aside_percentiles(counts, values, LATENCY_QUANTILES[metric])
    p50, _ = set_aside_percentiles(counts, values, 50.0)
    p99 = kept if metric == "p99" else set_aside_percentiles(counts, values, 99.0)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.log(p99 / p50)
    return kept, spread, aside


# --- quiet and disturbed windows ---------------------------------------------------------

DISTURBANCE_EDGES = (1.3, 2.0, 5.0)
"""A window's disturbance level is how many of these its p99/p50 exceeds, as multiples of
the typical window's (of both runs): 0 is quiet, 3 held a pause that put some of its
requests far above the rest. benchmarks/regression_power.py chose them (BENCHMARKS.md)."""


def disturbance_levels(baseline: LoadResult, current: LoadResult) -> tuple[np.ndarray, np.ndarray]:
    """The disturbance level (0 .. len(DISTURBANCE_EDGES)) of each window of each run.

    Why: a second that held a stop-the-world pause has a p99 set by the pause, not by the
    model; ranking such seconds against quiet ones drowns a real slowdown in pause noise.
    Compared only with their like, windows show the shift plainly. The level is scale free
    (p99/p50: a uniformly slower model moves both) and set by one rule from both runs'
    windows together, so under "no change" it falls on either run alike, and the stratified
    test stays exact.
    """
    spreads = []
    for run in (baseline, current):
        p50, p99 = _window_percentiles(run, (50.0, 99.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            spreads.append(np.log(p99 / p50))
    return _levels_of(spreads[0], spreads[1])


def _levels_of(
    base_spread: np.ndarray, current_spread: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Disturbance levels from each window's log p99/p50, edges from both runs' median."""
    pooled = np.concatenate([base_spread, current_spread])
    pooled = pooled[np.isfinite(pooled)]
    if not pooled.size:
        return np.zeros(base_spread.size, int), np.zeros(current_spread.size, int)
    edges = float(np.median(pooled)) + np.log(DISTURBANCE_EDGES)
    base, current_levels = (
        np.digitize(np.nan_to_num(s, nan=0.0), edges) for s in (base_spread, current_spread)
    )
    return base, current_levels


def more_disturbed(baseline: np.ndarray, current: np.ndarray, confidence: float) -> bool:
    """Are the current run's windows significantly more disturbed than the baseline's (the
    exact rank test on the levels)? Then the disturbances are the change itself (new pauses,
    a fatter tail), and comparing like with like would hide it."""
    if baseline.size < 2 or current.size < 2 or current.mean() <= baseline.mean():
        return False
    if smallest_p(baseline.size, current.size) >= 1.0 - confidence:
        return False
    levels = rank_shift(baseline.astype(float), current.astype(float), confidence)
    return levels.p_value < 1.0 - confidence


def run_value(result: LoadResult, metric: str) -> float:
    """The metric over the whole run, as its budget assertions see it."""
    check_metric(metric)
    if metric in LATENCY_QUANTILES:
        return result.percentile(LATENCY_QUANTILES[metric])
    return result.error_rate if metric == "error_rate" else result.throughput


# --- the test ---------------------------------------------------------------------


def _relative(metric: str) -> bool:
    """Latencies move by ratios (compared in logs); error rate and throughput by amounts,
    since either can be 0 in a second."""
    return metric in LATENCY_QUANTILES


def _worse_sign(metric: str) -> float:
    """+1 when a higher value is worse (latency, errors), -1 for throughput."""
    return -1.0 if metric == "throughput" else 1.0


@dataclass(frozen=True)
class Comparison:
    """The verdict on one metric of one run against its baseline, with its evidence."""

    metric: str
    baseline_value: float
    current_value: float
    """The metric over each whole run, as budgets see it."""
    change: float
    """Relative shift of the per-window values, signed: +0.25 is 25% higher (nan for an error
    rate, which moves in points: see `difference`)."""
    difference: float
    """The shift in the metric's unit (ms, fraction, requests/s)."""
    ci_low: float
    ci_high: float
    """Confidence interval of `change` (of `difference` for error_rate)."""
    p_value: float
    confidence: float
    tolerance: Tolerance
    verdict: str
    """regression, improvement, within tolerance, or no significant change."""
    baseline_windows: int
    current_windows: int
    baseline_requests: int
    current_requests: int
    window_seconds: int
    method: str
    baseline_name: str = ""
    disturbed: tuple[int, int] = (0, 0)
    """Windows above the quiet level (baseline, current), when compared within levels."""
    detectable: float = math.nan
    """The smallest worsening this comparison would have caught 95 times in 100: a relative
    change (error rate: a difference in points); inf when the runs could show none."""
    set_aside: tuple[int, int] = (0, 0)
    """Requests above SET_ASIDE_FACTOR x their window's p90 (baseline, current)."""
    outliers: str = ""
    """"set aside": compared without them; "more in current": the current run had
    significantly more, so the raw percentiles were compared; "": not a metric that sets
    any aside."""

    @property
    def is_regression(self) -> bool:
        return self.verdict == "regression"

    @property
    def significant(self) -> bool:
        return self.p_value < 1.0 - self.confidence

    def format_value(self, value: float) -> str:
        if self.metric in LATENCY_QUANTILES:
            return format_ms(value)
        if self.metric == "error_rate":
            return f"{value:.3%}"
        return f"{value:.1f}/s"

    def format_change(self) -> str:
        if self.metric == "error_rate":
            return f"{self.difference * 100:+.3g} points"
        return f"{self.change:+.1%}" if math.isfinite(self.change) else "n/a"

    def format_interval(self) -> str:
        level = f"{self.confidence * 100:.4g}%"
        if self.metric == "error_rate":
            return f"{level} CI {self.ci_low * 100:+.3g} .. {self.ci_high * 100:+.3g} points"
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return f"{level} CI n/a"
        return f"{level} CI {self.ci_low:+.1%} .. {self.ci_high:+.1%}"

    def format_detectable(self) -> str:
        """What this comparison could have caught: a pass that means little says so."""
        power = f"{DETECT_POWER:.0%}"
        if not math.isfinite(self.detectable):
            return f"these runs could not detect any change at {power}"
        if self.metric == "error_rate":
            amount = f"+{self.detectable * 100:.3g} points"
        elif self.metric == "throughput":
            amount = f"-{self.detectable:.1%}"
        else:
            amount = f"+{self.detectable:.1%}"
        return f"this run could detect {amount} or more at {power}"

    def format_p(self) -> str:
        return "p<0.0001" if self.p_value < 1e-4 else f"p={self.p_value:.2g}"

    def headline(self) -> str:
        """One line: what moved, by how much, how sure, against which tolerance."""
        name = f" '{self.baseline_name}'" if self.baseline_name else ""
        unit = "second" if self.window_seconds == 1 else f"{self.window_seconds}s window"
        return (
            f"{self.metric} {self.verdict} vs baseline{name}: "
            f"{self.format_value(self.baseline_value)} → {self.format_value(self.current_value)}; "
            f"per-{unit} {self.metric} {self.format_change()} ({self.format_interval()}, "
            f"{self.format_p()}), tolerance {self.tolerance.text}; "
            f"{self.format_detectable()}"
        )

    def evidence(self) -> str:
        """The sample sizes and method, for a reader who wants to weigh the verdict."""
        unit = (
            "one-second windows"
            if self.window_seconds == 1
            else (f"{self.window_seconds}-second windows")
        )
        return (
            f"  samples: baseline {self.baseline_requests} requests in {self.baseline_windows} "
            f"{unit}, current {self.current_requests} requests in {self.current_windows} {unit}"
            f"; Mann-Whitney U ({self.method}) on the per-window {self.metric}, "
            f"Hodges-Lehmann shift"
            + self._outlier_evidence()
            + (
                f"; windows compared within their disturbance level (a pause or a stall: "
                f"{self.disturbed[0]} baseline and {self.disturbed[1]} current windows "
                f"disturbed)"
                if "strata" in self.method
                else ""
            )
        )

    def _outlier_evidence(self) -> str:
        bar = f"above {SET_ASIDE_FACTOR:g}x their window's p90"
        base, current = self.set_aside
        if self.outliers == "set aside" and base + current:
            return (
                f"; requests {bar} set aside first (a pause, a tail: {base} baseline and "
                f"{current} current, not significantly more in the current run)"
            )
        if self.outliers == "more in current":
            return (
                f"; the current run had significantly more requests {bar} ({current} against "
                f"{base}): a fatter tail or new pauses, so every request counts"
            )
        return ""

    @property
    def label(self) -> str:
        name = f" '{self.baseline_name}'" if self.baseline_name else ""
        return f"{self.metric} vs baseline{name} within {self.tolerance.text}"

    def judgement(self, *, invalid: str = "") -> Judgement:
        """This comparison as a run's judgement: failed when a regression (the server's,
        unless `invalid` says why it is not)."""
        moved = self.difference if self.metric == "error_rate" else self.change
        return Judgement(
            kind="regression",
            label=self.label,
            passed=not self.is_regression,
            measured=moved if math.isfinite(moved) else None,
            limit=self.tolerance.amount,
            quantile=LATENCY_QUANTILES.get(self.metric),
            invalid=invalid if self.is_regression else "",
            comparison=self.to_dict(),
        )

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return None if not math.isfinite(value) else float(f"{value:.6g}")

        return {
            "metric": self.metric,
            "baseline": number(self.baseline_value),
            "current": number(self.current_value),
            "change": number(self.change),
            "difference": number(self.difference),
            "ci_low": number(self.ci_low),
            "ci_high": number(self.ci_high),
            "p_value": float(f"{self.p_value:.4g}"),
            "confidence": self.confidence,
            "tolerance": self.tolerance.text,
            "verdict": self.verdict,
            "baseline_windows": self.baseline_windows,
            "current_windows": self.current_windows,
            "baseline_requests": self.baseline_requests,
            "current_requests": self.current_requests,
            "window_seconds": self.window_seconds,
            "method": self.method,
            "baseline_name": self.baseline_name,
            "detectable": number(self.detectable),
            "disturbed_windows": list(self.disturbed),
            "set_aside": list(self.set_aside),
            "outliers": self.outliers,
            "text": self.headline(),
        }


def _requests(result: LoadResult, metric: str) -> int:
    if metric in LATENCY_QUANTILES:
        return int(result.latency.get_total_count())
    return int(max(result.requests, result.scheduled))


def compare_runs(
    baseline: LoadResult,
    current: LoadResult,
    metric: str = "p99",
    tolerance: float | str = "10%",
    confidence: float = 0.99,
    *,
    baseline_name: str = "",
) -> Comparison:
    """Compare one metric of two runs window by window, and give the verdict.

    Raises InvalidMeasurement when the runs are too short for the test to ever reach
    `confidence`, or hold no data for the metric. This is the statistics alone: whether the
    verdict can be blamed on the server is `judge_regression`'s question.
    """
    check_metric(metric)
    limit = parse_tolerance(metric, tolerance)
    confidence = parse_confidence(confidence)
    evidence = _evidence(baseline, current, metric, confidence)
    return _compare(baseline, current, metric, limit, confidence, baseline_name, *evidence)


_Evidence = tuple[
    np.ndarray, np.ndarray, "tuple[np.ndarray, np.ndarray] | None", tuple[int, int], str
]
"""What the test compares: each run's per-window values, their disturbance levels (None for
none), the requests set aside (baseline, current) and how outliers were treated."""


def _evidence(
    baseline: LoadResult,
    current: LoadResult,
    metric: str,
    confidence: float,
) -> _Evidence:
    """The per-window values to compare, and their levels.

    Latency percentiles up to p99 are compared with each window's outliers set aside
    (window_quantiles.py), within disturbance levels of what is left; unless the current run
    set significantly more aside: then a fatter tail or new pauses are the change, and the
    raw percentiles of every window are compared alike (within levels, the windows the new
    outliers disturbed would be compared with their like, and the change hidden)."""
    if metric in SET_ASIDE_METRICS:
        base, base_spread, base_aside = set_aside_values(baseline, metric)
        now, now_spread, now_aside = set_aside_values(current, metric)
        aside = (int(base_aside.sum()), int(now_aside.sum()))
        if not more_set_aside(base_aside, now_aside, confidence):
            return base, now, _levels_of(base_spread, now_spread), aside, "set aside"
        return (
            window_values(baseline, metric),
            window_values(current, metric),
            None,
            aside,
            "more in current",
        )
    labels = disturbance_levels(baseline, current) if metric in LATENCY_QUANTILES else None
    return (
        window_values(baseline, metric),
        window_values(current, metric),
        labels,
        (0, 0),
        "",
    )


def _compare(
    baseline: LoadResult,
    current: LoadResult,
    metric: str,
    limit: Tolerance,
    confidence: float,
    baseline_name: str,
    base_windows: np.ndarray,
    current_windows: np.ndarray,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
    set_aside: tuple[int, int] = (0, 0),
    outliers: str = "",
) -> Comparison:
    for side, run in (("baseline", baseline), ("current", current)):
        if not run.windows:
            raise InvalidMeasurement(
                f"cannot compare {metric}: the {side} run has no per-second timeline (an "
                f"Iago run keeps only its summary; a run interrupted in its first second has "
                f"none)"
            )
    base_kept, current_kept = np.isfinite(base_windows), np.isfinite(current_windows)
    base_windows, current_windows = base_windows[base_kept], current_windows[current_kept]
    if smallest_p(base_windows.size, current_windows.size) >= 1.0 - confidence:
        raise InvalidMeasurement(
            f"cannot compare {metric}: with {base_windows.size} baseline and "
            f"{current_windows.size} current windows holding data, no difference could reach "
            f"{confidence:.0%} confidence; runs of at least "
            f"{_seconds_needed(confidence)}s are needed (10s or more for a useful interval)"
        )
    relative = _relative(metric)
    estimate: ShiftEstimate
    strata = _levels_to_compare(labels, base_kept, current_kept, confidence)
    if relative:
        if (base_windows <= 0).any() or (current_windows <= 0).any():
            raise InvalidMeasurement(f"cannot compare {metric}: a window holds no latency")
        estimate = rank_shift(
            np.log(base_windows),
            np.log(current_windows),
            confidence,
            baseline_strata=strata[0] if strata else None,
            current_strata=strata[1] if strata else None,
        )
    else:  # no levels for error rates and throughput (labels is None)
        estimate = rank_shift(base_windows, current_windows, confidence)
    base_value, current_value = run_value(baseline, metric), run_value(current, metric)
    if relative:
        change = math.expm1(estimate.shift)
        low, high = math.expm1(estimate.low), math.expm1(estimate.high)
        difference = base_value * change
    else:
        difference = estimate.shift
        reference = base_value if metric == "throughput" else math.nan
        change = difference / reference if reference > 0 else math.nan
        low, high = estimate.low, estimate.high
        if metric == "throughput":
            low = low / reference if reference > 0 else math.nan
            high = high / reference if reference > 0 else math.nan
    verdict = _verdict(metric, limit, estimate.p_value < 1.0 - confidence, change, difference)
    detectable = _detectable(metric, limit, estimate, confidence, base_value)
    return Comparison(
        metric=metric,
        baseline_value=base_value,
        current_value=current_value,
        change=change,
        difference=difference,
        ci_low=low,
        ci_high=high,
        p_value=estimate.p_value,
        confidence=confidence,
        tolerance=limit,
        verdict=verdict,
        baseline_windows=int(base_windows.size),
        current_windows=int(current_windows.size),
        baseline_requests=_requests(baseline, metric),
        current_requests=_requests(current, metric),
        window_seconds=window_seconds(current),
        method=estimate.method,
        baseline_name=baseline_name,
        detectable=detectable,
        disturbed=((int((strata[0] > 0).sum()), int((strata[1] > 0).sum())) if strata else (0, 0)),
        set_aside=set_aside,
        outliers=outliers,
    )


def _levels_to_compare(
    labels: tuple[np.ndarray, np.ndarray] | None,
    base_kept: np.ndarray,
    current_kept: np.ndarray,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The disturbance levels of the compared windows, when comparing like with like can
    reach the confidence and does not hide a change; None for the plain test."""
    if labels is None:
        return None
    base, current = labels[0][base_kept], labels[1][current_kept]
    if not (base.any() or current.any()):
        return None  # all quiet: the plain test is the same test
    if more_disturbed(base, current, confidence):
        return None
    shared = np.intersect1d(base, current)
    sizes = tuple((int((base == s).sum()), int((current == s).sum())) for s in shared)
    if not sizes or smallest_strata_p(sizes) >= 1.0 - confidence:
        return None
    return base, current


DETECT_POWER = 0.95
"""`detectable` is the smallest change caught this often (the power)."""


def _detectable(
    metric: str, limit: Tolerance, estimate: ShiftEstimate, confidence: float, base_value: float
) -> float:
    """The smallest worsening this comparison would call a regression 95 times in 100.

    Normal approximation to the shift estimate: its spread is the interval's half-width over
    z(confidence); a worsening is called when the estimate clears both the interval's
    half-width (significance) and the tolerance, which a true change `d` does with 95%
    probability once d >= max(half-width, tolerance) + z(0.95)·spread. In the metric's
    relative change (the error rate's points). Infinite when the interval is open: no change
    could have been shown.
    """
    half = (estimate.high - estimate.low) / 2.0
    if not math.isfinite(half):
        return math.inf
    normal = NormalDist()
    spread = half / normal.inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    relative = _relative(metric)
    if limit.relative:
        reference = base_value if metric == "throughput" else math.nan
        tolerance = math.log1p(limit.amount) if relative else limit.amount * reference
    elif relative:
        tolerance = math.log1p(limit.amount / base_value) if base_value > 0 else math.inf
    else:
        tolerance = limit.amount
    needed = max(half, tolerance) + normal.inv_cdf(DETECT_POWER) * spread
    if relative:
        return math.expm1(needed)
    if metric == "throughput":
        return needed / base_value if base_value > 0 else math.inf
    return needed


def _seconds_needed(confidence: float) -> int:
    n = 2
    while smallest_p(n, n) >= 1.0 - confidence:
        n += 1
    return n


def _verdict(
    metric: str, limit: Tolerance, significant: bool, change: float, difference: float
) -> str:
    if not significant:
        return "no significant change"
    worse = _worse_sign(metric)
    moved = worse * (change if limit.relative else difference)
    if moved != moved:  # a relative tolerance on a zero baseline: any worsening is beyond it
        moved = math.inf if worse * difference > 0 else -math.inf
    if moved > limit.amount:
        return "regression"
    if -moved > limit.amount:
        return "improvement"
    return "within tolerance"


# --- the one verdict -----------------------------------------------------------------


@dataclass(frozen=True)
class RegressionVerdict:
    """What `judge_regression` decided: the judgement to record on the run, the comparison
    behind it (None when the runs could not be compared) and, when the verdict is not the
    server's, why."""

    judgement: Judgement
    comparison: Comparison | None
    reason: str = ""
    beyond_lag: Comparison | None = None
    """For a regression found while the generator lagged: the comparison of what lag cannot
    inflate, which still shows it."""

    @property
    def is_regression(self) -> bool:
        """A regression that is the server's: fail the test, exit 1."""
        return self.judgement.server_fault

    @property
    def invalid(self) -> bool:
        """Not judged: the runs could not be compared, or lag could explain the regression,
        or (when a minimum was asked) they could not have shown a change that small."""
        return bool(self.judgement.invalid)

    @property
    def underpowered(self) -> bool:
        """Failed because the runs could not detect the minimum change asked for."""
        return self.judgement.invalid == UNDERPOWERED

    def message(self) -> str:
        """The headline and evidence of a comparison, or why there is none."""
        if self.comparison is None:
            return self.reason
        lines = [self.comparison.headline(), self.comparison.evidence()]
        if self.beyond_lag is not None:
            lines.append(
                f"  the generator lagged, but what its lag cannot inflate (the service time, "
                f"and latency less the worst send lag) still moved "
                f"{self.beyond_lag.format_change()} ({self.beyond_lag.format_interval()}, "
                f"{self.beyond_lag.format_p()}): the regression is the server's"
            )
        elif self.reason:
            lines.append(f"  {self.reason}")
        return "\n".join(lines)


def judge_regression(
    baseline: LoadResult,
    current: LoadResult,
    metric: str = "p99",
    tolerance: float | str = "10%",
    confidence: float = 0.99,
    *,
    baseline_name: str = "",
    allow_lag: bool = False,
    min_detectable: float | str | None = None,
) -> RegressionVerdict:
    """The verdict on `metric` of `current` against `baseline`: the one rule shared by
    `assert_no_regression`, ``--load-baseline-compare`` and ``seldon-load compare``.

    With `min_detectable` ("10%"), a comparison that found no regression but could not have
    detected a change that large (its `detectable` is above it) fails as UNDERPOWERED: a
    pass that means little is not a pass.

    A regression needs a significant change beyond the tolerance. Found while the generator
    fell behind (and the lag was not accepted, by `allow_lag` or the run's `lag_accepted`),
    it is still the server's when what lag cannot inflate shows it too; otherwise it is
    invalid, not a regression. No regression despite lag stands: lag only makes a run look
    worse.
    """
    check_metric(metric)
    limit = parse_tolerance(metric, tolerance)
    confidence = parse_confidence(confidence)
    required = None if min_detectable is None else parse_min_detectable(min_detectable)
    where = f" '{baseline_name}'" if baseline_name else ""
    try:
        comparison = compare_runs(
            baseline, current, metric, tolerance, confidence, baseline_name=baseline_name
        )
    except InvalidMeasurement as exc:
        judgement = Judgement(
            kind="regression",
            label=f"{metric} vs baseline{where} within {limit.text}",
            passed=False,
            limit=limit.amount,
            quantile=LATENCY_QUANTILES.get(metric),
            invalid=NOT_COMPARABLE,
        )
        return RegressionVerdict(judgement, None, str(exc))
    lagging = not current.kept_up and not (allow_lag or current.lag_accepted)
    # `not <=`: an infinite detectable (no change could be shown) is underpowered too
    if required is not None and not (comparison.is_regression or comparison.detectable <= required):
        return _underpowered(comparison, required)
    if not (comparison.is_regression and lagging):
        return RegressionVerdict(comparison.judgement(), comparison)
    beyond = _beyond_lag(baseline, current, comparison)
    if beyond is not None:
        return RegressionVerdict(comparison.judgement(), comparison, beyond_lag=beyond)
    reason = (
        f"not judged: the load generator fell behind its schedule "
        f"({current.health.describe()}), and what its lag could add explains the change"
    )
    return RegressionVerdict(comparison.judgement(invalid=LAG), comparison, reason)


def _underpowered(comparison: Comparison, required: float) -> RegressionVerdict:
    asked = (
        f"+{required * 100:g} points" if comparison.metric == "error_rate" else f"{required:.1%}"
    )
    reason = (
        f"not judged: {comparison.format_detectable()}, and {asked} was required: run "
        f"longer, at a higher rate, or on a quieter machine"
    )
    judgement = replace(comparison.judgement(), passed=False, invalid=UNDERPOWERED)
    return RegressionVerdict(judgement, comparison, reason)


def _beyond_lag(
    baseline: LoadResult, current: LoadResult, comparison: Comparison
) -> Comparison | None:
    """The comparison of what lag cannot inflate, if it still shows the regression.

    A late send adds at most the worst send lag to a latency and nothing to its service
    time (from the actual send), so per window the larger of the service-time percentile
    and the latency percentile less the worst lag is still the server's. A saturated engine
    reads answers late, which inflates both: then nothing is beyond lag.
    """
    metric = comparison.metric
    health = current.health
    if metric not in LATENCY_QUANTILES or health.saturated:
        return None
    base, latency, labels, aside, outliers = _evidence(
        baseline, current, metric, comparison.confidence
    )
    service = (
        set_aside_values(current, metric, "service")[0]
        if outliers == "set aside"
        else window_values(current, metric, "service")
    )
    lower = np.fmax(service, latency - health.max_lag_ms)
    lower = np.where(np.isfinite(lower), np.maximum(lower, _LOWEST_MS), np.nan)
    try:
        unlagged = _compare(
            baseline,
            current,
            metric,
            comparison.tolerance,
            comparison.confidence,
            comparison.baseline_name,
            base,
            lower,
            labels,
            aside,
            outliers,
        )
    except InvalidMeasurement:
        return None
    return unlagged if unlagged.is_regression else None


_LOWEST_MS = 0.001
"""The histograms' lowest value (1 µs): a lower bound is never taken below it."""


# --- the assertion ------------------------------------------------------------------


class BaselineLookup(Protocol):
    def __call__(self, result: LoadResult) -> tuple[LoadResult, str] | None: ...


_lookups: list[BaselineLookup] = []


def use_baseline_lookup(lookup: BaselineLookup) -> None:
    """Where `baseline=None` finds a result's baseline run (the plugin installs this for its
    session; the newest one installed answers)."""
    _lookups.append(lookup)


_required_detectable: list[float] = []


def require_detectable(fraction: float) -> None:
    """The session's ``--load-baseline-min-detectable``, for assert_no_regression's default."""
    _required_detectable.append(fraction)


def drop_required_detectable(fraction: float) -> None:
    if fraction in _required_detectable:
        _required_detectable.remove(fraction)


def drop_baseline_lookup(lookup: BaselineLookup) -> None:
    if lookup in _lookups:
        _lookups.remove(lookup)


def _load_baseline(path: str | Path) -> tuple[LoadResult, str]:
    try:
        saved = read_saved_runs(path)
    except SavedRunsError as exc:
        raise ValueError(f"baseline {path}: cannot read a saved load result ({exc})") from None
    if len(saved.runs) != 1:
        raise ValueError(
            f"baseline {path}: holds {len(saved.runs)} runs; pass one saved result (or use "
            f"--load-baseline-compare to match runs by test)"
        )
    try:
        return saved.result(next(iter(saved.runs))), str(path)
    except SavedRunsError as exc:
        raise ValueError(f"baseline {path}: cannot read a saved load result ({exc})") from None


def judge_comparison(result: LoadResult, comparison: Comparison) -> None:
    """Record the verdict on the result, so summaries and reports show it."""
    result.judgements.append(comparison.judgement())


def regression_message(result: LoadResult, verdict: RegressionVerdict) -> str:
    return f"{verdict.message()}\n{describe_run(result)}"


def assert_no_regression(
    result: LoadResult,
    baseline: LoadResult | str | Path | None = None,
    metric: str = "p99",
    tolerance: float | str = "10%",
    confidence: float = 0.99,
    *,
    allow_lag: bool = False,
    min_detectable: float | str | None = None,
) -> Comparison | None:
    """Fail if `metric` got significantly worse than the baseline, by more than `tolerance`.

    `baseline` is a LoadResult, the path of a saved result (``result.to_json()``), or None: the
    baseline named by ``--load-baseline-compare`` for this test; None is returned (nothing
    compared) when the session compares against no baseline. An improvement is reported in the
    returned Comparison, never failed. The verdict is `judge_regression`'s: a regression lag
    could explain raises InvalidMeasurement, unless `allow_lag`. With `min_detectable`
    ("10%"; by default ``--load-baseline-min-detectable``), a comparison whose runs could not
    have detected that change raises InvalidMeasurement too.
    """
    __tracebackhide__ = True
    if not isinstance(result, LoadResult):
        raise TypeError(
            f"expected a LoadResult (what load_run returns), got {type(result).__name__}"
        )
    check_metric(metric)
    parse_tolerance(metric, tolerance)
    parse_confidence(confidence)
    if min_detectable is None and _required_detectable:
        min_detectable = _required_detectable[-1]
    if min_detectable is not None:
        parse_min_detectable(min_detectable)
    if baseline is None:
        found = _lookups[-1](result) if _lookups else None
        if found is None:
            return None
        baseline, name = found
    elif isinstance(baseline, LoadResult):
        name = ""
    else:
        baseline, name = _load_baseline(baseline)
    verdict = judge_regression(
        baseline,
        result,
        metric,
        tolerance,
        confidence,
        baseline_name=name,
        allow_lag=allow_lag,
        min_detectable=min_detectable,
    )
    result.judgements.append(verdict.judgement)
    if verdict.comparison is None:
        raise InvalidMeasurement(f"{verdict.reason}\n{describe_run(result)}")
    if verdict.underpowered:
        raise InvalidMeasurement(
            f"cannot vouch for {metric}: {regression_message(result, verdict)}"
        )
    if verdict.invalid:
        raise InvalidMeasurement(
            f"cannot compare {metric} with the baseline: the load generator fell behind its "
            f"schedule ({result.health.describe()}), so the latencies include its own "
            f"delay, and what it could add explains the change. Lower the rate, give the "
            f"generator more CPU, or pass allow_lag=True / --load-allow-lag to judge it "
            f"anyway.\n{regression_message(result, verdict)}"
        )
    if verdict.is_regression:
        raise PerformanceRegression(regression_message(result, verdict))
    return verdict.comparison
