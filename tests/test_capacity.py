"""Capacity search: the stepping and refining on synthetic stages, then a server of known
capacity on 127.0.0.1 found within one step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from xml.etree import ElementTree

import pytest
from recorded import recorded_run
from servers import ServerThread, Slots

from pytest_seldon_load import (
    BudgetExceeded,
    Capacity,
    InvalidMeasurement,
    SeldonEndpoint,
    assert_capacity_at_least,
    find_capacity,
    write_replay,
)
from pytest_seldon_load.capacity import CapacitySearch, Stage, judge_capacity
from pytest_seldon_load.cli import main
from pytest_seldon_load.engines import EngineRegistry
from pytest_seldon_load.plan import RunPlan
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.result import LoadResult

BUDGETS = {"p99": "50ms", "error_rate": 0.01}


def synthetic_server(capacity: float, *, lag_from: float = math.inf, errors_from: float = math.inf):
    """Stages of a server that answers in 10 ms up to `capacity` req/s and in 80 ms beyond; the
    generator lags from `lag_from`, and 5% of answers are errors from `errors_from`."""

    def measure(rate: float) -> Stage:
        service = 10.0 if rate <= capacity else 80.0
        lag = 45.0 if rate >= lag_from else 0.0  # enough to break p99 < 50ms by itself
        result = recorded_run([service, service], rate=50, lag_ms=lag, spread=0.05)
        if rate >= errors_from:
            result.errors = result.scheduled // 20
            result.error_kinds = {"http_503": result.errors}
        return Stage.judged(rate, result, BUDGETS, allow_lag=False)

    return measure


def search(measure, **options) -> Capacity:
    settings = {"start": 50, "max_rate": 2000} | options
    return CapacitySearch(BUDGETS, **settings).run(measure)


def rates(capacity: Capacity) -> list[float]:
    return [stage.rate for stage in capacity.stages]


# --- stepping and refining, on synthetic stages --------------------------------------------


def test_steps_up_until_a_budget_breaks_then_refines_to_the_resolution():
    found = search(synthetic_server(340))
    assert rates(found)[:4] == [50, 100, 200, 400]  # doubling until 400 breaks p99
    assert found.stopped == "budget"
    assert found.rate is not None and found.first_bad is not None
    assert found.rate <= 340 < found.first_bad
    assert found.first_bad - found.rate <= 0.1 * found.rate  # within one step of the truth
    assert [s.verdict for s in found.stages if s.rate > 340] == ["FAIL"] * sum(
        1 for r in rates(found) if r > 340
    )
    assert "p99 < 50.0ms" in found.breaking_stage.reasons[0]  # type: ignore[union-attr]


def test_additive_steps_and_a_finer_resolution():
    found = search(synthetic_server(340), start=100, step=100, resolution=0.02)
    assert rates(found)[:4] == [100, 200, 300, 400]
    assert found.rate is not None and found.first_bad is not None
    assert found.rate <= 340 < found.first_bad <= found.rate * 1.02


def test_errors_break_a_stage_as_a_budget_does():
    found = search(synthetic_server(10_000, errors_from=150))
    assert found.rate is not None and found.rate < 150 <= found.first_bad  # type: ignore[operator]
    assert "error rate" in found.breaking_stage.reasons[0]  # type: ignore[union-attr]


def test_a_lagged_stage_is_no_verdict_and_stops_the_search():
    found = search(synthetic_server(10_000, lag_from=400))
    assert found.stopped == "invalid" and found.first_bad is None
    assert found.rate == 200 and rates(found) == [50, 100, 200, 400, 400]  # run once more
    assert found.rerun == 1 and "were run again" in found.describe()
    assert "fell behind" in " ".join(found.invalid_stage.reasons)  # type: ignore[union-attr]
    assert "not a verdict on the server" in found.describe()
    verdict = judge_capacity(found, 300)
    assert not verdict.passed and verdict.invalid
    with pytest.raises(InvalidMeasurement, match="A lagged stage is not a verdict"):
        assert_capacity_at_least(found, 300)
    assert assert_capacity_at_least(found, 150) == 200  # what was shown before the lag holds


def test_a_stage_that_lags_once_is_run_again_and_judged():
    lagging = {"left": 1}
    steady = synthetic_server(340)
    stalled = synthetic_server(340, lag_from=0)

    def once_at_200(rate: float) -> Stage:
        if rate == 200 and lagging["left"]:
            lagging["left"] -= 1
            return stalled(rate)
        return steady(rate)

    found = search(once_at_200)
    assert rates(found)[:5] == [50, 100, 200, 200, 400]
    assert [s.verdict for s in found.stages[2:4]] == ["invalid", "pass"]
    assert found.stopped == "budget" and found.invalid_stage is None
    assert found.rate is not None and found.rate <= 340 < found.first_bad  # type: ignore[operator]
    never_again = search(synthetic_server(10_000, lag_from=100), lag_retries=0)
    assert rates(never_again) == [50, 100] and never_again.stopped == "invalid"


def test_a_budget_broken_despite_lag_is_still_the_servers():
    found = search(synthetic_server(300, lag_from=400))
    # At 400/s the service time alone (80 ms) breaks p99 < 50ms: a verdict, lag or not.
    assert found.stopped == "budget" and found.rate is not None and found.rate <= 300


def test_max_rate_reached_and_a_failing_start():
    capped = search(synthetic_server(10_000), start=100, max_rate=300)
    assert rates(capped) == [100, 200, 300] and capped.stopped == "max_rate"
    assert "may be higher" in capped.describe()
    with pytest.raises(InvalidMeasurement, match="raise max_rate"):
        assert_capacity_at_least(capped, 500)
    too_fast = search(synthetic_server(20), start=50)
    assert too_fast.stopped == "start" and too_fast.rate is None and rates(too_fast) == [50]
    with pytest.raises(BudgetExceeded, match="even the starting rate 50/s broke a budget"):
        assert_capacity_at_least(too_fast, 10)


def test_the_stage_limit_ends_a_search_that_cannot_converge():
    found = search(synthetic_server(340), max_stages=5, resolution=0.001)
    assert len(found.stages) == 5 and found.stopped == "stages"


def test_assert_capacity_at_least_explains_a_shortfall_with_the_stages():
    found = search(synthetic_server(340))
    assert assert_capacity_at_least(found, 300) == found.rate
    with pytest.raises(BudgetExceeded) as failure:
        assert_capacity_at_least(found, 500)
    message = str(failure.value)
    assert message.startswith(f"capacity {found.rate:g}/s is under the required 500/s")
    assert f"a budget broke at {found.first_bad:g}/s" in message and "p99 < 50.0ms" in message
    assert "rate/s" in message and "FAIL" in message  # the stage table
    with pytest.raises(TypeError, match="expected a Capacity"):
        assert_capacity_at_least(recorded_run([1.0]), 5)  # type: ignore[arg-type]


def test_capacity_round_trips_through_its_dict():
    found = search(synthetic_server(340))
    again = Capacity.from_dict(found.to_dict())
    assert again.rate == found.rate and again.first_bad == found.first_bad
    assert [s.to_dict() for s in again.stages] == [s.to_dict() for s in found.stages]
    assert again.describe() == found.describe()
    broken = found.to_dict()
    broken["stages"][0]["verdict"] = "maybe"
    with pytest.raises(ValueError, match=r"capacity\.stages\[0\]: verdict 'maybe'"):
        Capacity.from_dict(broken)
    broken["stages"][0]["verdict"] = "pass"
    del broken["stages"][0]["rate"]
    with pytest.raises(ValueError, match="'rate' is missing"):
        Capacity.from_dict(broken)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"start": 100, "max_rate": 50}, "max_rate"),
        ({"start": 10, "max_rate": 50, "growth": 1}, "growth"),
        ({"start": 10, "max_rate": 50, "resolution": 1.5}, "resolution"),
        ({"start": "fast", "max_rate": 50}, "start"),
        ({"start": 10, "max_rate": 50, "max_stages": 0}, "max_stages"),
        ({"start": 10, "max_rate": 50, "lag_retries": -1}, "lag_retries"),
    ],
)
def test_bad_settings_are_refused_by_name(options, named):
    with pytest.raises(ValueError, match=named):
        CapacitySearch(BUDGETS, **options)


def test_bad_budgets_fail_before_any_stage_runs(tmp_path):
    replay = write_replay(tmp_path / "r.txt", [v2_request("iris", [[1.0, 2.0, 3.0, 4.0]])])
    endpoint = SeldonEndpoint("http://127.0.0.1:9")  # nothing listens: no stage may run
    with pytest.raises(ValueError, match="unknown budget 'p99ms'"):
        find_capacity(endpoint, replay, {"p99ms": "50ms"}, start=10, max_rate=20, stage="1s")
    with pytest.raises(ValueError, match="stage"):
        find_capacity(endpoint, replay, start=10, max_rate=20, stage="0s")


# --- a real server of known capacity -------------------------------------------------------


def test_finds_the_capacity_of_a_server_within_one_step(tmp_path):
    replay = write_replay(tmp_path / "r.txt", [v2_request("iris", [[1.0, 2.0, 3.0, 4.0]])])
    server = Slots(workers=5, service_s=0.05)  # 100 req/s
    seen: list[Stage] = []
    with ServerThread(server) as running:
        found = find_capacity(
            SeldonEndpoint(running.url),
            replay,
            {"p99": "90ms"},
            start=30,
            max_rate=400,
            stage="1s",
            warmup="0.2s",
            resolution=0.1,
            max_stages=8,
            on_stage=seen.append,
        )
    assert seen == found.stages and all(s.result is not None for s in seen)
    assert found.stopped == "budget", found.describe()
    assert found.rate is not None and found.first_bad is not None
    step = found.first_bad - found.rate
    assert step <= 0.1 * found.rate
    # Timers overshoot on a busy machine, so each answer holds its slot a little longer than
    # 50 ms: the capacity the server really has is the slots over the service time measured
    # at the gentlest stage. The search brackets it within one step.
    gentle = found.stages[0].result
    assert gentle is not None
    held_s = gentle.service_percentile(50) / 1000.0
    assert held_s >= server.service_s
    measured_capacity = 5 / held_s
    assert found.rate <= measured_capacity * 1.03, found.table()
    assert found.first_bad >= measured_capacity * 0.97, found.table()
    assert server.capacity - found.rate <= step + 0.1 * server.capacity  # the nominal 100/s


def test_the_stages_run_through_the_engine_registry(tmp_path):
    plans: list[RunPlan] = []

    class Recorded:
        name = "recorded"

        def run(self, endpoint, replay, plan) -> LoadResult:
            plans.append(plan)
            return recorded_run([10.0 if plan.rate <= 150 else 90.0], rate=20)

    registry = EngineRegistry(entry_point_group=None)
    registry.add("recorded", lambda context: Recorded())
    replay = write_replay(tmp_path / "r.txt", [v2_request("iris", [[1.0, 2.0, 3.0, 4.0]])])
    found = find_capacity(
        SeldonEndpoint("http://127.0.0.1:9"),
        replay,
        start=50,
        max_rate=1000,
        stage="3s",
        engine="recorded",
        registry=registry,
        seed=7,
    )
    assert [p.rate for p in plans][:3] == [50, 100, 200]
    assert all(p.duration == 3 and p.warmup == pytest.approx(0.6) and p.seed == 7 for p in plans)
    assert plans[0].label == "capacity @ 50/s"
    assert found.rate is not None and found.rate <= 150 < found.first_bad  # type: ignore[operator]


# --- in a pytest session: the fixtures, the summary and the HTML chart ------------------------

MODELLED_ENGINE = """
from pytest_seldon_load.result import Recorder


class Modelled:
    \"\"\"Answers in 10 ms up to 300 req/s and in 120 ms beyond, without sending anything.\"\"\"

    name = "modelled"

    def __init__(self, context):
        pass

    def run(self, endpoint, replay, plan):
        service = 0.010 if plan.rate <= 300 else 0.120
        recorder = Recorder(warmup=0.0)
        count = int(plan.rate * plan.duration)
        for k in range(count):
            at = k / plan.rate
            recorder.sent(at, at, 0.0)
        for k in range(count):
            at = k / plan.rate
            recorder.completed(at, at, at + service, 200, None)
        return recorder.result(target_rate=plan.rate, duration=plan.duration, scheduled=count)
"""

SEARCHING_TESTS = """
from pytest_seldon_load import SeldonEndpoint, assert_capacity_at_least


def test_search(capacity_search, replay_file):
    endpoint = SeldonEndpoint("http://127.0.0.1:9")
    capacity = capacity_search(
        endpoint, replay_file.from_requests(["/"]), {"p99": "50ms"},
        start=100, max_rate=1000, stage="2s", engine="modelled",
    )
    assert capacity.rate <= 300 < capacity.first_bad
    assert_capacity_at_least(capacity, 250)


def test_short_of_the_mark(record_capacity, replay_file):
    from modelled_engine import Modelled
    from pytest_seldon_load import find_capacity
    from pytest_seldon_load.engines import EngineRegistry

    registry = EngineRegistry(entry_point_group=None)
    registry.add("modelled", Modelled)
    endpoint = SeldonEndpoint("http://127.0.0.1:9")
    capacity = find_capacity(
        endpoint, replay_file.from_requests(["/"]), {"p99": "50ms"},
        start=100, max_rate=1000, stage="1s", engine="modelled", registry=registry,
        label="by hand",
    )
    record_capacity(capacity)
    assert_capacity_at_least(capacity, 400)
"""


def test_a_session_reports_its_searches_in_the_summary_and_the_html(pytester, monkeypatch):
    pytest.importorskip("xdist")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "step-summary.md"))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (pytester.path / "modelled_engine.py").write_text(MODELLED_ENGINE)
    pytester.makeconftest(
        f"""
import sys
sys.path.insert(0, {str(pytester.path)!r})
from modelled_engine import Modelled

def pytest_seldon_load_engines(config, registry):
    registry.add("modelled", Modelled)
"""
    )
    pytester.makepyfile(test_searching=SEARCHING_TESTS)
    # One xdist worker: the searches travel to the controller on the reports, as with many.
    result = pytester.runpytest(
        *("-p", "no:cacheprovider", "-n", "1", "--load-html=report.html"),
        *("--load-json=results.json", "--junitxml=junit.xml"),
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "BudgetExceeded: capacity" in output and "under the required 400/s" in output
    summary = output[output.index("seldon-load capacity") :]
    for name in ("test_search", "by hand"):
        assert f"{name}: capacity " in summary
    assert "rate/s" in summary and "FAIL" in summary and "p99 < 50.0ms" in summary
    page = (pytester.path / "report.html").read_text()
    assert page.count('class="chart capacity"') == 2
    assert "capacity search: test_search" in page and "offered rate" in page
    assert "p99 budget 50.0ms" in page
    assert "No load runs in this session." not in page  # the searches are what it holds
    # the JSON keeps them, and the report command draws them again from it
    saved = json.loads((pytester.path / "results.json").read_text())
    assert sorted(c["label"] for c in saved["capacities"]) == ["by hand", "test_search"]
    assert main(["report", str(pytester.path / "results.json"), "-o", "again.html"]) == 0
    assert Path("again.html").read_text().count('class="chart capacity"') == 2
    # JUnit carries the rate found; the step summary has a row per search
    junit = ElementTree.parse(pytester.path / "junit.xml").getroot()
    found = {
        p.get("name"): p.get("value") for p in junit.iter("property") if "capacity" in p.get("name")
    }
    assert float(found["load_capacity_rate"]) > 0 and found["load_capacity_stopped"]
    summary_md = (pytester.path / "step-summary.md").read_text()
    assert "### capacity" in summary_md and "| by hand |" in summary_md


def _interrupted_search(tmp_path, engine, **options):
    """A search on `engine` (made for every stage's run) stopped by Ctrl-C: its exception."""
    from pytest_seldon_load import RunInterrupted

    registry = EngineRegistry(entry_point_group=None)
    registry.add("scripted", lambda context: engine)
    replay = write_replay(tmp_path / "r.txt", [v2_request("iris", [[1.0, 2.0, 3.0, 4.0]])])
    endpoint = SeldonEndpoint("http://127.0.0.1:9")
    with pytest.raises(RunInterrupted) as stopped:
        find_capacity(
            endpoint, replay, start=10, max_rate=1000, stage="1s", engine="scripted",
            registry=registry, **options,
        )  # fmt: skip
    return stopped.value


def test_ctrl_c_stops_the_search_and_keeps_the_stages_so_far(tmp_path):
    from pytest_seldon_load import RunInterrupted

    class StoppedOnTheThirdStage:
        name = "stopped"
        stages = 0

        def run(self, endpoint, replay, plan) -> LoadResult:
            self.stages += 1
            result = recorded_run([10.0], rate=20)
            if self.stages == 3:
                result.interrupted = True
                raise RunInterrupted(result)
            return result

    partial = _interrupted_search(tmp_path, StoppedOnTheThirdStage()).capacity
    assert [s.rate for s in partial.stages] == [10, 20] and partial.rate == 20
    assert partial.stopped == "interrupted"


def test_ctrl_c_between_stages_keeps_the_stages_so_far(tmp_path):
    class Quick:
        name = "quick"

        def run(self, endpoint, replay, plan) -> LoadResult:
            return recorded_run([10.0], rate=20)

    def stop_after_two(stage: Stage) -> None:
        if stage.rate >= 20:  # the second stage has ended; Ctrl-C before the third starts
            raise KeyboardInterrupt

    stopped = _interrupted_search(tmp_path, Quick(), on_stage=stop_after_two)
    partial = stopped.capacity
    assert partial.stopped == "interrupted" and [s.rate for s in partial.stages] == [10]
    assert stopped.result.interrupted and stopped.result.requests == 0
