"""The bad-input matrix: every kind of bad input a user can hand the project, through the real
command line (``seldon-load``, exit code 2, one line on stderr naming the input and where) or
a real pytest session (a usage error naming the option or the test), and nothing left behind:
no output file, no temporary part, no request sent.

Replay files (garbage, binary, a 10 MB line, bad JSON bodies, unknown methods, control
characters, empty, missing, a directory), feature specs, budgets and thresholds, rates and
durations (0, negative, NaN, inf), and damaged, truncated or foreign baselines and result
files. `seldon-load replay check` is a checker: a bad line is its finding (exit 1, the line
named); a file it cannot open is bad input (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from recorded import recorded_run
from servers import ServerThread, by_path

from pytest_seldon_load.baseline import build_baseline
from pytest_seldon_load.cli import main as seldon_load

TEN_MB = 10_000_000
LONGEST_MESSAGE = 600
"""An error names the input and shows the start of a bad line, never the whole of it."""


@pytest.fixture(scope="module")
def server():
    """A V2 server on loopback that counts what reaches it: bad input must send nothing."""
    received: list[str] = []

    async def counting(request):
        received.append(request.path)
        return await by_path(request)

    with ServerThread(counting) as running:
        running.received = received
        yield running


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    code = seldon_load([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The single ``seldon-load...: error: ...`` line a usage error prints."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert len(lines[0]) < LONGEST_MESSAGE, lines[0][:2000]
    assert "Traceback" not in err
    assert ": error: " in lines[0], lines[0]
    return lines[0]


def nothing_left(directory: Path, *names: str) -> None:
    """None of `names` was written, and no temporary part of any file is left."""
    present = sorted(p.name for p in directory.iterdir())
    assert not [n for n in names if n in present], present
    assert not [n for n in present if ".part" in n or n.startswith(".tmp")], present


# --- replay files ---------------------------------------------------------------------------

REPLAYS = {
    "garbage": (b"hello world\n", 1, "unknown method 'hello'"),
    "binary": (b"\xff\xfe\x00\x9c\x80 binary\n" + bytes(range(256)), 1, "not valid UTF-8"),
    "a 10 MB URL": (b"/" + b"a" * TEN_MB + b"\n", 1, "the URL is 10,000,001 characters long"),
    "a 10 MB garbage line": (b"x" * TEN_MB + b"\n", 1, "unknown method 'xxxxxxxxxxxxxxxxxxxx'"),
    "a bad JSON body": (
        b'POST /v2/models/iris/infer Seldon-Model:iris {"inputs": [\n',
        1,
        "the body is not valid JSON",
    ),
    "an unknown method": (b"FETCH /v2/models/iris/infer\n", 1, "unknown method 'FETCH'"),
    "a control character in the target": (
        b"POST /v2\rX-Injected:1 {}\n",
        1,
        "the request target holds a control character (U+000D",
    ),
    "a bad line after good ones": (
        b"/v2/health/ready\n# fine so far\n/v2/health/live\nGET /x Content-Length:5\n",
        4,
        "header Content-Length is written by the load generator",
    ),
}


@pytest.mark.parametrize("case", list(REPLAYS))
def test_a_bad_replay_line_stops_run_before_anything_is_sent(
    server, tmp_path, capsys, monkeypatch, case
):
    content, line, reason = REPLAYS[case]
    replay = tmp_path / "bad.replay"
    replay.write_bytes(content)
    monkeypatch.chdir(tmp_path)
    before = len(server.received)
    code, _, err = run_cli(
        capsys,
        *("run", "--url", server.url, "--replay", "bad.replay", "--rate", "20"),
        *("--duration", "1s", "--out", "result.json", "--no-progress"),
    )
    assert code == 2
    message = one_error_line(err)
    assert f"--replay: bad.replay:{line}: " in message
    assert reason in message
    nothing_left(tmp_path, "result.json")
    if line == 1:
        assert len(server.received) == before  # refused before the run began
    else:  # the good lines may have gone out; the bad one never did
        assert "/x" not in server.received[before:]


@pytest.mark.parametrize("case", list(REPLAYS))
def test_replay_check_names_the_same_bad_line(tmp_path, capsys, case):
    content, line, reason = REPLAYS[case]
    replay = tmp_path / "bad.replay"
    replay.write_bytes(content)
    code, out, err = run_cli(capsys, "replay", "check", replay)
    assert code == 1 and not err
    assert f"line {line}: " in out and reason in out
    assert all(len(text) < LONGEST_MESSAGE for text in out.splitlines())


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "holds no requests"), (b"# only a comment\n\n   \n", "holds no requests")],
    ids=["empty", "only comments"],
)
def test_a_replay_without_requests_is_refused(server, tmp_path, capsys, content, reason):
    replay = tmp_path / "none.replay"
    replay.write_bytes(content)
    code, _, err = run_cli(
        capsys,
        *("run", "--url", server.url, "--replay", replay, "--rate", "20", "--duration", "1s"),
        *("--out", tmp_path / "result.json"),
    )
    assert code == 2
    assert f"--replay: {replay} {reason}" in one_error_line(err)
    nothing_left(tmp_path, "result.json")
    code, out, _ = run_cli(capsys, "replay", "check", replay)
    assert code == 1 and "0 requests" in out and "no requests" in out


@pytest.mark.parametrize("kind", ["missing", "a directory", "a device"])
def test_a_replay_that_is_not_a_file_is_refused(server, tmp_path, capsys, kind):
    path = {"missing": tmp_path / "nope.replay", "a directory": tmp_path, "a device": "/dev/null"}[
        kind
    ]
    expected = {
        "missing": "no such file",
        "a directory": "is a directory",
        "a device": "is not a regular file",
    }[kind]
    code, _, err = run_cli(
        capsys,
        *("run", "--url", server.url, "--replay", path, "--rate", "20", "--duration", "1s"),
        *("--out", tmp_path / "result.json"),
    )
    assert code == 2
    message = one_error_line(err)
    assert message.startswith("seldon-load: error: --replay: ")
    assert expected in message and str(path) in message
    nothing_left(tmp_path, "result.json")
    if kind != "a device":  # reading /dev/null is an empty file to `check`
        code, _, err = run_cli(capsys, "replay", "check", path)
        assert code == 2
        message = one_error_line(err)
        assert f"cannot open the replay file {path}" in message


# --- feature specs ------------------------------------------------------------------------

FEATURES = {
    "not JSON": ("not json", "--feature 1: not valid JSON"),
    "not an object": ("[1, 2]", "--feature 1: must be a JSON object"),
    "no name": ('{"type":"numeric","min":0,"max":1}', '--feature 1: needs "name"'),
    "unknown type": ('{"name":"f","type":"wat"}', '--feature 1 (f): unknown type "wat"'),
    "unknown key": ('{"name":"f","type":"numeric","min":0,"max":1,"mean":3}', 'unknown key "mean"'),
    "min above max": ('{"name":"f","type":"numeric","min":5,"max":1}', "min (5) is greater"),
    "a string for a number": ('{"name":"f","type":"numeric","min":"0","max":1}', '"min" must be a'),
    "NaN": ('{"name":"f","type":"numeric","min":NaN,"max":1}', '"min" must be finite, got nan'),
    "Infinity": ('{"name":"f","type":"numeric","min":0,"max":Infinity}', '"max" must be finite'),
    "a range that overflows": (
        '{"name":"f","type":"numeric","min":-1.7e308,"max":1.7e308}',
        "--feature 1 (f): max - min (1.7e+308 - -1.7e+308) overflows a float",
    ),
    "a huge std": (
        '{"name":"f","type":"normal","mean":0,"std":1e307}',
        "--feature 1 (f): mean (0) and std (1e+307) would draw numbers beyond",
    ),
    "a negative std": ('{"name":"f","type":"normal","mean":0,"std":-1}', "std (-1) must not be"),
    "a fractional integer": ('{"name":"f","type":"integer","min":0.5,"max":3}', "whole number"),
    "no categories": ('{"name":"f","type":"categorical","values":[]}', '"values" must be a non-'),
    "weights that do not match": (
        '{"name":"f","type":"categorical","values":["a"],"weights":[1,2]}',
        '"weights" must be a list of 1 numbers',
    ),
}


@pytest.mark.parametrize("case", list(FEATURES))
def test_a_bad_feature_spec_writes_no_replay(tmp_path, capsys, case):
    spec, expected = FEATURES[case]
    code, _, err = run_cli(
        capsys,
        *("replay", "prediction", "--protocol", "v2", "--replay", tmp_path / "out.replay"),
        *("--num", "5", "--feature", '{"name":"ok","type":"numeric","min":0,"max":1}'),
        *("--feature", spec),
    )
    assert code == 2
    message = one_error_line(err)
    assert expected.replace("--feature 1", "--feature 2") in message, message
    nothing_left(tmp_path, "out.replay")


# --- rates, durations, budgets --------------------------------------------------------------

RUN_VALUES = (
    [
        (option, value)
        for option in ("--rate", "--duration", "--timeout")
        for value in ("0", "-1", "nan", "inf", "1e400", "fast")
    ]
    + [
        (option, value)
        for option in ("--warmup", "--ramp", "--ramp-from")
        for value in ("-1", "nan", "inf", "1e400")
    ]
    + [("--connections", value) for value in ("0", "-1", "nan", "inf", "2.5")]
    + [("--abort-on-error-rate", value) for value in ("-1", "nan", "1", "100%", "lots")]
    + [
        ("--threshold", value)
        for value in (
            "p99<abc",
            "p99<nanms",
            "p99<infms",
            "p99<-5ms",
            "p99<0ms",
            "p99<1e400ms",
            "p(101)<5ms",
            "p(nan)<5ms",
            "error_rate<nan",
            "error_rate<2",
            "throughput>inf",
            "throughput>-1",
            "latency<5ms",
        )
    ]
)


@pytest.mark.parametrize(("option", "value"), RUN_VALUES)
def test_a_bad_rate_duration_or_threshold_sends_nothing(server, tmp_path, capsys, option, value):
    replay = tmp_path / "ok.replay"
    replay.write_text("/v2/health/ready\n")
    arguments = {"--rate": "20", "--duration": "1s", option: value}
    before = len(server.received)
    code, _, err = run_cli(
        capsys,
        *("run", "--url", server.url, "--replay", replay, "--arrival", "slow-start-poisson"),
        *(word for pair in arguments.items() for word in pair),
        *("--out", tmp_path / "result.json"),
    )
    assert code == 2
    message = one_error_line(err)
    assert f"argument {option}: " in message and repr(value)[1:-1] in message, message
    assert len(server.received) == before
    nothing_left(tmp_path, "result.json")


@pytest.mark.parametrize(
    "arguments",
    [
        ["--fail", "p99:abc"],
        ["--fail", "p99:nan%"],
        ["--fail", "p99:-5%"],
        ["--fail", "p99"],
        ["--fail", "p77:5%"],
        ["--fail", "error_rate:nan"],
        ["--confidence", "1.5"],
        ["--confidence", "nan"],
        ["--confidence", "0"],
    ],
)
def test_a_bad_comparison_criterion_is_a_usage_error(tmp_path, capsys, arguments):
    saved = tmp_path / "result.json"
    saved.write_text(recorded_run([5.0] * 3, rate=20).to_json())
    code, out, err = run_cli(capsys, "compare", saved, saved, *arguments)
    assert code == 2 and not out
    assert f"argument {arguments[0]}: " in one_error_line(err)


# --- baselines and result files ---------------------------------------------------------------


def _baseline_text() -> str:
    runs = [recorded_run([5.0] * 3, rate=20).to_dict() | {"nodeid": "t::a", "key": "t::a"}]
    document, _ = build_baseline("main", runs, {"node": "here"}, {"id": "abc"})
    return json.dumps(document)


DAMAGED: dict[str, tuple[Callable[[str], str | bytes], str]] = {
    "truncated": (lambda text: text[: len(text) // 2], "is not valid JSON"),
    "corrupt": (lambda text: text[:40] + "}{" + text[42:], "is not valid JSON"),
    "empty": (lambda text: "", "is not valid JSON"),
    "binary": (lambda text: b"\x89PNG\r\n\x1a\n\x00\xff" * 50, "not a text file"),
    "foreign": (lambda text: '{"name": "my-package", "version": "1.0.0"}', "no load results"),
    "a list": (lambda text: "[1, 2, 3]", "no load results"),
    "nested too deeply": (lambda text: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "a 5000-digit number": (
        lambda text: text.replace('"ok": ', '"ok": ' + "9" * 5000, 1),
        "a number of thousands of digits",
    ),
}


def _damaged_file(directory: Path, case: str) -> Path:
    damage, _ = DAMAGED[case]
    content = damage(_baseline_text())
    path = directory / "main.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("case", list(DAMAGED))
@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_damaged_saved_file_is_named_by_compare_and_report(tmp_path, capsys, case, command):
    damaged = _damaged_file(tmp_path, case)
    good = tmp_path / "good.json"
    good.write_text(recorded_run([5.0] * 3, rate=20).to_json())
    if command == "compare":
        code, out, err = run_cli(capsys, "compare", damaged, good)
        assert not out
    else:
        code, _, err = run_cli(capsys, "report", damaged, "-o", tmp_path / "report.html")
    assert code == 2
    message = one_error_line(err)
    assert str(damaged) in message and DAMAGED[case][1] in message, message
    nothing_left(tmp_path, "report.html")


@pytest.mark.parametrize("kind", ["missing", "a directory"])
def test_a_saved_file_that_is_not_there_is_named(tmp_path, capsys, kind):
    path = tmp_path / "nope.json" if kind == "missing" else tmp_path
    code, _, err = run_cli(capsys, "compare", path, path)
    assert code == 2
    message = one_error_line(err)
    assert f"cannot read {path}" in message


@pytest.mark.parametrize("case", ["truncated", "foreign", "binary", "a 5000-digit number"])
def test_a_damaged_baseline_is_a_usage_error_or_a_warning_naming_it(pytester, case):
    directory = pytester.path / "baselines"
    directory.mkdir()
    damaged = _damaged_file(directory, case)
    written = damaged.read_bytes()
    pytester.makepyfile(test_plain="def test_nothing_to_load():\n    pass\n")
    strict = pytester.runpytest(
        "-p", "no:cacheprovider", f"--load-baseline-dir={directory}",
        "--load-baseline-compare=main", "--load-baseline-missing=error",
    )  # fmt: skip
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    text = strict.stderr.str()
    assert "--load-baseline-compare: baseline 'main' is unreadable" in text
    assert str(damaged) in text and "Traceback" not in text
    lenient = pytester.runpytest(
        "-p", "no:cacheprovider", f"--load-baseline-dir={directory}",
        "--load-baseline-compare=main",
    )  # fmt: skip
    assert lenient.ret == pytest.ExitCode.OK
    assert lenient.parseoutcomes()["passed"] == 1  # (warnings: counted below, by kind)
    text = lenient.stdout.str()
    assert text.count("BaselineWarning: baseline 'main' is unreadable") == 1, text
    assert str(damaged) in text
    assert damaged.read_bytes() == written  # a read never rewrites the file


# --- pytest options, markers and load_run arguments ---------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--load-scale=0"], "--load-scale"),
        (["--load-scale=nan"], "--load-scale"),
        (["--load-rate-scale=-1"], "--load-rate-scale"),
        (["--load-rate-scale=inf"], "--load-rate-scale"),
        (["--load-timeout=nan"], "--load-timeout"),
        (["--load-timeout=0"], "--load-timeout"),
        (["--load-connections=0"], "--load-connections"),
        (["--seldon-url=ftp://model"], "--seldon-url"),
        (["--load-baseline-save=../elsewhere"], "baseline name '../elsewhere'"),
        (["--load-engine=k7"], "--load-engine: unknown engine 'k7'"),
    ],
)
def test_a_bad_pytest_option_is_a_usage_error(pytester, arguments, named):
    pytester.makepyfile(test_plain="def test_nothing_to_load():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert named in text and "Traceback" not in text, text


def test_a_bad_ini_setting_is_a_usage_error_naming_the_key(pytester):
    pytester.makeini("[pytest]\nload_scale = nan\n")
    pytester.makepyfile(test_plain="def test_nothing_to_load():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "load_scale" in text and "nan" in text and "Traceback" not in text, text


MARKERS = {
    "rate=0": "rate",
    "rate=float('nan')": "rate",
    "rate=-5": "rate",
    "duration=float('inf')": "duration",
    "duration=-1": "duration",
    "warmup='soon'": "warmup",
    "budgets={'p99': 'abc'}": "budgets['p99']",
    "budgets={'p99': float('nan')}": "budgets['p99']",
    "budgets={'p77.7.7': '5ms'}": "p77.7.7",
    "budgets='p99<5ms'": "budgets",
    "wat=1": "unknown argument(s) wat",
}


@pytest.mark.parametrize("marker", list(MARKERS))
def test_a_bad_load_marker_is_an_error_naming_the_test_and_argument(pytester, marker):
    pytester.makepyfile(
        test_marked=f"import pytest\n\n@pytest.mark.load({marker})\ndef test_it():\n    pass\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "test_marked.py::test_it: @pytest.mark.load" in text, text
    assert MARKERS[marker] in text, text
    assert "def load_marker_kwargs" not in text, text  # the message, not the plugin's code


LOAD_RUN_ARGUMENTS = {
    "rate=float('nan')": "rate",
    "rate='abc'": "rate",
    "duration=0": "duration",
    "timeout=0": "timeout",
    "connections=0": "connections",
    "lag_threshold_ms=float('nan')": "lag_threshold_ms",
    "seed='abc'": "seed",
}


@pytest.mark.parametrize("argument", list(LOAD_RUN_ARGUMENTS))
def test_a_bad_load_run_argument_fails_the_test_naming_it(pytester, server, argument):
    pytester.makepyfile(
        test_call=(
            "def test_it(seldon_endpoint, replay_file, load_run):\n"
            "    replay = replay_file.from_requests(['/v2/health/ready'])\n"
            "    load_run(seldon_endpoint, replay, **{'rate': 20, 'duration': 1, **dict("
            f"{argument})}})\n"
        )
    )
    before = len(server.received)
    result = pytester.runpytest("-p", "no:cacheprovider", f"--seldon-url={server.url}")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    name = LOAD_RUN_ARGUMENTS[argument]
    assert f"{name}" in text and ("PlanError" in text or "ValueError" in text), text
    assert len(server.received) == before
