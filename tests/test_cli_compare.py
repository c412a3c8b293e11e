"""``seldon-load compare`` and ``seldon-load report`` on saved results, as CI would run them."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_seldon_load.baseline import build_baseline, write_baseline
from pytest_seldon_load.cli import main
from pytest_seldon_load.report.json_report import session_document, write_session_json

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
power = importlib.import_module("regression_power")

KEYS = ("tests/test_iris.py::test_p99", "tests/test_iris.py::test_errors")


def _runs(seed: int, scale: float = 1.0, errors: int = 0) -> list[dict]:
    runs = []
    for index, key in enumerate(KEYS):
        result = power.synthetic_run(np.random.default_rng(seed * 10 + index), 200, 10, scale=scale)
        if errors and key.endswith("errors"):
            for window in result.windows:
                window.errors, window.ok = errors, window.ok - errors
            result.errors = errors * len(result.windows)
            result.ok -= result.errors
        runs.append(result.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"})
    return runs


def _session(path: Path, runs: list[dict]) -> Path:
    return write_session_json(path, session_document(runs, {"node": "ci"}, {"id": "abc"}, "now"))


def test_same_runs_compare_clean_and_exit_0(tmp_path, capsys):
    old = _session(tmp_path / "old.json", _runs(1))
    new = _session(tmp_path / "new.json", _runs(2))
    assert main(["compare", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "no regression (2 runs compared)" in out
    assert "tests/test_iris.py::test_p99" in out
    assert "  metric " in out and " interval " in out and " verdict" in out
    for metric in ("p99", "p50", "error_rate"):
        assert f"\n  {metric} " in out


def test_a_slower_run_exits_1_with_its_interval(tmp_path, capsys):
    document, _ = build_baseline("main", _runs(1), {"node": "ci"}, {"id": "abc"})
    baseline = write_baseline(tmp_path / ".load-baselines" / "main.json", document)
    slower = _session(tmp_path / "pr.json", _runs(2, scale=1.3))
    assert main(["compare", str(baseline), str(slower)]) == 1
    out = capsys.readouterr().out
    assert "baseline: " in out and "(baseline, 2 runs)" in out
    assert "REGRESSION in 2 comparison(s):" in out
    assert "p99 REGRESSION" in out or "REGRESSION" in out
    assert "p99 regression vs baseline: " in out and "99% CI +" in out


def test_error_rate_criteria_in_points(tmp_path, capsys):
    old = _session(tmp_path / "old.json", _runs(1))
    new = _session(tmp_path / "new.json", _runs(2, errors=6))
    assert main(["compare", str(old), str(new), "--fail", "error_rate:1%"]) == 1
    out = capsys.readouterr().out
    assert "error_rate regression" in out and "points" in out
    assert main(["compare", str(old), str(new), "--fail", "error_rate:5%"]) == 0


def test_two_single_results_are_compared_whatever_their_labels(tmp_path, capsys):
    first = power.synthetic_run(np.random.default_rng(1), 200, 10)
    second = power.synthetic_run(np.random.default_rng(2), 200, 10, scale=1.4)
    first.label, second.label = "before", "after"
    (tmp_path / "a.json").write_text(first.to_json())
    (tmp_path / "b.json").write_text(second.to_json())
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "before → after" in capsys.readouterr().out


def test_runs_in_one_file_only_are_listed(tmp_path, capsys):
    old = _session(tmp_path / "old.json", _runs(1)[:1])
    new = _session(tmp_path / "new.json", _runs(2))
    assert main(["compare", str(old), str(new)]) == 0
    assert "only in current (not compared): tests/test_iris.py::test_errors" in (
        capsys.readouterr().out
    )


def test_short_runs_are_not_compared_but_said_so(tmp_path, capsys):
    short = [
        power.synthetic_run(np.random.default_rng(seed), 100, 3).to_dict()
        | {"key": "t", "nodeid": "t"}
        for seed in (1, 2)
    ]
    old, new = _session(tmp_path / "o.json", short[:1]), _session(tmp_path / "n.json", short[1:])
    assert main(["compare", str(old), str(new)]) == 0
    assert "not compared: cannot compare p99" in capsys.readouterr().out


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "cut.json").write_text('{"schema": "pytest-seldon-load/session/1", "ru')
    assert main(["compare", str(tmp_path / "cut.json"), str(tmp_path / "cut.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("seldon-load: error: ") and "not valid JSON" in error
    assert "\n" not in error
    assert main(["compare", str(tmp_path / "missing.json"), str(tmp_path / "cut.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["compare", "a", "b", "--fail", "p98:1%"]) == 2
    assert main(["compare", "a", "b", "--confidence", "1.5"]) == 2


def test_report_command_overlays_a_baseline(tmp_path, capsys):
    old = _session(tmp_path / "old.json", _runs(1))
    new = _session(tmp_path / "new.json", _runs(2))
    out = tmp_path / "site" / "report.html"
    assert main(["report", str(new), "-o", str(out), "--baseline", str(old)]) == 0
    assert "2 runs, 2 with their baseline" in capsys.readouterr().out
    page = out.read_text()
    assert page.count('<svg class="chart') == 6 and 'class="line baseline"' in page
    assert main(["report", str(tmp_path / "nope.json"), "-o", str(out)]) == 2


def test_the_installed_command_runs_compare(tmp_path):
    old = _session(tmp_path / "old.json", _runs(1))
    slower = _session(tmp_path / "new.json", _runs(2, scale=1.3))
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_seldon_load.cli", "compare", str(old), str(slower)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "REGRESSION" in completed.stdout
    json.loads(old.read_text())


@pytest.mark.parametrize("command", ["compare", "report"])
def test_help_lists_the_commands(command, capsys):
    assert main(["--help"]) == 0
    assert command in capsys.readouterr().out


def test_interrupted_and_summary_only_results_are_reported_not_tracebacks(tmp_path, capsys):
    from pytest_seldon_load.iago.stats import SummaryLoadResult
    from pytest_seldon_load.result import LoadResult

    full = power.synthetic_run(np.random.default_rng(1), 200, 10)
    (tmp_path / "full.json").write_text(full.to_json())
    # What `seldon-load run --out` writes when Ctrl-C comes before the first second ends.
    stopped = LoadResult(target_rate=50, duration=0.0, interrupted=True)
    (tmp_path / "stopped.json").write_text(stopped.to_json())
    iago = SummaryLoadResult(target_rate=50, duration=10.0, requests=500, ok=500)
    iago.latency_summary = {"count": 500, "p50": 4.0, "p99": 9.0}
    (tmp_path / "iago.json").write_text(iago.to_json())
    for other in ("stopped.json", "iago.json"):
        assert main(["compare", str(tmp_path / "full.json"), str(tmp_path / other)]) == 0
        out = capsys.readouterr().out
        assert "not compared: cannot compare p99: the current run has no per-second" in out
    broken = json.loads(full.to_json()) | {"duration": "NaN"}
    (tmp_path / "broken.json").write_text(json.dumps(broken).replace('"NaN"', "NaN"))
    assert main(["compare", str(tmp_path / "full.json"), str(tmp_path / "broken.json")]) == 2
    assert (
        "broken.json: the result: not a load result: duration: out of range"
        in capsys.readouterr().err
    )
