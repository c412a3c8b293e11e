"""Runs split over worker processes: one exact result, Ctrl-C keeps the merged partial one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pytest_seldon_load import RunPlan, SeldonEndpoint, run_load
from pytest_seldon_load.merge import merge_results
from pytest_seldon_load.plan import EngineSettings, PlanError
from pytest_seldon_load.processes import part_plans
from pytest_seldon_load.replay import ReplayFile, ReplayRequest, write_replay
from pytest_seldon_load.result import LoadResult, Recorder
from tests.servers import ServerThread, by_path


@pytest.fixture(scope="module")
def server():
    with ServerThread(by_path) as thread:
        yield thread


@pytest.fixture
def replay(tmp_path) -> ReplayFile:
    request = ReplayRequest("POST", "/v2/models/iris/infer", (), b'{"inputs":[]}')
    return write_replay(tmp_path / "r.replay", [request])


def test_two_processes_at_400_per_second_give_one_result_with_exactly_the_schedule(
    server, replay
) -> None:
    endpoint = SeldonEndpoint(server.url, "v2", "iris")
    result = run_load(endpoint, replay, rate=400, duration=1, seed=3, processes=2)
    assert result.processes == 2
    assert result.scheduled == 400
    assert result.requests + result.unsent == 400
    assert result.ok + result.errors == 400
    assert result.status_codes.get(200, 0) == result.ok
    assert result.latency.get_total_count() == 400
    assert result.target_rate == pytest.approx(400)
    assert sum(w.sent for w in result.windows) == result.requests
    assert not result.interrupted


def test_the_parts_of_processes_cover_the_plans_own_part_exactly() -> None:
    plan = RunPlan(rate=10, duration=1, processes=2, settings=EngineSettings(part=1, parts=3))
    split = [(p.settings.part, p.settings.parts, p.processes) for p in part_plans(plan)]
    assert split == [(1, 6, 1), (4, 6, 1)]
    slots = range(60)
    taken = [{s for s in slots if s % parts == part} for part, parts, _ in split]
    assert not taken[0] & taken[1]
    assert taken[0] | taken[1] == {s for s in slots if s % 3 == 1}


def test_processes_are_checked_like_any_run_option() -> None:
    with pytest.raises(PlanError, match="processes"):
        RunPlan(rate=10, duration=1, processes=0)
    with pytest.raises(PlanError, match="processes"):
        RunPlan(rate=10, duration=1, processes="two")


def _recorded(seed: int, busy: float, lag_ms: float) -> LoadResult:
    rng = np.random.default_rng(seed)
    recorder = Recorder(0.0)
    for i in range(2000):
        intended = i / 1000
        done = intended + float(rng.lognormal(-5, 1))
        recorder.sent(intended, intended, lag_ms / 1000 if i == 7 else 0.0)
        recorder.completed(intended, intended, done, 200 if i % 50 else 503, None)
    recorder.health.busy_fraction = busy
    return recorder.result(target_rate=1000, duration=2, scheduled=2000)


def test_the_merge_is_exact_histograms_windows_counts_worst_lag_and_busiest_process() -> None:
    parts = [_recorded(1, 0.2, 3.0), _recorded(2, 0.7, 40.0), _recorded(3, 0.4, 9.0)]
    merged = merge_results(parts)
    pooled = np.sum([p.latency.counts[: p.latency.counts_len] for p in parts], axis=0)
    assert list(merged.latency.counts[: merged.latency.counts_len]) == list(pooled)
    for q in (50, 90, 99, 99.9):
        assert merged.percentile(q) == merge_results(parts[::-1]).percentile(q)
    assert merged.scheduled == merged.requests == 6000
    assert merged.status_codes == {200: 5880, 503: 120}
    assert merged.health.max_lag_ms == pytest.approx(40.0)
    assert merged.health.late_sends == 2  # 9 ms and 40 ms; 3 ms is within 5 ms
    assert merged.health.busy_fraction == pytest.approx(0.7)
    assert merged.health.busiest_process == 1
    assert merged.processes == 3
    by_second = {w.second: w for w in merged.windows}
    for second in by_second:
        expected = sum(w.ok for p in parts for w in p.windows if w.second == second)
        assert by_second[second].ok == expected
    again = LoadResult.from_json(merged.to_json())
    assert again.health.busiest_process == 1
    assert again.p99 == merged.p99


def test_parts_that_began_apart_say_so_and_keep_their_own_seconds() -> None:
    early, late = _recorded(1, 0.2, 0.0), _recorded(2, 0.2, 0.0)
    early.started_at, late.started_at = 1_700_000_000.0, 1_700_000_003.2  # a pod 3.2 s late
    merged = merge_results([early, late])
    # each part's second s is merged second s: every second holds both parts' share
    by_second = {w.second: w for w in merged.windows}
    assert by_second[0].ok == early.windows[0].ok + late.windows[0].ok
    assert merged.duration == 2 and merged.scheduled == 4000  # rates over the parts' length
    assert merged.health.start_spread_s == pytest.approx(3.2)
    assert "its parts began 3.2s apart" in merged.health.describe()
    assert LoadResult.from_json(merged.to_json()).health.start_spread_s == pytest.approx(3.2)
    together = merge_results([_recorded(1, 0.2, 0.0), _recorded(2, 0.2, 0.0)])  # start unknown
    assert together.health.start_spread_s == 0 and "apart" not in together.health.describe()


def test_a_load_marker_and_the_option_split_a_test_run(pytester, server) -> None:
    pytester.makepyfile(
        test_split=f"""
import pytest
from pytest_seldon_load import SeldonEndpoint

@pytest.mark.load(rate=100, duration=1, processes=2)
def test_marker(replay_file, load_run):
    endpoint = SeldonEndpoint({server.url!r}, "v2", "iris")
    result = load_run(endpoint, replay_file.prediction(endpoint, num=10))
    assert result.processes == 2 and result.scheduled == 100

def test_option(replay_file, load_run):
    endpoint = SeldonEndpoint({server.url!r}, "v2", "iris")
    result = load_run(endpoint, replay_file.prediction(endpoint, num=10), rate=50, duration=1)
    assert result.processes == 3 and result.scheduled == 50
"""
    )
    outcome = pytester.runpytest_subprocess("--load-processes", "3", "-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=2)


def test_ctrl_c_stops_every_process_and_keeps_the_merged_partial_result(replay, tmp_path) -> None:
    answered: list[int] = []

    async def counting(request):
        answered.append(1)
        return await by_path(request)

    with ServerThread(counting) as server:
        _interrupt_a_split_run(server, replay, tmp_path, answered)


def _interrupt_a_split_run(server, replay, tmp_path, answered: list[int]) -> None:
    out = tmp_path / "partial.json"
    command = [
        sys.executable,
        "-m",
        "pytest_seldon_load.cli",
        "run",
        "--url",
        server.url,
        "--replay",
        str(replay.path),
        "--rate",
        "100",
        "--duration",
        "30s",
        "--processes",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        # Wait until the processes have sent for a while, then Ctrl-C the whole group.
        assert process.stdout is not None
        line = process.stdout.readline()
        assert b"running" in line, line
        # Spawned workers import the engine first: wait until the load is really flowing.
        while len(answered) < 150 and time.monotonic() < deadline - 20:
            time.sleep(0.05)
        assert len(answered) >= 150, "the split run never got going"
        assert process.poll() is None
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert code == 130, stderr
    assert out.exists(), stderr
    result = json.loads(out.read_text())
    assert result["processes"] == 2
    assert result["interrupted"] is True
    assert 0 < result["requests"] < 3000
    # The worker processes (in the command's process group) end with it, within seconds (a
    # loaded machine may take a moment to schedule their exit).
    assert _still_running(process.pid, within=10.0) == []


def test_ctrl_c_before_the_processes_begin_still_writes_an_interrupted_result(
    replay, tmp_path
) -> None:
    out = tmp_path / "nothing.json"
    with ServerThread(by_path) as server:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "pytest_seldon_load.cli", "run", "--url", server.url),
                *("--replay", str(replay.path), "--rate", "100", "--duration", "30s"),
                *("--processes", "2", "--no-progress", "--out", str(out)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            assert b"running" in process.stdout.readline()
            os.killpg(process.pid, signal.SIGINT)  # the workers are still starting
            code = process.wait(30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    stderr = process.stderr.read() if process.stderr else b""
    assert code == 130, stderr
    result = json.loads(out.read_text())
    assert result["interrupted"] is True and result["processes"] == 2
    assert result["requests"] == 0 and result["duration"] == 0  # stopped before it began


def _still_running(group: int, within: float) -> list[str]:
    """Processes of `group` still running after up to `within` seconds; exited ones may
    linger as zombies where nothing reaps orphans (a container's init), and do not count."""
    deadline = time.monotonic() + within
    while True:
        listing = subprocess.run(
            ["ps", "-o", "pid=,stat=,args=", "-g", str(group)], capture_output=True, text=True
        ).stdout
        running = [line for line in listing.splitlines() if line.split()[1][0] != "Z"]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)
