"""Baselines as a user meets them: save a session, compare a later one, through pytester.

The inner sessions load a real aiohttp server on 127.0.0.1 whose answers take /delay/<ms>.
Save and compare run under pytest-xdist, so the baseline is the controller's one file holding
every worker's runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from servers import ServerThread, by_path

from pytest_seldon_load import atomic as atomic_module
from pytest_seldon_load.baseline import (
    SCHEMA,
    BaselineMissing,
    BaselineUnreadable,
    build_baseline,
    commit_info,
    machine_differences,
    machine_info,
    read_baseline,
    run_differences,
    write_baseline,
)
from pytest_seldon_load.result import LoadResult

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def target_url():
    with ServerThread(by_path) as server:
        yield server.url


@pytest.fixture(autouse=True)
def quiet_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


SUITE = """
from pytest_seldon_load.regression import assert_no_regression

def _run(seldon_endpoint, replay_file, load_run, delay_ms):
    replay = replay_file.from_requests([f"/delay/{{delay_ms}}"])
    # A loose punctuality rule: the verdict must not hang on how busy the machine is.
    return load_run(seldon_endpoint, replay, rate=40, duration=6, lag_threshold_ms=100)

def test_steady(seldon_endpoint, replay_file, load_run):
    result = _run(seldon_endpoint, replay_file, load_run, {steady})
    comparison = assert_no_regression(result)
    if {comparing}:
        assert comparison is not None and not comparison.is_regression

def test_changing(seldon_endpoint, replay_file, load_run):
    _run(seldon_endpoint, replay_file, load_run, {changing})
"""


def _suite(steady: int, changing: int, comparing: bool) -> str:
    return SUITE.format(steady=steady, changing=changing, comparing=comparing)


def test_save_then_compare_catches_a_thirty_percent_slower_server(pytester, target_url):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_suite=_suite(150, 150, comparing=False))
    saved = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--seldon-url={target_url}",
        "-n",
        "2",
        "--load-baseline-save=main",
    )
    saved.assert_outcomes(passed=2)
    assert "baseline 'main' saved to .load-baselines/main.json: 2 runs" in saved.stdout.str()
    path = pytester.path / ".load-baselines" / "main.json"
    document = json.loads(path.read_text())
    assert document["schema"] == SCHEMA and document["name"] == "main"
    assert sorted(document["tests"]) == [
        "test_suite.py::test_changing",
        "test_suite.py::test_steady",
    ]
    entry = document["tests"]["test_suite.py::test_steady"]["result"]
    assert entry["latency_hdr"] and entry["timeline"][0]["latency_hdr"]
    assert {"p50", "p99", "sent", "ok"} <= set(entry["timeline"][0])
    assert entry["target_rate"] == 40 and entry["requests"] == 240
    assert document["machine"]["cpu_count"] == os.cpu_count()
    assert "id" in document["commit"]
    assert not list(path.parent.glob("*.part"))

    pytester.makepyfile(test_suite=_suite(150, 195, comparing=True))
    compared = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--seldon-url={target_url}",
        "-n",
        "2",
        "--load-baseline-compare=main",
    )
    compared.assert_outcomes(passed=1, failed=1)
    output = compared.stdout.str()
    failure = re.search(r"PerformanceRegression: (test_suite\.py::test_changing:\n)?.*", output)
    assert failure, output
    headline = re.search(
        r"p99 regression vs baseline 'main': \d+\.\dms → \d+\.\dms; per-second p99 "
        r"\+(\d+)\.\d% \(99% CI \+\d+\.\d% \.\. \+\d+\.\d%, p[<=][0-9.e-]+\), tolerance 10%",
        output,
    )
    assert headline, output
    assert 15 <= int(headline.group(1)) <= 45  # the server got 30% slower
    assert "samples: baseline 240 requests in 6 one-second windows" in output
    assert re.search(r"test_changing\s.*FAIL$", output, re.MULTILINE), output
    assert re.search(r"test_steady\s.*pass$", output, re.MULTILINE), output
    assert "seldon-load baseline and reports" in output
    assert "test_steady: p99 " in output


def test_a_corrupt_baseline_stops_with_a_clear_message(pytester):
    store = pytester.path / ".load-baselines"
    store.mkdir()
    (store / "main.json").write_text('{"schema": "pytest-seldon-load/baseline/1", "tes')
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--load-baseline-compare=main", "--load-baseline-missing=error"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = result.stderr.str()
    assert "baseline 'main' is unreadable" in error
    assert "main.json is not valid JSON" in error
    assert "--load-baseline-save=main" in error


def test_a_missing_baseline_warns_and_compares_nothing(pytester):
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--load-baseline-compare=nightly")
    result.assert_outcomes(passed=1, warnings=1)
    output = result.stdout.str()
    assert "baseline 'nightly' not found" in output
    assert "--load-baseline-save=nightly" in output
    assert "runs are not compared with a baseline" in output


def test_a_baseline_from_another_machine_warns(pytester, target_url):
    one_run = (
        "def test_one(seldon_endpoint, replay_file, load_run):\n"
        "    load_run(seldon_endpoint, replay_file.from_requests(['/']), rate=20, duration=1,\n"
        "             lag_threshold_ms=100)\n"
    )
    pytester.makepyfile(test_one=one_run)
    args = ["-p", "no:cacheprovider", f"--seldon-url={target_url}"]
    pytester.runpytest(*args, "--load-baseline-save").assert_outcomes(passed=1)
    path = pytester.path / ".load-baselines" / "default.json"
    document = json.loads(path.read_text())
    document["machine"]["node"] = "another-host"
    path.write_text(json.dumps(document))
    result = pytester.runpytest(*args, "--load-baseline-compare")
    result.assert_outcomes(passed=1, warnings=2)
    output = result.stdout.str()
    assert "was measured on another machine (node: another-host →" in output
    # One second is too short to judge: the comparison says so instead of guessing.
    assert "not compared with baseline 'default': cannot compare p99" in output


def test_bad_options_are_usage_errors(pytester):
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest("--load-baseline-fail=p98:10%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected METRIC:TOLERANCE" in result.stderr.str()
    result = pytester.runpytest("--load-baseline-save=../escape")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "baseline name '../escape'" in result.stderr.str()


# --- the file itself --------------------------------------------------------------------


def _run_entry(key: str, **changes) -> dict:
    result = LoadResult(target_rate=10.0, duration=1.0, scheduled=10, requests=10, ok=10)
    result.latency.record_value(1000)
    return result.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"} | changes


def test_an_interrupted_save_leaves_the_old_baseline_whole(tmp_path, monkeypatch):
    path = tmp_path / "main.json"
    good, _ = build_baseline("main", [_run_entry("t::a")], machine_info(), {"id": None})
    write_baseline(path, good)
    before = path.read_bytes()

    def interrupted_dump(document, handle, **kwargs):
        handle.write(json.dumps(document)[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_module.json, "dump", interrupted_dump)
    newer, _ = build_baseline("main", [_run_entry("t::b")], machine_info(), {"id": None})
    with pytest.raises(KeyboardInterrupt):
        write_baseline(path, newer)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.json"]
    assert list(read_baseline(path).tests) == ["t::a"]


def test_invalid_and_interrupted_runs_stay_out_of_a_baseline():
    runs = [
        _run_entry("t::good"),
        _run_entry("t::lagging", kept_up=False),
        _run_entry("t::stopped", verdict="interrupted", interrupted=True),
        _run_entry("t::allowed", kept_up=False, lag_accepted=True),
    ]
    document, skipped = build_baseline("main", runs, {}, {})
    assert sorted(document["tests"]) == ["t::allowed", "t::good"]
    assert skipped == [
        "t::lagging (the generator fell behind: invalid)",
        "t::stopped (interrupted)",
    ]


def test_read_baseline_says_what_is_wrong(tmp_path):
    with pytest.raises(BaselineMissing, match=r"baseline 'x' not found: .*x\.json does not exist"):
        read_baseline(tmp_path / "x.json", "x")
    (tmp_path / "other.json").write_text('{"schema": "something-else"}')
    with pytest.raises(BaselineUnreadable, match="not a baseline"):
        read_baseline(tmp_path / "other.json")
    # One damaged run is named when it is used; the other runs of the file stay usable.
    damaged, _ = build_baseline(
        "d", [_run_entry("t::a", latency_hdr="not-a-histogram"), _run_entry("t::b")], {}, {}
    )
    (tmp_path / "d.json").write_text(json.dumps(damaged))
    baseline = read_baseline(tmp_path / "d.json")
    assert baseline.result("t::b") is not None
    with pytest.raises(BaselineUnreadable, match=r"d\.json\): the run 't::a' is damaged"):
        baseline.result("t::a")


def test_machine_and_commit_info():
    info = machine_info()
    assert {"node", "processor", "cpu_count", "python", "loop"} <= set(info)
    moved = dict(info, node="elsewhere", cpu_count=64)
    assert machine_differences(info, info) == []
    assert machine_differences(moved, info) == [
        f"node: elsewhere → {info['node']}",
        f"cpu_count: 64 → {info['cpu_count']}",
    ]
    commit = commit_info(Path(__file__).parent)
    assert set(commit) >= {"id", "branch", "dirty"}


def test_commit_info_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    commit = commit_info(tmp_path)
    assert commit["id"] == "abc123" and commit["error"] == "git is not installed"


def test_run_differences_name_rate_and_arrivals():
    old = LoadResult(target_rate=100, duration=10, arrival="constant")
    new = LoadResult(target_rate=150, duration=10, arrival="poisson")
    assert run_differences(old, new) == ["target rate 100/s → 150/s", "arrivals constant → poisson"]
    assert run_differences(old, old) == []
