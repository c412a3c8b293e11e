"""What a pytest session shows of its load runs: the summary at each verbosity, the lag note
at the terminal's width, JUnit properties, marker budget failures, baseline warnings at the
test, and ``--help``. Inner sessions run with pytester against a real server on loopback.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest
from servers import ServerThread, delayed

pytest_plugins = ["pytester"]

SUITE = """
import pytest
from pytest_seldon_load import assert_p99_below

def test_fine(seldon_endpoint, replay_file, load_run):
    result = load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=30, duration=1,
                      lag_threshold_ms=100)
    assert_p99_below(result, "2s")

@pytest.mark.load(rate=30, duration=1, budgets={"p99": "1ms", "p50": "1ms"},
                  lag_threshold_ms=100)
def test_two_budgets_missed(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))
"""

LAGGING = """
def test_lagging(seldon_endpoint, replay_file, load_run):
    # a lag threshold no real loop holds: every send counts as late
    load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=30, duration=1,
             lag_threshold_ms=0.001)
"""


@pytest.fixture(scope="module")
def target_url():
    with ServerThread(delayed(0.005)) as server:
        yield server.url


@pytest.fixture(autouse=True)
def plain_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _run(pytester, target_url, *args):
    return pytester.runpytest("-p", "no:cacheprovider", f"--seldon-url={target_url}", *args)


def test_the_summary_at_each_verbosity(pytester, target_url):
    pytester.makepyfile(test_suite=SUITE)
    default = _run(pytester, target_url).stdout.str()
    assert re.search(r"=+ seldon-load summary =+", default)
    assert re.search(r"^test_fine\s+30/\d+\.\d\s+30\s.*\spass$", default, re.MULTILINE)
    assert re.search(r"^test_two_budgets_missed\s.*\sFAIL$", default, re.MULTILINE)

    quiet = _run(pytester, target_url, "-q").stdout.str()
    assert "seldon-load summary" not in quiet
    assert "seldon-load: 2 load runs: 1 pass, 1 FAIL" in quiet
    assert re.search(r"^test_two_budgets_missed\s.*\sFAIL$", quiet, re.MULTILINE)
    assert not re.search(r"^test_fine\s", quiet, re.MULTILINE)  # only what did not pass

    very_quiet = _run(pytester, target_url, "-qq")
    assert very_quiet.ret == pytest.ExitCode.TESTS_FAILED
    assert "seldon-load" not in very_quiet.stdout.str()


def test_the_lagged_note_wraps_to_the_terminal(pytester, target_url, monkeypatch):
    monkeypatch.setenv("COLUMNS", "72")
    pytester.makepyfile(test_lag=LAGGING)
    output = _run(pytester, target_url).stdout.lines
    start = next(i for i, line in enumerate(output) if line.startswith("lagged: "))
    note = []
    for line in output[start:]:
        if not line or line.startswith(("=", "host CPU steal")):
            break
        note.append(line)
    assert len(note) >= 3, note
    assert all(len(line) <= 72 for line in note), note
    assert " ".join(note).endswith("see BENCHMARKS.md for what one process holds")


def test_marker_budget_failures_describe_the_run_once(pytester, target_url):
    pytester.makepyfile(test_suite=SUITE)
    result = _run(pytester, target_url, "-k", "two_budgets")
    result.assert_outcomes(failed=1)
    failure = result.stdout.str().split("test_two_budgets_missed _", 1)[1]
    failure = failure.split("short test summary", 1)[0]
    assert "p99 latency" in failure and "p50 latency" in failure  # both budgets named
    assert len(re.findall(r"^\s+run: \d+ requests sent", failure, re.MULTILINE)) == 1
    assert len(re.findall(r"^\s+generator: ", failure, re.MULTILINE)) == 1
    assert len(re.findall(r"^\s+p99\.9\s", failure, re.MULTILINE)) == 1  # one percentile table


def test_junit_carries_p999_max_the_lag_flag_and_the_budgets(pytester, target_url):
    pytester.makepyfile(test_suite=SUITE, test_lag=LAGGING)
    _run(pytester, target_url, "--junitxml=junit.xml").assert_outcomes(passed=2, failed=1)
    cases = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ElementTree.parse(pytester.path / "junit.xml").iter("testcase")
    }
    fine, missed, lagging = (
        cases["test_fine"],
        cases["test_two_budgets_missed"],
        cases["test_lagging"],
    )
    for properties in (fine, missed, lagging):
        p99, p999, top = (float(properties[f"load_{n}_ms"]) for n in ("p99", "p999", "max"))
        assert 4.0 < p99 <= p999 <= top
    assert fine["load_lagged"] == "false" and lagging["load_lagged"] == "true"
    assert re.fullmatch(r"pass: p99 < 2\.00s \(measured \S+ms\)", fine["load_budget_p99"])
    assert re.fullmatch(r"FAIL: p99 < 1\.00ms \(measured \S+ms\)", missed["load_budget_p99"])
    assert re.fullmatch(r"FAIL: p50 < 1\.00ms \(measured \S+ms\)", missed["load_budget_p50"])
    assert not any(name.startswith("load_budget") for name in lagging)


def test_a_baseline_warning_points_at_its_test(pytester, target_url):
    pytester.makepyfile(test_suite=SUITE)
    _run(pytester, target_url, "-k", "fine", "--load-baseline-save=main").assert_outcomes(passed=1)
    pytester.makepyfile(
        test_new="""
def test_newcomer(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=20, duration=1,
             lag_threshold_ms=100)
"""
    )
    result = _run(pytester, target_url, "test_new.py", "--load-baseline-compare=main")
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    warnings = output.split("warnings summary", 1)[1]
    assert re.search(r"^test_new\.py::test_newcomer$", warnings, re.MULTILINE), warnings
    assert re.search(
        r"^\s+test_new\.py:\d+: BaselineWarning: baseline 'main' has no run "
        r"'test_new\.py::test_newcomer'",
        warnings,
        re.MULTILINE,
    ), warnings
    assert "reports.py" not in warnings


def test_help_lists_the_options_in_their_groups(pytester):
    text = pytester.runpytest("--help").stdout.str().split("[pytest] ini-options", 1)[0]
    headings = [
        "seldon-load target",
        "seldon-load load",
        "seldon-load cluster",
        "seldon-load Iago",
        "seldon-load baselines",
        "seldon-load reports",
    ]
    positions = [text.index(f"\n{heading} ") for heading in headings]
    assert positions == sorted(positions)
    sections = dict(zip(headings, re.split(r"\nseldon-load [a-zA-Z]+ \(", text)[1:], strict=True))
    assert "--seldon-url" in sections["seldon-load target"]
    assert "--load-timeout" in sections["seldon-load load"]
    assert "--seldon-kubeconfig" in sections["seldon-load cluster"]
    assert "--iago-image" in sections["seldon-load Iago"]
    assert "--load-baseline-compare" in sections["seldon-load baselines"]
    assert "--load-html" in sections["seldon-load reports"]
