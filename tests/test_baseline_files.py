"""Baseline files: a save never loses runs, concurrent saves both land, damaged files are
named, and the loader raises nothing but its documented errors (a bounded seeded fuzz)."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path

import pytest
from recorded import recorded_run

from pytest_seldon_load.baseline import (
    BaselineError,
    BaselineUnreadable,
    build_baseline,
    now_iso,
    read_baseline,
    save_baseline,
    write_baseline,
)
from pytest_seldon_load.cli import main as cli_main
from pytest_seldon_load.regression import judge_regression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
fuzz_baseline = importlib.import_module("fuzz_baseline")


def _entry(key: str, service_ms: float = 5.0, **changes) -> dict:
    result = recorded_run([service_ms] * 5, rate=20, spread=0.1)
    return result.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"} | changes


def test_a_session_that_ran_fewer_tests_keeps_the_others_runs(tmp_path):
    path = tmp_path / "main.json"
    first = save_baseline(path, "main", [_entry("t::a"), _entry("t::b")], {}, {"id": "1"})
    assert first.measured == ["t::a", "t::b"] and first.kept == []
    # t::b deselected, t::c lagged: their earlier runs stay; t::a is replaced.
    second = save_baseline(
        path, "main", [_entry("t::a", 7.0), _entry("t::c", kept_up=False)], {}, {"id": "2"}
    )
    assert second.measured == ["t::a"] and second.kept == ["t::b"]
    assert second.skipped == ["t::c (the generator fell behind: invalid)"]
    saved = read_baseline(path)
    assert sorted(saved.tests) == ["t::a", "t::b"]
    assert saved.tests["t::b"]["commit"] == {"id": "1"}  # each run says where it came from
    assert saved.tests["t::a"]["commit"] == {"id": "2"}
    assert saved.result("t::a").percentile(50) > 6.0


def test_two_sessions_saving_at_once_both_land(tmp_path):
    path = tmp_path / "main.json"
    keys = [f"t::{n}" for n in range(6)]
    entries = {key: _entry(key) for key in keys}
    start = threading.Barrier(len(keys))
    errors: list[BaseException] = []

    def session(key: str) -> None:
        try:
            start.wait()
            save_baseline(path, "main", [entries[key]], {}, {})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert sorted(read_baseline(path).tests) == keys


def test_a_save_says_which_runs_another_session_saved_meanwhile(tmp_path):
    path = tmp_path / "main.json"
    started = now_iso()
    save_baseline(path, "main", [_entry("t::a"), _entry("t::b")], {}, {}, started="")
    outcome = save_baseline(path, "main", [_entry("t::a")], {}, {}, started=started)
    assert outcome.concurrent == ["t::a"] and outcome.kept == ["t::b"]


def test_a_held_lock_is_a_clear_error_not_a_lost_save(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "main.json"
    with open(tmp_path / ".main.json.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(BaselineError, match="another session has held"):
            save_baseline(path, "main", [_entry("t::a")], {}, {}, lock_timeout=0.2)
    assert not path.exists()


def _document() -> dict:
    baseline, _ = build_baseline("main", [_entry("t::a"), _entry("t::b", 6.0)], {"node": "x"}, {})
    return baseline


def test_damaged_parts_are_named_with_file_and_field(tmp_path, capsys):
    path = tmp_path / "main.json"
    document = _document()
    window = document["tests"]["t::a"]["result"]["timeline"][2]
    window["latency_hdr"] = window["latency_hdr"][:20] + "!!" + window["latency_hdr"][22:]
    document["tests"]["t::b"]["result"]["timeline"] = []
    write_baseline(path, document)
    saved = read_baseline(path)
    with pytest.raises(BaselineUnreadable, match=r"timeline\[2\]\.latency_hdr: not a histogram"):
        saved.result("t::a")
    empty = saved.result("t::b")
    verdict = judge_regression(empty, empty)
    assert verdict.invalid and "no per-second timeline" in verdict.reason
    assert cli_main(["compare", str(path), str(path)]) == 0
    out = capsys.readouterr().out
    assert "not compared: " in out and "timeline[2].latency_hdr" in out
    document["machine"] = ["not", "an", "object"]
    write_baseline(path, document)
    with pytest.raises(BaselineUnreadable, match=r"main\.json: 'machine' must be an object"):
        read_baseline(path)
    assert cli_main(["compare", str(path), str(path)]) == 2


def test_the_baseline_loader_raises_only_its_documented_errors(tmp_path):
    # A bounded run of the fuzzer; benchmarks/fuzz_baseline.py runs 100,000 cases.
    ends, errors = fuzz_baseline.fuzz(300, seed=1, directory=tmp_path)
    reached = ("read", "unreadable", "damaged run named", "run used", "damaged run judged")
    assert all(ends[end] for end in reached), ends  # every kind of end was reached
    assert set(errors) == {"BaselineUnreadable", "BaselineUnreadable (one run)"}, errors
