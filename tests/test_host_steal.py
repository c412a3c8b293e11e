"""Host CPU steal: read from /proc/stat, carried by the result, named where lag is judged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from recorded import recorded_run
from servers import ServerThread, delayed

from pytest_seldon_load import InvalidMeasurement, SeldonEndpoint, run_load, write_replay
from pytest_seldon_load.assertions import assert_p50_below
from pytest_seldon_load.host_steal import (
    CpuTimes,
    StealMeter,
    parse_cpu_line,
    read_cpu_times,
    steal_between,
)
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.report.html import render_report
from pytest_seldon_load.report.terminal import steal_line
from pytest_seldon_load.result import GeneratorHealth, LoadResult

STAT = """cpu  {user} 0 {system} {idle} 10 0 5 {steal} 0 0
cpu0 100 0 50 400 5 0 2 {steal} 0 0
intr 12345
"""


def _stat(path: Path, *, user: int, system: int, idle: int, steal: int) -> None:
    path.write_text(STAT.format(user=user, system=system, idle=idle, steal=steal))


def test_the_aggregate_cpu_line_gives_steal_and_total_ticks():
    times = parse_cpu_line(STAT.format(user=1000, system=200, idle=3000, steal=70))
    assert times == CpuTimes(steal=70, total=1000 + 200 + 3000 + 10 + 5 + 70)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "cpu0 1 2 3 4 5 6 7 8\n",
        "cpu  1 2 3 4\n",
        "cpu  1 2 x 4 5 6 7 8\n",
        "cpu -1 0 0 0 0 0 0 0",
    ],
)
def test_a_stat_file_without_a_readable_cpu_line_gives_nothing(text):
    assert parse_cpu_line(text) is None


def test_steal_is_the_stolen_share_of_the_ticks_that_passed(tmp_path):
    stat = tmp_path / "stat"
    _stat(stat, user=1000, system=200, idle=3000, steal=40)
    meter = StealMeter(stat)
    meter.start()
    # 100 ticks pass: 60 user, 33 idle, 7 stolen.
    _stat(stat, user=1060, system=200, idle=3033, steal=47)
    assert meter.stop() == pytest.approx(0.07)
    assert meter.fraction == pytest.approx(0.07)


def test_no_counter_no_figure(tmp_path):
    meter = StealMeter(tmp_path / "absent")
    meter.start()
    assert meter.stop() is None
    same = CpuTimes(steal=5, total=100)
    assert steal_between(same, same) is None  # no tick passed: nothing to say
    assert steal_between(None, same) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_a_real_run_on_linux_carries_its_steal(tmp_path):
    assert read_cpu_times() is not None
    replay = write_replay(tmp_path / "r.txt", [v2_request("iris", [[1.0, 2.0, 3.0, 4.0]])])
    with ServerThread(delayed(0.001)) as server:
        result = run_load(SeldonEndpoint(server.url), replay, rate=50, duration=0.6)
    fraction = result.health.steal_fraction
    assert fraction is not None and 0.0 <= fraction <= 1.0
    assert LoadResult.from_json(result.to_json()).health.steal_fraction == fraction
    assert result.summary()["steal_fraction"] == round(fraction, 4)


def test_result_files_carry_steal_and_older_files_still_read():
    run = recorded_run([5.0, 5.0])
    run.health.steal_fraction = 0.0734
    data = json.loads(run.to_json())
    assert data["health"]["steal_fraction"] == 0.0734
    assert LoadResult.from_dict(data).health.steal_fraction == 0.0734
    del data["health"]["steal_fraction"]
    assert LoadResult.from_dict(data).health.steal_fraction is None
    for bad, why in ((1.5, "between 0 and 1"), ("7%", "expected a number"), (-0.1, "out of range")):
        data["health"]["steal_fraction"] = bad
        with pytest.raises(ValueError, match=rf"health\.steal_fraction: .*{why}"):
            LoadResult.from_dict(data)


def test_merged_parts_keep_the_worst_steal():
    parts = [recorded_run([5.0]), recorded_run([5.0]), recorded_run([5.0])]
    parts[0].health.steal_fraction = 0.02
    parts[1].health.steal_fraction = 0.09
    assert LoadResult.merge(parts).health.steal_fraction == 0.09
    assert LoadResult.merge([recorded_run([5.0])]).health.steal_fraction is None


def test_lag_that_steal_explains_is_named_in_the_invalid_verdict():
    lagged = recorded_run([20.0] * 3, lag_ms=10.0, spread=0.02)
    lagged.health.steal_fraction = 0.07
    assert lagged.health.lag_from_steal
    with pytest.raises(InvalidMeasurement) as failure:
        assert_p50_below(lagged, "25ms")
    message = str(failure.value)
    assert "lag explained by host CPU steal" in message
    assert "the host took 7.0% of this VM's CPU time" in message
    assert "dedicated cores" in message


def test_lag_without_steal_is_not_blamed_on_the_host():
    lagged = recorded_run([20.0] * 3, lag_ms=10.0, spread=0.02)
    lagged.health.steal_fraction = 0.001
    assert not lagged.health.lag_from_steal
    with pytest.raises(InvalidMeasurement) as failure:
        assert_p50_below(lagged, "25ms")
    assert "steal" not in str(failure.value)
    punctual = GeneratorHealth(sends_checked=100, steal_fraction=0.3)
    assert punctual.kept_up and not punctual.lag_from_steal
    assert "the host took 30% of this VM's CPU time" in punctual.describe()


def test_summary_line_and_html_show_steal():
    quiet, stolen = recorded_run([5.0]), recorded_run([5.0], lag_ms=10.0)
    quiet.health.steal_fraction, stolen.health.steal_fraction = 0.0, 0.08
    runs = [
        quiet.to_dict() | {"nodeid": "t.py::quiet", "verdict": "pass"},
        stolen.to_dict() | {"nodeid": "t.py::stolen", "verdict": "lagged"},
    ]
    line = steal_line(runs)
    assert line.startswith("host CPU steal: during stolen, the host took 8.0%")
    assert "at least partly the host's" in line
    assert steal_line(runs[:1]) == ""
    page = render_report(runs)
    assert page.count("host CPU steal") == 2 and "8.0%" in page
    absent = recorded_run([5.0]).to_dict() | {"nodeid": "t.py::elsewhere", "verdict": "pass"}
    assert "host CPU steal" not in render_report([absent])
