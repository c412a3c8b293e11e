"""A percentile budget held in every window of the timeline (``p99@10s``): synthetic runs with
known truth, recorded through the engine's own Recorder, where one bad second is hidden in the
whole run's p99 but not in its window's."""

from __future__ import annotations

import re

import pytest
from recorded import recorded_run

from pytest_seldon_load import BudgetExceeded, InvalidMeasurement, assert_p99_below
from pytest_seldon_load.assertions import budget_checks, judge_budgets
from pytest_seldon_load.cli.thresholds import threshold
from pytest_seldon_load.iago.stats import SummaryLoadResult
from pytest_seldon_load.judgement import Judgement
from pytest_seldon_load.report.junit import junit_properties
from pytest_seldon_load.timeline_windows import window_percentiles


def one_bad_second(seconds: int = 150, bad: int = 12, *, lag_ms: float = 0.0):
    """`seconds` seconds at 50/s answered in 5 ms, but second `bad` in 80 ms: 50 slow
    answers of 7,500 (0.67%) leave the whole run's p99 at 5 ms."""
    service = [5.0] * seconds
    service[bad] = 80.0
    return recorded_run(service, rate=50, lag_ms=lag_ms)


def test_one_bad_second_passes_the_whole_run_and_fails_its_window():
    run = one_bad_second()
    assert assert_p99_below(run, "50ms") == pytest.approx(5.0, rel=0.02)
    with pytest.raises(BudgetExceeded) as failed:
        assert_p99_below(run, "50ms", every="10s")
    message = str(failed.value)
    assert re.search(
        r"p99 latency 80\.\dms in seconds 10-19 is over its budget of 50\.0ms", message
    )
    judged = run.judgements[-1]
    assert (judged.label, judged.window_s, judged.passed) == (
        "p99 < 50.0ms in every 10s",
        10,
        False,
    )
    assert judged.measured == pytest.approx(80.0, rel=0.02)


@pytest.mark.parametrize(
    ("every", "bad", "where", "fails"),
    [
        ("1s", 12, "in second 12", True),
        (5, 12, "in seconds 10-14", True),
        ("10s", 145, "in seconds 140-149", True),
        ("60s", 12, "", True),  # 50 slow of 3,000 answers: 1.7% of the first minute
        ("150s", 12, "", False),  # one window: the whole run
    ],
)
def test_windows_of_any_length_name_the_worst(every, bad, where, fails):
    run = one_bad_second(bad=bad)
    if not fails:
        assert assert_p99_below(run, "50ms", every=every) == pytest.approx(5.0, rel=0.02)
        return
    with pytest.raises(BudgetExceeded, match=where or "in seconds 0-59"):
        assert_p99_below(run, "50ms", every=every)


def test_a_short_last_window_is_judged_like_the_others():
    run = one_bad_second(seconds=25, bad=22)
    windows = window_percentiles(run, 99, 10)
    assert [(w.first, w.last) for w in windows] == [(0, 9), (10, 19), (20, 24)]
    assert [round(w.latency) for w in windows] == [5, 5, 80]
    with pytest.raises(BudgetExceeded, match="in seconds 20-24"):
        assert_p99_below(run, "50ms", every="10s")


def test_a_bad_window_beyond_the_generators_lag_is_the_servers_and_one_within_is_not():
    lagging = one_bad_second(lag_ms=60.0)  # every send 60 ms late: the generator lagged
    assert not lagging.kept_up
    # service time alone breaks 50 ms in seconds 10-19: the server's, lag or not
    with pytest.raises(BudgetExceeded, match="service time alone"):
        assert_p99_below(lagging, "50ms", every="10s")
    # 70 ms: every window is over it only by the lag the generator added (5 + 60 ms)
    calm = recorded_run([5.0] * 30, rate=50, lag_ms=60.0)
    with pytest.raises(InvalidMeasurement, match="fell behind its own schedule"):
        assert_p99_below(calm, "50ms", every="10s")
    assert calm.judgements[-1].invalid and calm.judgements[-1].window_s == 10


def test_marker_budgets_and_thresholds_spell_a_window_with_at():
    run = one_bad_second()
    verdicts = judge_budgets(run, {"p99": "50ms", "p99@10s": "50ms", "p50@5s": "50ms"})
    assert [(j.label, j.passed) for j in verdicts] == [
        ("p99 < 50.0ms", True),
        ("p99 < 50.0ms in every 10s", False),
        ("p50 < 50.0ms in every 5s", True),
    ]
    assert threshold("p99@10s<80ms").budget == ("p99@10s", "80ms")
    assert threshold("p(99.9)@30s<1s").budget == ("p(99.9)@30s", "1s")
    properties = dict(junit_properties([run.to_dict() | {"key": "t"}]))
    assert properties["load_budget_p99@10s"].startswith("FAIL: p99 < 50.0ms in every 10s")
    assert properties["load_budget_p99"].startswith("pass")


@pytest.mark.parametrize(
    ("budgets", "words"),
    [
        ({"p99@0s": "50ms"}, "a window is a whole number of seconds"),
        ({"p99@1.5s": "50ms"}, "a window is a whole number of seconds"),
        ({"p99@soon": "50ms"}, "budgets['p99@soon'] window"),
        ({"error_rate@10s": 0.01}, "unknown budget 'error_rate@10s'"),
    ],
)
def test_a_bad_window_is_refused_naming_the_key(budgets, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        budget_checks(budgets)


def test_a_summary_only_run_cannot_be_judged_window_by_window():
    summary = SummaryLoadResult(
        target_rate=50, duration=10, scheduled=500, requests=500, ok=500,
        latency_summary={"count": 500, "p50": 4.0, "p99": 9.0, "maximum": 12.0},
    )  # fmt: skip
    assert assert_p99_below(summary, "50ms") == pytest.approx(9.0)
    with pytest.raises(InvalidMeasurement, match="no per-second timeline"):
        assert_p99_below(summary, "50ms", every="10s")


def test_the_window_travels_with_the_judgement():
    judged = Judgement("percentile", "p99 < 50.0ms in every 10s", False, 80.0, 50.0, 99.0)
    judged = Judgement.from_dict(judged.to_dict() | {"window_s": 10})
    assert judged.window_s == 10 and Judgement.from_dict(judged.to_dict()) == judged
    assert "window_s" not in Judgement("percentile", "p99 < 1ms", True, 0.5, 1.0, 99.0).to_dict()
    with pytest.raises(ValueError, match="'window_s' must be a whole number of seconds"):
        Judgement.from_dict(judged.to_dict() | {"window_s": 2.5})
