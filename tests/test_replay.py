"""Replay files: parsing both line forms, streaming, looping, atomic writing."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from pytest_seldon_load.protocols import legacy_predict_line, v1_request, v2_request
from pytest_seldon_load.replay import (
    ReplayError,
    ReplayFile,
    ReplayRequest,
    parse_line,
    write_replay,
)

V2_BODY = '{"inputs":[{"name":"predict","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}'


def write(tmp_path: Path, text: str | bytes, name: str = "replay.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "path"),
    [
        (
            "http://seldon-server/js/predict?json=%7B%22f%22%3A1%7D&consumer_key=K&jsonpCallback=j",
            "/js/predict?json=%7B%22f%22%3A1%7D&consumer_key=K&jsonpCallback=j",
        ),
        ("https://other.example:8443/v2/health/ready", "/v2/health/ready"),
        ("http://seldon-server", "/"),
        ("http://seldon-server?x=1", "/?x=1"),
        ("/v2/health/ready", "/v2/health/ready"),
        ("/js/predict?json=%7B%7D&consumer_key=K", "/js/predict?json=%7B%7D&consumer_key=K"),
        ("   /padded   \n", "/padded"),
    ],
)
def test_classic_line_is_a_get_of_path_and_query(line, path):
    request = parse_line(line, 1)
    assert request is not None
    assert request.method == "GET"
    assert request.path == path
    assert request.headers == ()
    assert request.body is None


def test_extended_line_keeps_headers_and_body_byte_for_byte():
    line = f"POST /v2/models/iris/infer Seldon-Model:iris Content-Type:application/json {V2_BODY}"
    request = parse_line(line, 3)
    assert request == ReplayRequest(
        "POST",
        "/v2/models/iris/infer",
        (("Seldon-Model", "iris"), ("Content-Type", "application/json")),
        V2_BODY.encode(),
    )
    assert request.line_number == 3
    assert request.path == "/v2/models/iris/infer"


def test_body_with_inner_spaces_and_unicode_is_kept_exactly():
    body = '{"inputs": [{"name": "text",  "data": ["héllo  wörld ✓"]}]}'
    request = parse_line(f"PUT /v2/models/t/infer X-A:1 {body}\n")
    assert request is not None
    assert request.headers == (("X-A", "1"),)
    assert request.body == body.encode("utf-8")


def test_extended_line_without_headers_or_body():
    assert parse_line("DELETE /v2/repository/models/iris") == ReplayRequest(
        "DELETE", "/v2/repository/models/iris"
    )
    assert parse_line("GET /ready X-Trace:abc") == ReplayRequest(
        "GET", "/ready", (("X-Trace", "abc"),)
    )


def test_extended_line_with_full_url_uses_only_the_path():
    request = parse_line(f"POST http://somewhere:9000/v2/models/iris/infer?x=1 {V2_BODY}")
    assert request is not None
    assert request.path == "/v2/models/iris/infer?x=1"
    assert request.body == V2_BODY.encode()


@pytest.mark.parametrize("line", ["", "   ", "\n", "# a comment", "   # indented comment"])
def test_blank_and_comment_lines_are_skipped(line):
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("FETCH /x", "unknown method 'FETCH'"),
        ("post /x", "unknown method 'post'"),
        ("POST", "POST with no request target"),
        ("POST relative/path {}", "must be a path starting with '/'"),
        ("http:///no-host", "URL has no host"),
        ("POST http:///no-host {}", "URL has no host"),
        ("/two words", "one URL with no spaces"),
        ("ftp://host/x", "unknown method"),
    ],
)
def test_bad_line_names_source_line_and_reason(line, reason):
    with pytest.raises(ReplayError) as info:
        parse_line(line, 17, "replays/iris.txt")
    error = info.value
    assert isinstance(error, ValueError)
    assert error.line_number == 17
    assert error.source == "replays/iris.txt"
    assert str(error).startswith("replays/iris.txt:17: ")
    assert reason in str(error)


def test_file_streams_requests_and_skips_blank_and_comments(tmp_path):
    path = write(
        tmp_path,
        "# iris replay\n"
        "\n"
        "/v2/health/ready\n"
        f"POST /v2/models/iris/infer Seldon-Model:iris {V2_BODY}\n"
        "   \n"
        "# trailing comment\n"
        "http://seldon-server/js/predict?json=1\n",
    )
    requests = list(ReplayFile(path))
    assert [r.method for r in requests] == ["GET", "POST", "GET"]
    assert [r.line_number for r in requests] == [3, 4, 7]
    assert requests[1].body == V2_BODY.encode()
    assert requests[2].path == "/js/predict?json=1"


def test_crlf_line_endings_are_read_like_lf(tmp_path):
    path = write(tmp_path, f"/a\r\nPOST /b {V2_BODY}\r\n".encode())
    requests = list(ReplayFile(path))
    assert requests[0].target == "/a"
    assert requests[1].body == V2_BODY.encode()


def test_bad_line_in_a_file_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "/ok\n# comment\n/also-ok\nNOPE /x\n/after\n")
    with pytest.raises(ReplayError) as info:
        list(ReplayFile(path))
    assert info.value.line_number == 4
    assert str(info.value).startswith(f"{path}:4: ")
    assert "NOPE" in str(info.value)


def test_skip_bad_lines_counts_them_and_keeps_going(tmp_path):
    path = write(tmp_path, "/one\nNOPE /x\n/two\nPOST\nrelative\n/three\n")
    replay = ReplayFile(path, skip_bad_lines=True)
    assert [r.target for r in replay] == ["/one", "/two", "/three"]
    assert replay.bad_lines == 3


def test_reuse_loops_the_file(tmp_path):
    path = write(tmp_path, "# header\n/a\n/b\n\n/c\n")
    replay = ReplayFile(path)
    looped = [r.target for r in itertools.islice(replay.requests(reuse=True), 10)]
    assert looped == ["/a", "/b", "/c", "/a", "/b", "/c", "/a", "/b", "/c", "/a"]
    assert replay.count == 3


def test_without_reuse_the_file_is_read_once(tmp_path):
    path = write(tmp_path, "/a\n/b\n")
    replay = ReplayFile(path)
    assert [r.target for r in replay.requests(reuse=False)] == ["/a", "/b"]
    assert replay.count == 2


@pytest.mark.parametrize("text", ["# only\n# comments\n\n", "", "\n\n  \n"])
@pytest.mark.parametrize("reuse", [True, False])
def test_a_file_without_requests_is_an_error(tmp_path, text, reuse):
    path = write(tmp_path, text)
    with pytest.raises(ReplayError, match="holds no requests") as info:
        next(ReplayFile(path).requests(reuse=reuse))
    assert str(path) in str(info.value)


def test_a_file_of_only_bad_lines_skipped_is_an_error(tmp_path):
    path = write(tmp_path, "NOPE /x\nNOPE /y\n")
    with pytest.raises(ReplayError, match="holds no requests"):
        next(ReplayFile(path, skip_bad_lines=True).requests(reuse=True))


def test_missing_file_is_a_replay_error(tmp_path):
    with pytest.raises(ReplayError, match="cannot open the replay file") as info:
        list(ReplayFile(tmp_path / "absent.txt"))
    assert "absent.txt" in str(info.value)


def test_non_utf8_line_is_reported_as_an_error(tmp_path):
    path = write(tmp_path, b"/a\n/b\n/c\xff\xfe\n/d\n")
    with pytest.raises(ReplayError, match="not valid UTF-8"):
        list(ReplayFile(path))


def test_non_utf8_line_is_reported_with_its_line_number(tmp_path):
    path = write(tmp_path, b"/a\n/b\n/c\xff\xfe\n/d\n")
    with pytest.raises(ReplayError) as info:
        list(ReplayFile(path))
    assert info.value.line_number == 3


def test_secret_in_a_bad_line_is_redacted():
    secret = "s3cr3tConsumerKey42"
    line = (
        f"FETCH http://seldon-server/js/predict?json=%7B%7D&consumer_key={secret}&jsonpCallback=j"
    )
    with pytest.raises(ReplayError) as info:
        parse_line(line, 9, "prod.txt")
    message = str(info.value)
    assert secret not in message
    assert "consumer_key=***" in message
    assert message.startswith("prod.txt:9: ")


def test_secret_in_a_bad_get_line_of_a_file_is_redacted(tmp_path):
    secret = "AnotherSecretKey77"
    path = write(tmp_path, f"/ok\n/js/predict?consumer_key={secret} trailing\n")
    with pytest.raises(ReplayError) as info:
        list(ReplayFile(path))
    assert secret not in str(info.value)
    assert info.value.line_number == 2


ROUND_TRIP = [
    ReplayRequest("GET", "/v2/health/ready"),
    ReplayRequest("GET", "http://seldon-server/js/predict?json=%7B%7D&consumer_key=K"),
    ReplayRequest("GET", "/ready", (("X-Trace", "abc"),)),
    ReplayRequest("POST", "/v2/models/iris/infer", (("Seldon-Model", "iris"),), V2_BODY.encode()),
    ReplayRequest("POST", "/v2/models/iris/infer", (), V2_BODY.encode()),
    ReplayRequest("POST", "/x", (), '{"a": "b c  d", "u": "ünï"}'.encode()),
    ReplayRequest("DELETE", "/v2/repository/models/iris"),
    v2_request(
        "iris", [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], headers=(("Seldon-Model", "iris"),)
    ),
    v2_request("counts", [[1, 2], [3, 4]]),
    v1_request([[1.0, 2.0]], names=["a", "b"]),
    v1_request([[1.0, 2.0]], tensor=True),
]


@pytest.mark.parametrize("request_", ROUND_TRIP, ids=lambda r: f"{r.method}-{r.target[:24]}")
def test_line_round_trip(request_):
    assert parse_line(request_.to_line()) == request_


def test_write_replay_round_trips_through_a_file(tmp_path):
    legacy = legacy_predict_line({"f1": 1, "f2": "x"}, "KEY123")
    path = tmp_path / "sub" / "out.txt"
    written = write_replay(path, [*ROUND_TRIP, legacy], header="iris replay\nseed 42")
    assert written.count == len(ROUND_TRIP) + 1
    assert Path(written) == path
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# iris replay\n# seed 42\n")
    assert text.endswith("\n")
    back = list(ReplayFile(path))
    assert back[:-1] == ROUND_TRIP
    assert back[-1] == ReplayRequest("GET", legacy)
    assert back[-1].path.startswith("/js/predict?json=")
    assert [r.line_number for r in back] == list(range(3, 3 + len(back)))


def test_header_value_with_a_space_round_trips_or_is_refused(tmp_path):
    request = ReplayRequest(
        "POST", "/v2/models/iris/infer", (("Authorization", "Bearer abc"),), V2_BODY.encode()
    )
    try:
        write_replay(tmp_path / "r.txt", [request])
    except ValueError:
        return
    assert list(ReplayFile(tmp_path / "r.txt")) == [request]


def test_multi_line_body_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "r.txt"
    with pytest.raises(ValueError, match="request 2 spans several lines"):
        write_replay(path, [ReplayRequest("GET", "/a"), ReplayRequest("POST", "/b", (), b"{\n}")])
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    path = tmp_path / "r.txt"

    def requests():
        yield ReplayRequest("GET", "/a")
        yield ReplayRequest("GET", "/b")
        raise RuntimeError("generator broke mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        write_replay(path, requests())
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_content(tmp_path):
    path = write(tmp_path, "/old-1\n/old-2\n", "r.txt")

    def requests():
        for i in range(100_000):
            yield ReplayRequest("POST", f"/new/{i}", (), json.dumps({"i": i}).encode())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_replay(path, requests())
    assert path.read_text() == "/old-1\n/old-2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


def test_successful_write_replaces_the_old_content(tmp_path):
    path = write(tmp_path, "/old\n", "r.txt")
    write_replay(path, ["/new-1", ReplayRequest("GET", "/new-2")])
    assert path.read_text() == "/new-1\n/new-2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


def test_replay_file_is_path_like(tmp_path):
    path = write(tmp_path, "/a\n")
    replay = ReplayFile(str(path))
    assert isinstance(replay.path, Path)
    assert Path(replay) == path
    assert str(replay) == str(path)
    assert replay.size_bytes() == 3


# --- gzip-compressed replays -----------------------------------------------------------------
def _gzipped(tmp_path: Path, lines: list[str], name: str = "r.replay.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    return path


def test_a_gzip_replay_is_read_as_its_lines_whatever_its_name(tmp_path):
    lines = [v2_request("iris", [[float(i), 2.0, 3.0, 4.0]]).to_line() for i in range(50)]
    plain = write_replay(tmp_path / "plain.replay", lines)
    for name in ("r.replay.gz", "no-suffix.replay"):  # known by its first bytes
        packed = ReplayFile(_gzipped(tmp_path, lines, name))
        assert [r.body for r in packed] == [r.body for r in plain]
        assert packed.size_bytes() == plain.size_bytes()  # un-gzipped, from the trailer
        assert packed.read_bytes() == plain.path.read_bytes()
        assert sum(1 for _ in itertools.islice(packed.requests(reuse=True), 120)) == 120


def test_a_damaged_gzip_replay_names_the_file_and_where_it_broke(tmp_path):
    lines = [f"/v2/models/iris/ready?n={i}" for i in range(5000)]
    path = _gzipped(tmp_path, lines)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short, as by a failed copy
    with pytest.raises(ReplayError, match=rf"{path.name}:\d+: the gzip stream is damaged"):
        list(ReplayFile(path))
    path.write_bytes(data[:2] + b"\x00" * 40)  # the magic, then no gzip at all
    with pytest.raises(ReplayError, match="the gzip stream is damaged"):
        list(ReplayFile(path))


def test_a_tiny_or_multi_part_gzip_replay_has_its_true_size(tmp_path):
    two = tmp_path / "two.replay.gz"
    two.write_bytes(gzip.compress(b"/a\n" * 7) + gzip.compress(b"/bb\n" * 1000))  # cat a.gz b.gz
    replay = ReplayFile(two)
    assert replay.size_bytes() == 21 + 4000 and len(list(replay)) == 1007
    assert 100 < replay.size_bytes(up_to=100) <= 4021  # stops reading once past the limit
    tiny = tmp_path / "tiny.replay"
    tiny.write_bytes(b"\x1f\x8b")  # the magic and nothing else
    with pytest.raises(ReplayError, match=r"tiny\.replay:0: the gzip stream is damaged"):
        ReplayFile(tiny).size_bytes()


def test_replay_check_reads_a_gzip_replay_as_a_run_does(tmp_path, capsys):
    from pytest_seldon_load.cli import main

    path = _gzipped(tmp_path, ["/v2/models/iris/ready"] * 3 + ["FETCH /x"])
    assert main(["replay", "check", str(path)]) == 1  # one bad line, named by its number
    printed = capsys.readouterr()
    assert "3" in printed.out and "line 4" in printed.out + printed.err
    broken = tmp_path / "broken.replay.gz"
    broken.write_bytes(path.read_bytes()[:20])
    assert main(["replay", "check", str(broken)]) == 2
    assert "the gzip stream is damaged" in capsys.readouterr().err
