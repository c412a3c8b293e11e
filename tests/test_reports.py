"""Reports of a session: JSON with histograms, JUnit properties, the GitHub step summary, HTML.

One inner session (two short load tests under pytest-xdist) writes every report at once.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from servers import ServerThread, delayed

from pytest_seldon_load.cli import main as cli_main
from pytest_seldon_load.regression import compare_runs, judge_comparison
from pytest_seldon_load.report.github import append_step_summary, step_summary
from pytest_seldon_load.report.html import budgets_of, nice_ticks, render_report
from pytest_seldon_load.report.json_report import SCHEMA, read_saved_runs
from pytest_seldon_load.report.junit import junit_properties
from pytest_seldon_load.result import LoadResult

pytest_plugins = ["pytester"]

SUITE = """
import pytest
from pytest_seldon_load import assert_p99_below

def test_fast(seldon_endpoint, replay_file, load_run):
    result = load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=40, duration=2,
                      lag_threshold_ms=100)
    assert_p99_below(result, "2s")

@pytest.mark.load(rate=30, duration=2, budgets={"p99": "1ms"}, lag_threshold_ms=100)
def test_over_budget(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))
"""


@pytest.fixture(scope="module")
def target_url():
    with ServerThread(delayed(0.005)) as server:
        yield server.url


@pytest.fixture(autouse=True)
def quiet_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_one_session_writes_every_report(pytester, target_url, monkeypatch):
    pytest.importorskip("xdist")
    summary_file = pytester.path / "step-summary.md"
    summary_file.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        f"--seldon-url={target_url}",
        "-n",
        "2",
        "--junitxml=junit.xml",
        "--load-json=out/results.json",
        "--load-html=out/report.html",
    )
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "JSON report written to out/results.json" in output
    assert "HTML report written to out/report.html" in output

    # JUnit: the headline numbers as properties of each test case, and no bulky blobs.
    tree = ElementTree.parse(pytester.path / "junit.xml")
    for case in tree.iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert set(properties) == {
            "load_p50_ms",
            "load_p95_ms",
            "load_p99_ms",
            "load_p999_ms",
            "load_max_ms",
            "load_error_rate",
            "load_target_rate",
            "load_achieved_rate",
            "load_lagged",
            "load_budget_p99",
        }, properties
        assert float(properties["load_p99_ms"]) > 4.0
        assert float(properties["load_error_rate"]) == 0.0
        expected_rate = 40.0 if case.get("name") == "test_fast" else 30.0
        assert float(properties["load_target_rate"]) == expected_rate
        assert float(properties["load_achieved_rate"]) == pytest.approx(expected_rate, rel=0.05)

    # JSON: every run with its histograms, readable back as LoadResults.
    document = json.loads((pytester.path / "out" / "results.json").read_text())
    assert document["schema"] == SCHEMA
    runs = {run["key"]: run for run in document["runs"]}
    assert set(runs) == {"test_suite.py::test_fast", "test_suite.py::test_over_budget"}
    for run in runs.values():
        assert run["latency_hdr"] and run["timeline"][0]["latency_hdr"]
        assert LoadResult.from_dict(run).requests == run["requests"]
    assert runs["test_suite.py::test_over_budget"]["verdict"] == "FAIL"

    # GitHub: appended after what earlier steps wrote.
    step = summary_file.read_text()
    assert step.startswith("# earlier step\n")
    assert "## seldon-load results" in step
    assert re.search(r"\| test_fast \| 40 / 40\.0 \| 80 \|.*\| ✅ pass \|", step), step
    assert re.search(r"\| test_over_budget \| 30 / 30\.0 \| 60 \|.*\| ❌ FAIL \|", step), step

    # HTML: one page, three charts per run, nothing fetched from elsewhere.
    page = (pytester.path / "out" / "report.html").read_text()
    assert page.count('<section class="run"') == 2
    assert page.count('<svg class="chart') == 6
    assert "p99 budget 1.00ms" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page

    # The same page from the saved JSON, with the command line.
    code = cli_main(
        [
            "report",
            str(pytester.path / "out" / "results.json"),
            "-o",
            str(pytester.path / "again.html"),
        ]
    )
    assert code == 0
    again = (pytester.path / "again.html").read_text()
    assert again.count('<svg class="chart') == 6


def test_no_report_options_no_files(pytester, target_url, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--seldon-url={target_url}", "-k", "fast"
    )
    result.assert_outcomes(passed=1)
    assert "seldon-load baseline and reports" not in result.stdout.str()
    assert sorted(p.name for p in pytester.path.iterdir() if not p.name.startswith(".")) == [
        "test_suite.py",
        "tox.ini",
    ]


# --- the pieces, on synthetic runs ----------------------------------------------------------


def _synthetic(seed: int, scale: float = 1.0) -> LoadResult:
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    power = importlib.import_module("regression_power")
    return power.synthetic_run(np.random.default_rng(seed), 100, 10, scale=scale)


def _entry(result: LoadResult, key: str, verdict: str = "pass") -> dict:
    return result.to_dict() | {"nodeid": key, "key": key, "verdict": verdict}


def test_junit_properties_number_several_runs_and_carry_comparisons():
    base, current = _synthetic(1), _synthetic(2, scale=1.5)
    judge_comparison(current, compare_runs(base, current))
    properties = dict(junit_properties([_entry(base, "t::a"), _entry(current, "t::a #2")]))
    assert properties["load[1]_label"] == "t::a" and properties["load[2]_label"] == "t::a #2"
    assert properties["load[2]_baseline_p99_verdict"] == "regression"
    assert properties["load[2]_baseline_p99_change"] > 0.3
    detectable = properties["load[2]_baseline_p99_detectable"]
    assert 0 < detectable < properties["load[2]_baseline_p99_change"]
    assert "load_p99_ms" not in properties


def test_step_summary_lists_comparisons_and_is_skipped_outside_github(tmp_path):
    base, current = _synthetic(1), _synthetic(2, scale=1.5)
    judge_comparison(current, compare_runs(base, current, baseline_name="main"))
    runs = [_entry(current, "tests/test_x.py::test_y", "FAIL")]
    text = step_summary(runs)
    assert "### against the baseline" in text
    assert re.search(
        r"\| test_y \| p99 \| .* \| \+\d+\.\d% \| 99%: \+.* \| \+\d+% \| ❌ regression \|", text
    )
    assert append_step_summary(runs, environ={}) is None
    target = tmp_path / "summary.md"
    assert append_step_summary(runs, environ={"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert append_step_summary(runs, environ={"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert target.read_text().count("## seldon-load results") == 2


def test_html_draws_budgets_and_the_baseline_under_the_run():
    base, current = _synthetic(1), _synthetic(2, scale=1.3)
    current.judgements += [
        {"budget": "p99 < 50.0ms", "passed": True, "measured": 2.0},
        {"budget": "error rate ≤ 0.100%", "passed": True, "measured": 0.0},
        {"budget": "throughput ≥ 90/s", "passed": True, "measured": 100.0},
    ]
    entry = _entry(current, "t::a")
    assert [b.kind for b in budgets_of(entry)] == ["percentile", "error_rate", "throughput"]
    page = render_report([entry], {"t::a": base})
    assert page.count('class="line baseline"') == 4  # p99 and p50 over time, spectrum, ok/s
    assert "p99 budget 50.0ms" in page and "throughput budget 90/s" in page
    assert "grey lines: the baseline run" in page
    assert "99.9%" in page  # the spectrum's axis
    empty = render_report([])
    assert "No load runs in this session." in empty


def test_saved_runs_read_every_saved_form(tmp_path):
    result = _synthetic(3)
    result.label = "tests/t.py::test_a"
    single = tmp_path / "one.json"
    single.write_text(result.to_json())
    saved = read_saved_runs(single)
    assert saved.kind == "result" and list(saved.runs) == ["tests/t.py::test_a"]
    assert saved.result("tests/t.py::test_a").requests == result.requests
    (tmp_path / "junk.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="holds no load results"):
        read_saved_runs(tmp_path / "junk.json")


def test_nice_ticks():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0, 0.9) == [0, 0.2, 0.4, 0.6, 0.8]
