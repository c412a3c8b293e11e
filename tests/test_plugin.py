"""The plugin as a user meets it: pytest runs of small load suites, through pytester.

Each inner run targets a real aiohttp server on 127.0.0.1 (``--seldon-url``), whose path says
how to answer: ``/delay/<ms>`` waits, ``/status/<code>`` answers that status.
"""

from __future__ import annotations

import re

import pytest
from servers import ServerThread, by_path


@pytest.fixture(scope="module")
def target_url():
    with ServerThread(by_path) as server:
        yield server.url


@pytest.fixture(autouse=True)
def quiet_ini(pytester: pytest.Pytester) -> None:
    """Inner runs get their own ini, so other installed plugins stay quiet."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


@pytest.fixture
def run_suite(pytester: pytest.Pytester, target_url: str):
    """Write `source` as a test module and run it against the test server."""

    def run(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_suite=source)
        return pytester.runpytest("-p", "no:cacheprovider", f"--seldon-url={target_url}", *args)

    return run


HEADER = """
import pytest
from pytest_seldon_load import assert_p99_below, assert_error_rate_below, assert_p50_below
"""


def test_met_budget_passes_and_summary_shows_the_run(run_suite):
    result = run_suite(
        HEADER
        + """
def test_fast(seldon_endpoint, replay_file, load_run):
    replay = replay_file.from_requests(["/delay/5"])
    # A loose punctuality rule: the verdict must not hang on the machine's load.
    result = load_run(seldon_endpoint, replay, rate=40, duration=1, lag_threshold_ms=100)
    assert result.requests == 40
    assert_p99_below(result, "500ms")
    assert_error_rate_below(result, 0)
"""
    )
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert "seldon-load summary" in output
    row = next(line for line in output.splitlines() if line.startswith("test_fast"))
    assert re.search(r"40/40\.0\s+40\s", row), row
    assert row.rstrip().endswith("pass")


def test_blown_budget_fails_with_the_numbers(run_suite):
    result = run_suite(
        HEADER
        + """
def test_slow(seldon_endpoint, replay_file, load_run):
    replay = replay_file.from_requests(["/delay/30"])
    result = load_run(seldon_endpoint, replay, rate=40, duration=1)
    assert_p99_below(result, "10ms")
"""
    )
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    found = re.search(r"p99 latency (\d+\.\d)ms is over its budget of 10\.0ms", output)
    assert found and float(found.group(1)) >= 30.0, output  # the server takes 30 ms
    assert "40 requests sent of 40 scheduled" in output
    assert "target rate 40/s, achieved 40.0/s" in output
    assert "errors: none" in output
    for label in ("p50", "p90", "p95", "p99", "p99.9", "max"):
        assert re.search(rf"^E\s+{re.escape(label)}\s+\d", output, re.MULTILINE), label
    row = next(line for line in output.splitlines() if line.startswith("test_slow"))
    assert row.rstrip().endswith("FAIL")


def test_error_budget_counts_server_errors(run_suite):
    result = run_suite(
        HEADER
        + """
def test_errors(seldon_endpoint, replay_file, load_run):
    replay = replay_file.from_requests(["/status/503", "/", "/", "/"])
    result = load_run(seldon_endpoint, replay, rate=40, duration=1)
    assert result.status_codes == {503: 10, 200: 30}
    assert_error_rate_below(result, "1%")
"""
    )
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "error rate 25.000% (10 of 40 requests) is over its budget of 1.000%" in output
    assert "http_503 ×10" in output


def test_marker_budgets_are_checked_after_a_body_without_assertions(run_suite):
    result = run_suite(
        HEADER
        + """
@pytest.mark.load(rate=40, duration="1s", budgets={"p99": "5ms"}, lag_threshold_ms=100)
def test_marker_blown(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/delay/20"]))

@pytest.mark.load(rate=40, duration="1s", budgets={"p99": "2s", "error_rate": 0},
                  lag_threshold_ms=100)
def test_marker_met(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/delay/1"]))

@pytest.mark.load(budgets={"p99": "1s"})
def test_marker_without_a_run():
    pass
"""
    )
    result.assert_outcomes(passed=1, failed=2)
    output = result.stdout.str()
    assert "marker budget failed" in output
    found = re.search(r"p99 latency (\d+\.\d)ms is over its budget of 5\.00ms", output)
    assert found and float(found.group(1)) >= 20.0, output  # the server takes 20 ms
    assert "the test ran no load" in output


def test_marker_supplies_load_run_defaults_and_scales_apply(run_suite):
    result = run_suite(
        HEADER
        + """
@pytest.mark.load(rate=20, duration="4s", warmup="2s")
def test_scaled(seldon_endpoint, replay_file, load_run):
    result = load_run(seldon_endpoint, replay_file.from_requests(["/"]))
    assert result.duration == pytest.approx(1.0)
    assert result.target_rate == pytest.approx(40.0)
    assert result.scheduled == 40
""",
        "--load-scale=0.25",
        "--load-rate-scale=2",
    )
    result.assert_outcomes(passed=1)


def test_bad_marker_budget_names_the_key(run_suite):
    result = run_suite(
        HEADER
        + """
@pytest.mark.load(rate=10, duration=1, budgets={"p99": "fast"})
def test_typo(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))

@pytest.mark.load(rate=10, duration=1, budgets={"p98.x": "5ms"})
def test_unknown(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))

@pytest.mark.load(rate=10, durations=1)
def test_bad_argument():
    pass
"""
    )
    result.assert_outcomes(errors=3)
    output = result.stdout.str()
    assert "budgets['p99']: cannot read 'fast'" in output
    assert "unknown budget 'p98.x'" in output
    assert "unknown argument(s) durations" in output


def test_a_budget_missed_while_the_generator_lagged_is_invalid_unless_allowed(run_suite):
    source = (
        HEADER
        + """
from pytest_seldon_load import BudgetExceeded

def test_lag(seldon_endpoint, replay_file, load_run):
    # A zero lag tolerance makes every send "late": the generator did not keep up.
    result = load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=40, duration=1,
                      lag_threshold_ms=0)
    assert not result.kept_up
    # Lag only adds latency: a budget met despite it is met.
    assert_p99_below(result, "10s")
    assert_error_rate_below(result, 0)
    # Broken by the service time alone, which lag cannot inflate: the server's.
    with pytest.raises(BudgetExceeded, match="the service time alone"):
        assert_p99_below(result, "1us")
    # Without service times, missed by more than the worst lag could add: the server's too.
    result.service.reset()
    with pytest.raises(BudgetExceeded, match="over it even without the generator's worst lag"):
        assert_p99_below(result, "1us")
    # Missed within what the lag could add: not blamed on the server.
    result.health.max_lag_ms = 60_000.0
    assert_p99_below(result, "1us")

def test_lag_met(seldon_endpoint, replay_file, load_run):
    result = load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=40, duration=1,
                      lag_threshold_ms=0)
    assert_p99_below(result, "10s")

def test_lag_errors(seldon_endpoint, replay_file, load_run):
    # A late generator cannot make a server answer 503: those errors are the server's.
    replay = replay_file.from_requests(["/status/503", "/"])
    result = load_run(seldon_endpoint, replay, rate=40, duration=1, lag_threshold_ms=0)
    assert not result.kept_up
    with pytest.raises(BudgetExceeded, match="error rate 50.000%"):
        assert_error_rate_below(result, "1%")
"""
    )
    invalid = run_suite(source)
    invalid.assert_outcomes(failed=1, passed=2)
    output = invalid.stdout.str()
    assert re.search(r"^test_lag_met\s.*pass, lagged$", output, re.MULTILINE), output
    assert "lagged: the load generator fell behind its schedule" in output
    assert (
        "cannot judge p99 < 1us: the measurement is invalid, the load generator fell "
        "behind its own schedule" in output
    ), output
    # Budgets it broke beyond what lag explains come first in the summary: FAIL, not invalid.
    assert re.search(r"^test_lag\s.*FAIL$", output, re.MULTILINE), output
    allowed = run_suite(source, "--load-allow-lag")
    allowed.assert_outcomes(failed=1, passed=2)
    assert "BudgetExceeded: p99 latency" in allowed.stdout.str()


def test_options_are_grouped_and_validated(pytester: pytest.Pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    target = help_text.split("seldon-load target (", 1)[1].split("seldon-load load (", 1)[0]
    for option in ("--seldon-url", "--seldon-protocol", "--seldon-model", "--seldon-header"):
        assert option in target, option
    load = help_text.split("seldon-load load (", 1)[1].split("seldon-load cluster (", 1)[0]
    for option in (
        "--load-scale",
        "--load-rate-scale",
        "--load-engine",
        "--load-timeout",
        "--load-allow-lag",
    ):
        assert option in load, option
    bad = pytester.runpytest("--load-scale=0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "argument --load-scale: must be a positive number, got '0'" in bad.stderr.str()
    for option, message in (
        ("--load-rate-scale=nan", "argument --load-rate-scale: must be a positive number"),
        ("--load-connections=0", "argument --load-connections: must be at least 1, got 0"),
        ("--load-timeout=0", "argument --load-timeout: must be positive, got '0'"),
        ("--seldon-local-extra-latency=-1", "must be a number >= 0, got '-1'"),
    ):
        bad = pytester.runpytest(option)
        assert bad.ret == pytest.ExitCode.USAGE_ERROR, option
        assert message in bad.stderr.str(), bad.stderr.str()


def test_bad_run_values_are_refused_naming_the_argument(run_suite):
    """Nothing falls back to a default silently: 0, NaN or "abc" is an error naming it."""
    result = run_suite(
        HEADER
        + """
@pytest.mark.parametrize(("name", "value"), [
    ("rate", "abc"), ("seed", "abc"), ("timeout", 0), ("connections", 0),
    ("lag_threshold_ms", float("nan")), ("ramp_from", float("inf")), ("duration", 0),
    ("warmup", -1), ("engine", "k7"),
])
def test_call(seldon_endpoint, replay_file, load_run, name, value):
    options = {"rate": 10, "duration": 1, name: value}
    with pytest.raises(ValueError) as refused:
        load_run(seldon_endpoint, replay_file.from_requests(["/"]), **options)
    message = str(refused.value)
    assert message.startswith("load_run: ") and (name + ":" in message or name == "engine")
    print("REFUSED", message)

@pytest.mark.load(rate="abc", duration=1)
def test_marker_rate(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))

@pytest.mark.load(rate=10, duration=1, timeout=0)
def test_marker_timeout(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))
""",
        "-s",
    )
    result.assert_outcomes(passed=9, errors=2)
    output = result.stdout.str()
    for expected in (
        "load_run: rate: must be a positive number, got 'abc'",
        "load_run: seed: must be a whole number, got 'abc'",
        "load_run: timeout: must be positive, got 0",
        "load_run: connections: must be at least 1, got 0",
        "load_run: lag_threshold_ms: must be a number >= 0, got nan",
        "load_run: ramp_from: must be a number >= 0, got inf",
        "load_run: unknown engine 'k7'; available: embedded, iago",
        "test_marker_rate: @pytest.mark.load rate: must be a positive number, got 'abc'",
        "test_marker_timeout: @pytest.mark.load timeout: must be positive, got 0",
    ):
        assert expected in output, expected


def test_load_marker_is_registered_for_strict_markers(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
import pytest

@pytest.mark.load
def test_marked():
    pass
"""
    )
    result = pytester.runpytest("--strict-markers", "-m", "load")
    result.assert_outcomes(passed=1)


def test_secrets_stay_out_of_failure_output(pytester: pytest.Pytester, target_url: str):
    pytester.makeconftest(
        f"""
import pytest
from pytest_seldon_load import SeldonEndpoint

@pytest.fixture(scope="session")
def seldon_endpoint():
    return SeldonEndpoint("{target_url}", headers={{"Authorization": "Bearer s3cr3t-t0ken"}})
"""
    )
    pytester.makepyfile(
        HEADER
        + """
def test_slow(seldon_endpoint, replay_file, load_run):
    replay = replay_file.from_requests(
        ["/delay/20?consumer_key=k3y-abcdef&user=1", "/delay/20?consumer_key=k3y-abcdef&user=2"]
    )
    result = load_run(seldon_endpoint, replay, rate=20, duration=1)
    assert_p50_below(result, "1ms")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--showlocals", "-vv")
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "s3cr3t-t0ken" not in output
    assert "***" in output


def test_results_from_xdist_workers_reach_the_summary(run_suite):
    pytest.importorskip("xdist")
    result = run_suite(
        HEADER
        + """
@pytest.mark.parametrize("n", [1, 2])
def test_each(seldon_endpoint, replay_file, load_run, n):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=20, duration=1,
             lag_threshold_ms=100)
""",
        "-n",
        "2",
    )
    result.assert_outcomes(passed=2)
    output = result.stdout.str()
    assert re.search(r"^test_each\[1\]\s.*pass$", output, re.MULTILINE), output
    assert re.search(r"^test_each\[2\]\s.*pass$", output, re.MULTILINE), output


def test_a_consumer_key_in_a_test_id_is_masked_in_every_report(run_suite, pytester):
    result = run_suite(
        HEADER
        + """
@pytest.mark.parametrize("key", ["k3y-in-the-id"])
def test_keyed(seldon_endpoint, replay_file, load_run, key):
    replay = replay_file.recommendation(items=["7"], num_actions=5, consumer_key=key)
    load_run(seldon_endpoint, replay, rate=20, duration=1, lag_threshold_ms=100)
""",
        "--load-json=results.json",
        "--junitxml=junit.xml",
    )
    result.assert_outcomes(passed=1)
    report = (pytester.path / "results.json").read_text()
    assert "test_keyed[" in report and "k3y-in-the-id" not in report
    # pytest names the test case itself; the properties are ours.
    junit = (pytester.path / "junit.xml").read_text()
    properties = re.findall(r"<property [^>]*/>", junit)
    assert properties and not any("k3y-in-the-id" in p for p in properties), properties
    assert "k3y-in-the-id" not in result.stdout.str().split("seldon-load summary")[1]
