"""The regression test on bursty runs: quiet and disturbed windows, and what a run can detect.

Runs are built through the engine's own `Recorder` from latencies with a known truth: each
second's requests take a lognormal time, some seconds hold a stop-the-world pause (requests
sent during it wait for its end), and the current run is the baseline's server times a
factor. Sizes stay small (50-100 requests/s, 10-30 s): these tests check behaviour, the
benchmark (benchmarks/regression_power.py) measures rates.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

import numpy as np
import pytest

from pytest_seldon_load.assertions import InvalidMeasurement
from pytest_seldon_load.cli import main
from pytest_seldon_load.judgement import UNDERPOWERED
from pytest_seldon_load.rank_test import (
    permutation_sum_p,
    rank_shift,
    smallest_strata_p,
    strata_p_value,
)
from pytest_seldon_load.regression import (
    PerformanceRegression,
    assert_no_regression,
    compare_runs,
    disturbance_levels,
    judge_regression,
    parse_min_detectable,
)
from pytest_seldon_load.report.html import render_report
from pytest_seldon_load.report.json_report import session_document, write_session_json
from pytest_seldon_load.result import LoadResult, Recorder
from pytest_seldon_load.window_quantiles import set_aside_percentiles

pytest_plugins = ["pytester"]


def recorded(
    per_second_ms: Sequence[np.ndarray], *, lag_ms: float = 0.0, scale: float = 1.0
) -> LoadResult:
    """A run whose second s sends len(per_second_ms[s]) requests evenly, each taking its
    latency times `scale` from its actual send, every send `lag_ms` late."""
    recorder = Recorder(warmup=0.0)
    events = []
    lag = lag_ms / 1000.0
    for second, latencies in enumerate(per_second_ms):
        for k, latency in enumerate(latencies):
            intended = second + k / len(latencies)
            sent = intended + lag
            recorder.sent(intended, sent, lag)
            events.append((sent + latency * scale / 1000.0, intended, sent))
    for done, intended, sent in sorted(events):
        recorder.completed(intended, sent, done, 200, None)
    total = sum(len(latencies) for latencies in per_second_ms)
    rate = total / len(per_second_ms)
    return recorder.result(target_rate=rate, duration=float(len(per_second_ms)), scheduled=total)


def pausing_seconds(
    seed: int, seconds: int, rate: int = 100, every: int = 3, pause_ms: float = 25.0
) -> list[np.ndarray]:
    """Lognormal (median 1 ms) latencies; every `every`-th second (random phase) a pause of
    about `pause_ms` at a random moment: requests sent during it wait for its end."""
    rng = np.random.default_rng(seed)
    phase = int(rng.integers(every))
    out = []
    for second in range(seconds):
        latencies = rng.lognormal(0.0, 0.25, rate)
        if (second + phase) % every == 0:
            length = pause_ms * rng.uniform(0.6, 1.4) / 1000.0
            start = rng.uniform(0.0, 1.0 - length)
            sends = np.arange(rate) / rate
            during = (sends >= start) & (sends < start + length)
            latencies[during] += (start + length - sends[during]) * 1000.0
        out.append(latencies)
    return out


# --- the stratified test is exact -------------------------------------------------------


def _brute_force_p(sizes: tuple[tuple[int, int], ...], u: int) -> float:
    """P(|U - centre| >= |u - centre|) by listing every assignment in every stratum."""
    per_stratum = []
    for n, m in sizes:
        us = []
        for current in itertools.combinations(range(n + m), m):
            # U counts pairs (baseline, current) with current above: positions are ranks.
            us.append(sum(1 for c in current for b in set(range(n + m)) - set(current) if c > b))
        per_stratum.append(us)
    totals = [sum(combo) for combo in itertools.product(*per_stratum)]
    centre = sum(n * m for n, m in sizes) / 2.0
    return sum(abs(t - centre) >= abs(u - centre) for t in totals) / len(totals)


@pytest.mark.parametrize("sizes", [((2, 3),), ((2, 2), (1, 3)), ((3, 2), (2, 1), (1, 1))])
def test_stratified_p_values_match_a_full_enumeration(sizes):
    pairs = sum(n * m for n, m in sizes)
    for u in range(pairs + 1):
        assert strata_p_value(sizes, 2 * u) == pytest.approx(_brute_force_p(sizes, u))
    assert smallest_strata_p(sizes) == pytest.approx(_brute_force_p(sizes, pairs))


def test_strata_compare_like_with_like():
    # Quiet windows around 1 ms, disturbed ones around 20 ms; the current run is 20% slower
    # in both, with different shares of disturbed windows.
    rng = np.random.default_rng(3)
    base = np.r_[rng.normal(0.0, 0.02, 7), rng.normal(3.0, 0.5, 3)]
    current = np.r_[rng.normal(0.18, 0.02, 5), rng.normal(3.18, 0.5, 5)]
    labels_b, labels_c = np.r_[[0] * 7, [1] * 3], np.r_[[0] * 5, [1] * 5]
    plain = rank_shift(base, current, 0.99)
    strata = rank_shift(base, current, 0.99, baseline_strata=labels_b, current_strata=labels_c)
    assert strata.p_value < 0.01 < plain.p_value
    assert strata.low > 0.1 and strata.shift == pytest.approx(0.18, abs=0.05)
    assert "2 strata" in strata.method


def test_ties_and_identical_windows_never_make_a_change():
    same = np.array([0.5, 0.5, 0.5, 1.0, 1.0, 2.0])
    labels = np.array([0, 0, 0, 1, 1, 1])
    estimate = rank_shift(same, same, 0.99, baseline_strata=labels, current_strata=labels)
    assert estimate.p_value == 1.0 and estimate.low <= 0.0 <= estimate.high
    flat = recorded([np.full(50, 2.0)] * 10)
    comparison = compare_runs(flat, recorded([np.full(50, 2.0)] * 10))
    assert comparison.verdict == "no significant change" and comparison.p_value == 1.0
    # No noise at all: the tolerance is all that stands between a change and a regression.
    assert comparison.detectable == pytest.approx(0.10, rel=1e-6)


def test_strata_must_label_every_value():
    with pytest.raises(ValueError, match="strata must label every value"):
        rank_shift(np.ones(3), np.ones(3), 0.99, baseline_strata=[0, 1], current_strata=[0, 1, 1])
    with pytest.raises(ValueError, match="both samples or neither"):
        rank_shift(np.ones(3), np.ones(3), 0.99, baseline_strata=[0, 1, 1])


# --- on Recorder-built runs with known truth ---------------------------------------------


def test_paused_seconds_are_labelled_disturbed():
    # 40 ms at 100/s: each pause holds up 2-5 requests, enough to set its second's p99.
    seconds = pausing_seconds(seed=1, seconds=12, every=3, pause_ms=40.0)
    base = recorded(seconds)
    levels, again = disturbance_levels(base, base)
    assert (levels == again).all()
    paused = [i for i, s in enumerate(seconds) if np.sort(s)[-2] > 8.0]
    assert len(paused) == 4 and list(np.flatnonzero(levels >= 2)) == paused
    assert (np.delete(levels, paused) <= 1).all()


def test_a_slowdown_between_pauses_is_caught_where_the_plain_test_is_not_sure():
    caught = 0
    for seed in range(6):
        base = recorded(pausing_seconds(2 * seed, 20))
        current = recorded(pausing_seconds(2 * seed + 1, 20), scale=1.25)
        comparison = compare_runs(base, current)
        caught += comparison.is_regression
        assert comparison.ci_low > 0 or "strata" not in comparison.method
    assert caught >= 5


def test_a_aa_pair_of_pausing_runs_passes():
    for seed in range(4):
        base = recorded(pausing_seconds(2 * seed, 20))
        current = recorded(pausing_seconds(2 * seed + 1, 20))
        assert not compare_runs(base, current).is_regression


def test_new_pauses_in_the_current_run_are_not_compared_away():
    # The baseline never pauses; the current run pauses in most seconds. Comparing quiet
    # windows only would hide it: the disturbance is the change.
    base = recorded(pausing_seconds(1, 20, every=10**6))
    current = recorded(pausing_seconds(2, 20, every=1, pause_ms=40.0))
    comparison = compare_runs(base, current)
    assert "strata" not in comparison.method and comparison.outliers == "more in current"
    assert comparison.is_regression, comparison.headline()


def test_a_single_window_is_not_judged():
    one = recorded([np.full(50, 1.0)])
    verdict = judge_regression(one, one)
    assert verdict.comparison is None and "cannot compare" in verdict.reason


def test_a_lagged_generator_still_is_judged_on_what_lag_cannot_add():
    # Every send 0.5 ms late: the lag could add 0.5 ms to a latency, not +60%.
    base = recorded(pausing_seconds(3, 15))
    slower = recorded(pausing_seconds(4, 15), scale=1.6, lag_ms=0.5)
    slower.health.late_sends = slower.health.sends_checked = 100
    verdict = judge_regression(base, slower)
    assert not slower.kept_up
    assert verdict.is_regression and verdict.beyond_lag is not None
    # ... compared as the main comparison was: each second's pause set aside
    assert verdict.comparison is not None
    assert verdict.beyond_lag.outliers == verdict.comparison.outliers == "set aside"
    # The same server, every send 3 ms late: the latencies grew by the lag alone, so the
    # change is not judged, never blamed on the server.
    lagged = recorded(pausing_seconds(5, 15), lag_ms=3.0)
    lagged.health.late_sends = lagged.health.sends_checked = 100
    lagged.health.max_lag_ms = 3.0
    verdict = judge_regression(base, lagged)
    assert verdict.comparison is not None and verdict.comparison.is_regression
    assert verdict.invalid and not verdict.is_regression


# --- what a run could detect ----------------------------------------------------------


def test_detectable_shrinks_with_more_data():
    def median_detectable(seconds: int) -> float:
        values = [
            compare_runs(
                recorded(pausing_seconds(2 * s, seconds)),
                recorded(pausing_seconds(2 * s + 1, seconds)),
            ).detectable
            for s in range(3)
        ]
        return float(np.median(values))

    short, long = median_detectable(8), median_detectable(24)
    assert math.isfinite(short) and 0.10 < long < short


def test_detectable_is_in_every_message_with_the_evidence(tmp_path):
    base = recorded(pausing_seconds(6, 12))
    slower = recorded(pausing_seconds(7, 12), scale=1.5)
    with pytest.raises(PerformanceRegression) as caught:
        assert_no_regression(slower, base)
    message = str(caught.value)
    assert "could detect +" in message and "or more at 95%" in message
    assert "99% CI +" in message and ("p=" in message or "p<" in message)
    assert "in 12 one-second windows" in message
    assert re.search(
        r"requests above 3x their window's p90 set aside first \(a pause, a tail: [1-9]\d* "
        r"baseline and [1-9]\d* current, not significantly more",
        message,
    )
    judgement = slower.judgements[-1]
    assert judgement.comparison is not None and judgement.comparison["detectable"] > 0
    entry = slower.to_dict() | {"nodeid": "t::a", "key": "t::a", "verdict": "fail"}
    assert "could detect +" in render_report([entry])


def test_min_detectable_fails_a_pass_that_shows_little():
    base = recorded(pausing_seconds(8, 10))
    current = recorded(pausing_seconds(9, 10))
    comparison = compare_runs(base, current)
    strict = f"{comparison.detectable * 100 / 2:.3g}%"
    loose = f"{comparison.detectable * 100 * 2:.3g}%"
    verdict = judge_regression(base, current, min_detectable=strict)
    assert verdict.underpowered and verdict.judgement.invalid == UNDERPOWERED
    assert not verdict.judgement.passed and "was required" in verdict.message()
    with pytest.raises(InvalidMeasurement, match="could detect"):
        assert_no_regression(current, base, min_detectable=strict)
    assert assert_no_regression(current, base, min_detectable=loose) is not None
    assert not judge_regression(base, current, min_detectable=loose).invalid


@pytest.mark.parametrize("bad", ["", "abc", "-5%", "0", "nan%", True, -0.1, math.inf, None])
def test_min_detectable_rejects_what_is_not_a_percentage(bad):
    with pytest.raises(ValueError, match="minimum detectable change"):
        parse_min_detectable(bad)


def test_min_detectable_reads_percentages_and_fractions():
    assert parse_min_detectable("10%") == parse_min_detectable(" 10 ") == 0.1
    assert parse_min_detectable(0.1) == 0.1 and parse_min_detectable("+2.5%") == 0.025


def test_compare_command_shows_detectable_and_can_require_it(tmp_path, capsys):
    def session(path, seed):
        result = recorded(pausing_seconds(seed, 10))
        run = result.to_dict() | {"nodeid": "t::a", "key": "t::a", "verdict": "pass"}
        return write_session_json(path, session_document([run], {"node": "ci"}, {}, "now"))

    old, new = session(tmp_path / "old.json", 10), session(tmp_path / "new.json", 11)
    assert main(["compare", str(old), str(new)]) == 0
    assert " detectable " in capsys.readouterr().out
    assert main(["compare", str(old), str(new), "--min-detectable", "0.5%"]) == 1
    out = capsys.readouterr().out
    assert "TOO LITTLE DATA in 1 comparison(s)" in out and "and 0.5% was required" in out


# --- through pytest -------------------------------------------------------------------

ONE_RUN = """
def test_one(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/delay/5"]), rate=40, duration=5,
             lag_threshold_ms=100)
"""


def test_the_min_detectable_option_fails_a_comparison_that_shows_little(pytester):
    from servers import ServerThread, by_path

    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_one=ONE_RUN)
    with ServerThread(by_path) as server:
        args = ["-p", "no:cacheprovider", f"--seldon-url={server.url}"]
        pytester.runpytest(*args, "--load-baseline-save").assert_outcomes(passed=1)
        plain = pytester.runpytest(*args, "--load-baseline-compare")
        plain.assert_outcomes(passed=1)
        assert re.search(r"test_one: p99 .* this run could detect \+", plain.stdout.str())
        strict = pytester.runpytest(
            *args, "--load-baseline-compare", "--load-baseline-min-detectable=0.1%"
        )
    strict.assert_outcomes(failed=1)
    output = strict.stdout.str()
    assert "and 0.1% was required: run longer" in output, output
    assert "samples: baseline 200 requests in 5 one-second windows" in output


# --- outliers set aside ------------------------------------------------------------------


def _brute_force_sum_p(baseline: list[int], current: list[int]) -> float:
    values = baseline + current
    observed = sum(current)
    sums = [
        sum(values[i] for i in picked)
        for picked in itertools.combinations(range(len(values)), len(current))
    ]
    return sum(s >= observed for s in sums) / len(sums)


@pytest.mark.parametrize(
    "baseline, current",
    [
        ([0, 0, 1, 0], [2, 0, 3]),
        ([1, 1, 1], [1, 1, 1]),
        ([0, 5, 0, 0, 2], [0, 0, 1]),
        ([3], [0, 4]),
    ],
)
def test_the_permutation_test_of_counts_matches_a_full_enumeration(baseline, current):
    assert permutation_sum_p(np.array(baseline), np.array(current)) == pytest.approx(
        _brute_force_sum_p(baseline, current)
    )


def test_large_counts_are_divided_before_enumeration_and_stay_a_valid_test():
    quiet, loud = np.full(10, 900), np.full(10, 1100)
    assert permutation_sum_p(quiet, loud) < 1e-4  # 20,000 in all: divided, still clear
    assert permutation_sum_p(loud, quiet) == pytest.approx(1.0)
    assert permutation_sum_p(np.zeros(5, int), np.zeros(5, int)) == 1.0
    with pytest.raises(ValueError, match="negative"):
        permutation_sum_p(np.array([1, -1]), np.array([0, 2]))


def test_a_windows_pause_is_set_aside_and_its_p99_is_the_rest():
    values = np.array([1.0, 2.0, 3.0, 10.0, 40.0])
    quiet = np.array([0, 60, 40, 0, 0])  # p90 = 3 ms: nothing above 9 ms
    paused = np.array([0, 60, 36, 2, 2])  # a pause put 4 requests at 10 and 40 ms
    empty = np.zeros(5)
    p99, aside = set_aside_percentiles(np.stack([quiet, paused, empty]), values, 99.0)
    assert p99[:2].tolist() == [3.0, 3.0] and math.isnan(p99[2])
    assert aside.tolist() == [0, 4, 0]
    # all tied: the bar is 3x the value itself, nothing is set aside
    p99, aside = set_aside_percentiles(np.array([[0, 0, 50, 0, 0]]), values, 99.0)
    assert p99.tolist() == [3.0] and aside.tolist() == [0]


def pauses_and_tail(seed: int, seconds: int, rate: int = 200) -> list[np.ndarray]:
    """A pause of 10-50 ms every 2 s and 0.5% of requests with a heavy-tailed extra: the
    server whose every other second's p99 is a pause and most others' a tail request."""
    rng = np.random.default_rng(seed)
    out = pausing_seconds(seed, seconds, rate=rate, every=2, pause_ms=30.0)
    for latencies in out:
        hit = rng.random(latencies.size) < 0.005
        latencies[hit] += 2.0 * rng.pareto(1.5, int(hit.sum()))
    return out


def test_a_slowdown_of_a_pausing_heavy_tailed_server_is_caught_and_a_a_is_not():
    caught = flagged = 0
    for seed in range(5):
        base = recorded(pauses_and_tail(3 * seed, 10))
        slower = compare_runs(base, recorded(pauses_and_tail(3 * seed + 1, 10), scale=1.2))
        same = compare_runs(base, recorded(pauses_and_tail(3 * seed + 2, 10)))
        caught += slower.is_regression
        flagged += same.is_regression
        assert slower.outliers == "set aside" and slower.set_aside[1] > 0
        assert same.ci_low <= 0.0 <= same.ci_high or not same.significant
    assert caught >= 4 and flagged == 0


def test_a_fatter_tail_is_a_regression_not_an_outlier():
    # The same model, but one request in ten of the current run takes 5-10x longer: the
    # p99 of the rest barely moves; what was set aside is the change.
    rng = np.random.default_rng(5)
    base = recorded([rng.lognormal(0.0, 0.25, 100) for _ in range(15)])
    seconds = [rng.lognormal(0.0, 0.25, 100) for _ in range(15)]
    for latencies in seconds:
        latencies[::10] *= rng.uniform(5.0, 10.0, latencies[::10].size)
    comparison = compare_runs(base, recorded(seconds))
    assert comparison.outliers == "more in current"
    assert comparison.set_aside[0] < comparison.set_aside[1]
    assert comparison.is_regression, comparison.headline()
    assert "significantly more requests above 3x" in comparison.evidence()


def test_p999_is_compared_with_every_request():
    base = recorded(pausing_seconds(1, 12))
    comparison = compare_runs(base, recorded(pausing_seconds(2, 12)), "p999")
    assert comparison.outliers == "" and comparison.set_aside == (0, 0)
