"""Verdicts with known truth: ties, identical and single windows, lag, and one rule for all.

Runs are recorded through the engine's `Recorder` (tests/recorded.py), so each window's
server time and the generator's lag are known.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from recorded import recorded_run

from pytest_seldon_load.assertions import (
    BudgetExceeded,
    InvalidMeasurement,
    assert_p50_below,
    assert_p99_below,
)
from pytest_seldon_load.baseline import build_baseline, write_baseline
from pytest_seldon_load.cli import main as cli_main
from pytest_seldon_load.judgement import LAG, NOT_COMPARABLE, Judgement
from pytest_seldon_load.rank_test import rank_shift
from pytest_seldon_load.regression import (
    PerformanceRegression,
    assert_no_regression,
    compare_runs,
    judge_regression,
    window_values,
)
from pytest_seldon_load.result import LoadResult

pytest_plugins = ["pytester"]

REPORTED_BASELINE = [15.5, 16.7, 33.4, 17.6, 11.0]
REPORTED_CURRENT = [54.1, 40.7, 48.8, 54.1, 56.1]


# --- the exact test, with ties ---------------------------------------------------------------


def test_the_reported_three_times_slower_p99_with_a_tie_is_a_regression():
    baseline, current = recorded_run(REPORTED_BASELINE), recorded_run(REPORTED_CURRENT)
    windows = window_values(current, "p99")
    assert windows[0] == windows[3]  # the tie that used to switch to the asymptotic test
    comparison = compare_runs(baseline, current)
    # No overlap at all: the exact two-sided p of 5 against 5 windows is 2 / C(10, 5).
    assert comparison.p_value == pytest.approx(2 / math.comb(10, 5))
    assert comparison.verdict == "regression"
    assert comparison.ci_low > 0.10 and comparison.change > 1.0
    assert "p=0.0079" in comparison.headline()


def test_identical_windows_are_no_change_with_an_interval_around_zero():
    run = recorded_run([5.0, 5.0, 6.0, 5.0, 7.0, 5.0], spread=0.0)
    comparison = compare_runs(run, recorded_run([5.0, 5.0, 6.0, 5.0, 7.0, 5.0]))
    assert comparison.p_value == 1.0
    assert comparison.verdict == "no significant change"
    assert comparison.ci_low <= 0 <= comparison.ci_high and comparison.change == 0


def test_one_window_cannot_be_judged_by_any_surface():
    baseline, current = recorded_run([10.0]), recorded_run([30.0])
    with pytest.raises(InvalidMeasurement, match="at least 5s"):
        compare_runs(baseline, current)
    verdict = judge_regression(baseline, current)
    assert verdict.comparison is None and verdict.invalid
    assert verdict.judgement.invalid == NOT_COMPARABLE and not verdict.is_regression
    with pytest.raises(InvalidMeasurement):
        assert_no_regression(current, baseline)
    assert current.judgements[-1].verdict == "invalid"


def _enumerated_p(x: np.ndarray, y: np.ndarray) -> float:
    """The oracle: U's null distribution by enumerating every placement of y's ranks among
    n + m untied positions; a tie across the samples taken the least significant way."""
    n, m = x.size, y.size
    centre = n * m / 2
    us = [sum(ranks) - m * (m + 1) / 2 for ranks in itertools.combinations(range(1, n + m + 1), m)]
    low = sum(1 for a in y for b in x if a > b)
    high = sum(1 for a in y for b in x if a >= b)
    u = min(max(centre, low), high)
    return sum(1 for v in us if abs(v - centre) >= abs(u - centre) - 1e-9) / len(us)


def test_exact_p_values_with_ties_match_an_enumeration():
    rng = np.random.default_rng(17)
    for _ in range(60):
        n, m = int(rng.integers(1, 7)), int(rng.integers(1, 7))
        x = rng.integers(0, 5, n).astype(float)  # few distinct values: ties everywhere
        y = (rng.integers(0, 5, m) + rng.integers(0, 3)).astype(float)
        assert rank_shift(x, y, 0.9).p_value == pytest.approx(_enumerated_p(x, y)), (x, y)


def test_untied_p_values_match_scipy_exact():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    for _ in range(50):
        n, m = int(rng.integers(2, 20)), int(rng.integers(2, 20))
        x, y = rng.normal(0, 1, n), rng.normal(rng.uniform(-1, 1), 1, m)
        expected = stats.mannwhitneyu(y, x, method="exact").pvalue
        assert rank_shift(x, y, 0.99).p_value == pytest.approx(expected, abs=1e-12)


def test_with_ties_the_interval_excludes_zero_exactly_when_p_is_significant():
    rng = np.random.default_rng(23)
    for _ in range(400):
        n, m = int(rng.integers(3, 15)), int(rng.integers(3, 15))
        x = rng.integers(0, 6, n).astype(float)
        y = (rng.integers(0, 6, m) + rng.integers(-3, 4)).astype(float)
        confidence = float(rng.choice([0.8, 0.9, 0.95, 0.99]))
        estimate = rank_shift(x, y, confidence)
        significant = estimate.p_value < 1 - confidence
        assert significant == (estimate.low > 0 or estimate.high < 0), (x, y, estimate)
        assert estimate.low <= estimate.shift <= estimate.high


# --- lag never hides a server's fault --------------------------------------------------------


def test_a_budget_broken_by_the_service_time_alone_is_the_servers_despite_lag():
    # The reported case: the model 25 ms slower (29.1 ms service time), every send 10 ms late.
    slower = recorded_run([29.1] * 5, lag_ms=10.0, spread=0.02)
    assert not slower.kept_up and slower.service_percentile(50) > 25
    with pytest.raises(BudgetExceeded, match="the service time alone"):
        assert_p50_below(slower, "25ms")
    judged = slower.judgements[-1]
    assert judged.kind == "percentile" and judged.server_fault and judged.invalid == ""


def test_a_budget_missed_only_by_what_lag_adds_is_invalid():
    lagged = recorded_run([20.0] * 5, lag_ms=10.0, spread=0.02)
    assert lagged.percentile(50) > 25 > lagged.service_percentile(50)
    with pytest.raises(InvalidMeasurement, match="fell behind"):
        assert_p50_below(lagged, "25ms")
    assert lagged.judgements[-1].invalid == LAG and lagged.judgements[-1].verdict == "invalid"
    assert_p99_below(lagged, "40ms")  # met despite lag: met


def _lag_pair(current_service_ms: float, lag_ms: float) -> tuple[LoadResult, LoadResult]:
    baseline = recorded_run([4.0] * 10, spread=0.1, seed=1)
    current = recorded_run([current_service_ms] * 10, lag_ms=lag_ms, spread=0.1, seed=2)
    return baseline, current


def test_a_regression_lag_could_explain_is_invalid():
    baseline, current = _lag_pair(4.0, 8.0)
    assert compare_runs(baseline, current).is_regression  # latency tripled, by the lag
    verdict = judge_regression(baseline, current)
    assert verdict.invalid and not verdict.is_regression
    assert verdict.judgement.invalid == LAG
    with pytest.raises(InvalidMeasurement, match="fell behind"):
        assert_no_regression(current, baseline)


def test_a_regression_beyond_what_lag_could_add_is_the_servers():
    baseline, current = _lag_pair(6.0, 8.0)  # 50% slower service, and a lagging generator
    verdict = judge_regression(baseline, current)
    assert verdict.is_regression and verdict.beyond_lag is not None
    assert verdict.beyond_lag.change == pytest.approx(0.5, abs=0.1)
    with pytest.raises(PerformanceRegression, match="the regression is the server's"):
        assert_no_regression(current, baseline)
    assert current.judgements[-1].server_fault


# --- one verdict, three surfaces ---------------------------------------------------------------

SCENARIOS = {
    "regression": (6.0, 8.0),
    "invalid": (4.0, 8.0),
    "no regression": (4.2, 0.0),  # +5%: within the tolerance of 10%
}
INNER_TEST = """
from pathlib import Path

from pytest_seldon_load.pytest_plugin.run_registry import register_result
from pytest_seldon_load.result import LoadResult

def test_run(request):
    result = LoadResult.from_json(Path({path!r}).read_text())
    register_result(request.config, request.node, result)
"""


def _by_assertion(baseline: LoadResult, current: LoadResult) -> str:
    try:
        assert_no_regression(current, baseline)
    except PerformanceRegression:
        return "regression"
    except InvalidMeasurement:
        return "invalid"
    return "no regression"


def _by_cli(tmp_path: Path, baseline: LoadResult, current: LoadResult, capsys) -> str:
    (tmp_path / "a.json").write_text(baseline.to_json())
    (tmp_path / "b.json").write_text(current.to_json())
    code = cli_main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    if code == 1:
        return "regression"
    assert code == 0, out
    return "invalid" if "not judged (generator lag)" in out else "no regression"


def _by_plugin(pytester: pytest.Pytester, baseline: LoadResult, current: LoadResult) -> str:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    saved = pytester.path / "current.json"
    saved.write_text(current.to_json())
    pytester.makepyfile(test_same=INNER_TEST.format(path=str(saved)))
    key = "test_same.py::test_run"
    entry = baseline.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"}
    document, _ = build_baseline("main", [entry], {}, {})
    write_baseline(pytester.path / ".load-baselines" / "main.json", document)
    result = pytester.runpytest("-p", "no:cacheprovider", "--load-baseline-compare=main")
    output = result.stdout.str()
    outcomes = result.parseoutcomes()
    if outcomes.get("failed"):
        assert "PerformanceRegression" in output, output
        return "regression"
    assert outcomes.get("passed") == 1, output
    return "invalid" if "not judged against baseline 'main'" in output else "no regression"


@pytest.mark.parametrize("expected", list(SCENARIOS))
def test_the_plugin_the_assertion_and_compare_give_one_verdict(
    expected, pytester, tmp_path, capsys
):
    service_ms, lag_ms = SCENARIOS[expected]
    baseline, current = _lag_pair(service_ms, lag_ms)
    verdicts = {
        "assert_no_regression": _by_assertion(baseline, LoadResult.from_json(current.to_json())),
        "seldon-load compare": _by_cli(tmp_path, baseline, current, capsys),
        "--load-baseline-compare": _by_plugin(pytester, baseline, current),
    }
    assert set(verdicts.values()) == {expected}, verdicts


# --- judgements as data --------------------------------------------------------------------


def test_judgements_round_trip_through_json_and_older_files_still_read():
    baseline, current = _lag_pair(6.0, 0.0)
    assert_p99_below(current, "1s")
    with pytest.raises(PerformanceRegression):
        assert_no_regression(current, baseline)
    again = LoadResult.from_json(current.to_json())
    assert again.judgements == current.judgements
    budget, regression = again.judgements
    assert (budget.kind, budget.quantile, budget.limit, budget.passed) == (
        "percentile",
        99.0,
        1000.0,
        True,
    )
    assert regression.kind == "regression" and regression.comparison["metric"] == "p99"
    legacy = {"budget": "p50 < 25.0ms", "passed": False, "measured": "invalid: lag"}
    old = Judgement.from_dict(legacy)
    assert (old.kind, old.limit, old.quantile, old.invalid) == ("percentile", 25.0, 50.0, "lag")
    for bad in ({"kind": "percentile", "passed": "yes"}, {"kind": "nope", "passed": True}, []):
        with pytest.raises(ValueError):
            Judgement.from_dict(bad)
    json.dumps(again.to_dict())
