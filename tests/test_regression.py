"""The regression statistics on synthetic runs with known truth, and assert_no_regression.

"Default sizes" are the README's example load test: 20 s at 200 requests/s, judged with the
defaults (p99, tolerance 10%, confidence 0.99). Synthetic runs come from the same generator as
benchmarks/regression_power.py, through real HDR histograms per second.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_seldon_load.assertions import InvalidMeasurement
from pytest_seldon_load.regression import (
    Comparison,
    PerformanceRegression,
    assert_no_regression,
    compare_runs,
    drop_baseline_lookup,
    parse_tolerance,
    rank_shift,
    smallest_p,
    use_baseline_lookup,
    window_seconds,
    window_values,
)
from pytest_seldon_load.result import LoadResult, Window

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
power = importlib.import_module("regression_power")

RATE, SECONDS, TRIALS = 200, 20, 200


def pair(trial: int, shift: float, model=power.STEADY, rate=RATE, seconds=SECONDS):
    rng = np.random.default_rng(1_000_003 * trial + 7)
    baseline = power.synthetic_run(rng, rate, seconds, model)
    current = power.synthetic_run(rng, rate, seconds, model, scale=1.0 + shift)
    return baseline, current


# --- known truth: false alarms, detection, improvements --------------------------------


@pytest.mark.parametrize("model", [power.STEADY, power.DISTURBED], ids=lambda m: m.name)
def test_a_a_comparisons_rarely_flag_a_regression(model):
    flagged = sum(compare_runs(*pair(t, 0.0, model)).is_regression for t in range(TRIALS))
    assert flagged <= TRIALS // 100, f"{flagged} false alarms in {TRIALS} A/A trials"


def test_a_twenty_percent_slower_p99_is_caught_at_the_default_sizes():
    caught = sum(compare_runs(*pair(t, 0.20)).is_regression for t in range(TRIALS))
    assert caught >= 0.95 * TRIALS, f"caught {caught} of {TRIALS} +20% shifts"


def test_improvements_are_reported_never_failed():
    verdicts = set()
    for trial in range(100):
        baseline, current = pair(trial, -0.20 if trial % 2 else -0.5)
        comparison = assert_no_regression(current, baseline)
        assert comparison is not None and not comparison.is_regression
        verdicts.add(comparison.verdict)
    assert verdicts == {"improvement"}


def test_throughput_and_error_rate_improvements_never_fail():
    baseline = _with_outcomes(_flat_run(1.0), ok=180, errors=20)
    better = _with_outcomes(_flat_run(1.0), ok=200, errors=0)
    for metric in ("throughput", "error_rate"):
        comparison = assert_no_regression(better, baseline, metric=metric, tolerance="1%")
        assert comparison.verdict == "improvement", comparison.headline()


# --- the message -------------------------------------------------------------------------


def test_a_regression_message_carries_the_evidence():
    baseline, current = pair(0, 0.30)
    with pytest.raises(PerformanceRegression) as failure:
        assert_no_regression(current, baseline)
    message = str(failure.value)
    first = message.splitlines()[0]
    assert first.startswith("p99 regression vs baseline: ")
    assert "→" in first and "+3" in first  # baseline → current, and the change near +30%
    assert "99% CI +" in first and ".." in first
    assert "p<0.0001" in first or "p=" in first
    assert "tolerance 10%" in first
    assert "baseline " in message and " requests in 20 one-second windows" in message
    assert "Mann-Whitney U" in message
    assert "run: " in message and "p99" in message  # the usual run description and table
    judged = current.judgements[-1]
    assert judged.kind == "regression" and judged.passed is False and judged.server_fault
    assert judged.comparison is not None and judged.comparison["verdict"] == "regression"


def test_the_interval_and_the_p_value_always_agree():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n, m = int(rng.integers(5, 25)), int(rng.integers(5, 25))
        baseline = rng.normal(0, 1, n).round(1)
        current = rng.normal(rng.uniform(-1.5, 1.5), 1, m).round(1)
        estimate = rank_shift(baseline, current, 0.99)
        significant = estimate.p_value < 0.01
        # The interval's ends are pairwise differences, open when the test rejects them.
        if estimate.low > 0 or estimate.high < 0:
            assert significant, estimate
        if significant:
            assert estimate.low >= 0 or estimate.high <= 0, estimate
        assert estimate.low <= estimate.shift <= estimate.high


# --- inputs and edges ----------------------------------------------------------------


def test_tolerances_read_as_documented():
    assert parse_tolerance("p99", "10%").relative and parse_tolerance("p99", "10%").amount == 0.1
    five = parse_tolerance("p99", "5ms")
    assert not five.relative and five.amount == 5.0
    assert parse_tolerance("p50", 2.5).amount == 2.5
    points = parse_tolerance("error_rate", "0.5%")
    assert not points.relative and points.amount == pytest.approx(0.005)
    assert parse_tolerance("throughput", "20/s").amount == 20.0
    assert parse_tolerance("throughput", "5%").relative
    for metric, bad in (("p99", "ten"), ("error_rate", 2), ("throughput", "-3"), ("p77", "10%")):
        with pytest.raises(ValueError):
            parse_tolerance(metric, bad)


def test_window_values_are_each_seconds_hdr_percentile():
    baseline, _ = pair(0, 0.0, seconds=5)
    values = window_values(baseline, "p99")
    assert values.tolist() == pytest.approx([w.p99 for w in baseline.windows])
    assert window_values(baseline, "p50").tolist() == pytest.approx(
        [w.p50 for w in baseline.windows]
    )
    assert window_values(baseline, "throughput").tolist() == [w.ok for w in baseline.windows]


def test_stragglers_after_the_run_join_its_last_window():
    run = _flat_run(1.0, seconds=6)
    last = run.windows[-1].ok
    run.windows.append(Window(6, ok=3))
    values = window_values(run, "throughput")
    assert values.size == 6 and values[-1] == last + 3


def test_long_runs_are_compared_in_windows_of_several_seconds():
    run = _flat_run(1.0, seconds=150)
    assert window_seconds(run) == 3
    assert window_values(run, "throughput").size == 50


def test_runs_too_short_to_ever_be_significant_are_not_judged():
    assert smallest_p(4, 4) > 0.01 > smallest_p(5, 5)
    baseline, current = pair(0, 0.5, seconds=4)
    with pytest.raises(InvalidMeasurement, match="at least 5s"):
        assert_no_regression(current, baseline)
    assert current.judgements[-1].invalid == "not comparable"
    assert current.judgements[-1].verdict == "invalid"


def test_lag_does_not_hide_a_regression_the_service_time_shows():
    # These synthetic runs have service time = latency: the lag flagged added nothing, so
    # the regression is the server's (tests/test_verdicts.py has lag that explains one).
    baseline, slower = pair(0, 0.5, seconds=10)
    slower.health.late_sends = slower.health.sends_checked = 100
    with pytest.raises(PerformanceRegression, match="the regression is the server's"):
        assert_no_regression(slower, baseline)
    assert slower.judgements[-1].server_fault
    # Lag only makes a run look worse: no regression despite it stands.
    baseline, same = pair(1, 0.0, seconds=10)
    same.health.late_sends = same.health.sends_checked = 100
    comparison = assert_no_regression(same, baseline)
    assert comparison is not None and not comparison.is_regression


def test_error_rate_moves_in_points_even_from_zero():
    clean = _with_outcomes(_flat_run(1.0), ok=200, errors=0)
    failing = _with_outcomes(_flat_run(1.0), ok=190, errors=10)
    comparison = compare_runs(clean, failing, "error_rate", "1%")
    assert comparison.is_regression
    assert comparison.difference == pytest.approx(0.05, abs=0.005)
    assert comparison.format_change().endswith(" points")
    assert "points" in comparison.format_interval()
    assert compare_runs(clean, failing, "error_rate", "10%").verdict == "within tolerance"


def test_throughput_drop_is_a_regression():
    fast = _with_outcomes(_flat_run(1.0), ok=200, errors=0)
    slow = _with_outcomes(_flat_run(1.0), ok=150, errors=0)
    comparison = compare_runs(fast, slow, "throughput")
    assert comparison.is_regression and comparison.change == pytest.approx(-0.25, abs=0.02)


def test_baseline_as_a_saved_result_file(tmp_path):
    baseline, current = pair(1, 0.0, seconds=10)
    saved = tmp_path / "baseline.json"
    saved.write_text(baseline.to_json())
    comparison = assert_no_regression(current, saved)
    assert isinstance(comparison, Comparison) and comparison.baseline_name == str(saved)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read a saved load result"):
        assert_no_regression(current, tmp_path / "broken.json")


def test_no_baseline_option_means_nothing_compared():
    _, current = pair(1, 0.0, seconds=10)
    assert assert_no_regression(current) is None
    baseline, _ = pair(2, 0.0, seconds=10)

    def lookup(result):
        return baseline, "main"

    use_baseline_lookup(lookup)
    try:
        comparison = assert_no_regression(current)
    finally:
        drop_baseline_lookup(lookup)
    assert comparison is not None and comparison.baseline_name == "main"
    assert "vs baseline 'main'" in comparison.headline()
    json.dumps(comparison.to_dict())


def test_comparisons_are_deterministic():
    baseline, current = pair(5, 0.1)
    first, second = compare_runs(baseline, current), compare_runs(baseline, current)
    assert first == second and not math.isnan(first.p_value)


# --- helpers ---------------------------------------------------------------------------


def _flat_run(scale: float, seconds: int = 10) -> LoadResult:
    return power.synthetic_run(np.random.default_rng(11), RATE, seconds, scale=scale)


def _with_outcomes(run: LoadResult, ok: int, errors: int) -> LoadResult:
    """The same run with every second's outcomes set (and a little noise per second)."""
    rng = np.random.default_rng(ok * 31 + errors)
    run.ok = run.errors = 0
    for window in run.windows:
        window.ok = ok + int(rng.integers(-2, 3))
        window.errors = max(0, errors + int(rng.integers(-2, 3))) if errors else 0
        run.ok += window.ok
        run.errors += window.errors
    run.requests = run.scheduled = run.ok + run.errors
    return run
