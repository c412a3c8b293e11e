"""Replay lines that reach the wire: `replay check` and a run accept and refuse exactly the
same lines, name them by file and line, never show a secret, and never send a control
character in a request head."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from servers import Recording, ServerThread

from pytest_seldon_load.cli import main
from pytest_seldon_load.cli.replay import check_replay
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import EngineSettings, run_load
from pytest_seldon_load.replay import ReplayError, parse_line, write_replay

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fuzz_replay

SECRET = "Zq8SeCrEtVaLuE"
GOOD = 'POST /v2/models/iris/infer Content-Type:application/json {"inputs":[]}'

# (line, the reason a run and `replay check` both give, or None when both accept it)
LINES = [
    (GOOD, None),
    ("/v2/health/ready", None),
    ("POST /v2\rX-Injected:1 Content-Type:application/json {}", "holds a control character"),
    ("GET /v2/health\x0bready", "holds a control character (U+000B"),
    ("GET /v2/health\x0cready", "holds a control character (U+000C"),
    ("GET /a\x00b", "holds a control character (U+0000"),
    ("/v2/health\x85ready", "holds a control character (U+0085"),
    ("/v2/x\u2028y", "holds whitespace (U+2028"),
    ("GET /a\x1bb", "holds a control character (U+001B"),
    ("GET /a\x9bb", "holds a control character (U+009B"),
    ("GET /a\tb", "holds a control character (U+0009"),
    ("http://[::1/x", "the URL cannot be read"),
    ("/päth/ü?q=日本", None),
    (f"POST /x X-Api-Key:{SECRET}\x00 {{}}", "header X-Api-Key holds a control character"),
    (f"POST /x Authorization:Bearer_{SECRET}\x85 {{}}", "header Authorization holds a control"),
    ("POST /x X-Name:日本 {}", "header X-Name holds text outside Latin-1"),
    ("POST /x X-Name:café {}", None),
    ("POST /x Content-Length:2 {}", "header Content-Length is written by the load generator"),
    ("POST /x Transfer-Encoding:chunked {}", "header Transfer-Encoding is written by the load"),
    ("POST /x X-A:1 x-a:2 {}", "header x-a is given twice"),
    ("POST /x Content-Type:application/json {not json", "the body is not valid JSON"),
    ("POST /x {not json", "the body is not valid JSON"),
    ("POST /x " + "[" * 5000, "the body is JSON nested too deeply to read"),
    ("POST /x Content-Type:text/plain {not json", None),
    (f"GET /js/predict?json=1&consumer_key={SECRET}\x00x", "holds a control character"),
]


def _file(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "lines.replay"
    path.write_text(f"{GOOD}\n{line}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("line", "reason"), LINES)
def test_the_parser_refuses_what_cannot_go_on_the_wire(line, reason):
    if reason is None:
        assert parse_line(line, 7, "f.replay") is not None
        return
    with pytest.raises(ReplayError) as caught:
        parse_line(line, 7, "f.replay")
    assert str(caught.value).startswith(f"f.replay:7: {caught.value.reason}")
    assert reason in caught.value.reason
    assert SECRET not in str(caught.value)


def test_non_ascii_text_in_a_target_is_percent_encoded_as_utf8():
    request = parse_line("/päth/ü?q=日本")
    assert request.target == "/p%C3%A4th/%C3%BC?q=%E6%97%A5%E6%9C%AC"
    legacy = parse_line("http://seldon-server/js/predict?json=ü&consumer_key=K")
    assert legacy.path == "/js/predict?json=%C3%BC&consumer_key=K"


@pytest.mark.parametrize(
    "line",
    [
        f"POST /x X-Api-Key: {SECRET} {{bad",
        f"POST /x Authorization: Bearer {SECRET} Content-Type:application/json {{bad",
        f"POST /x authorization:{SECRET}\t {{bad",
        f"FETCH /x?consumer_key= {SECRET}",
        f"FETCH /x Cookie:{SECRET}",
    ],
)
def test_secrets_never_appear_in_a_bad_lines_error(tmp_path, line, capsys):
    with pytest.raises(ReplayError) as caught:
        parse_line(line, 1)
    assert SECRET not in str(caught.value)
    path = tmp_path / "bad.replay"
    path.write_text(line + "\n", encoding="utf-8")
    assert main(["replay", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "line 1:" in out and SECRET not in out


def test_a_line_header_replaces_an_endpoint_header_in_any_case(tmp_path):
    replay = write_replay(
        tmp_path / "h.replay", ["POST /v2/models/iris/infer Authorization:line X-Other:1 {}"]
    )
    recording = Recording()
    with ServerThread(recording) as server:
        endpoint = SeldonEndpoint(server.url, headers={"authorization": "endpoint", "X-Extra": "e"})
        result = run_load(endpoint, replay, rate=20, duration=0.2, settings=EngineSettings())
    assert result.ok == result.requests == 4
    headers = recording.seen[0].headers
    assert headers["Authorization"] == "line" and headers["X-Extra"] == "e"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ({"X-A": "1\r\nX-Injected: 1"}, "holds a control character"),
        ({"Authorization": f"Bearer {SECRET}\x00"}, "holds a control character"),
        ({"X-A": "日本"}, "outside Latin-1"),
        ({"Bad Name": "1"}, "not a valid HTTP header name"),
        ({"X-A": "1", "x-a": "2"}, "given twice"),
    ],
)
def test_endpoint_headers_are_checked_when_the_endpoint_is_made(headers, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        SeldonEndpoint("http://127.0.0.1:9", headers=headers)
    assert SECRET not in str(caught.value)


def test_write_replay_refuses_a_request_the_reader_would_refuse(tmp_path):
    with pytest.raises(ValueError, match=r"replay request 2: .*control character"):
        write_replay(tmp_path / "w.replay", [GOOD, "GET /a\x00b"])
    assert not (tmp_path / "w.replay").exists()


@pytest.fixture(scope="module")
def recording_server():
    recording = Recording()
    with ServerThread(recording) as server:
        yield server, recording


@pytest.mark.parametrize(("line", "reason"), LINES)
def test_check_and_run_refuse_exactly_the_same_lines(
    tmp_path, recording_server, capsys, line, reason
):
    server, recording = recording_server
    path = _file(tmp_path, line)
    counts, bad = check_replay(path)
    checked = main(["replay", "check", str(path)])
    check_out = capsys.readouterr().out
    recording.seen.clear()
    ran = main(
        ["run", "--url", server.url, "--replay", str(path), "--rate", "20", "--duration", "0.2"]
    )
    run_out, run_err = capsys.readouterr()
    if reason is None:
        assert (checked, ran, bad, sum(counts.values())) == (0, 0, [], 2)
        assert len(recording.seen) == 4
        for seen in recording.seen:
            assert seen.raw_path.isascii() and seen.raw_path.isprintable()
            assert " " not in seen.raw_path
    else:
        assert (checked, ran) == (1, 2)
        assert [(number, reason in why) for number, why, _ in bad] == [(2, True)]
        assert "line 2: " in check_out
        assert f"{path}:2: " in run_err and reason in run_err
        assert recording.seen == []  # nothing of the file was sent
    assert SECRET not in check_out + run_out + run_err


def test_seeded_fuzz_finds_no_disagreement_and_nothing_unsafe_on_the_wire():
    figures = fuzz_replay.fuzz(cases=4000, seed=14, batch=1000, time_limit=4.0)
    assert figures.cases >= 1000
    assert figures.accepted > 100 and figures.refused > 100
    assert figures.parity_mismatches == []
    assert figures.other_exceptions == []
    assert figures.unsafe_heads == []
    assert figures.secrets_shown == []
