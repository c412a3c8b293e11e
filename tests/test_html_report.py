"""The HTML report of a run as a reader needs it: its settings, its errors with what the
server said (masked), the test's failure, the generator's lag, and a timeline that does not
end on a partial second. Runs are real (a local aiohttp server) wherever the behaviour comes
from the engine; the page is read as text here and in a browser in test_html_browser.py.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from aiohttp import web
from servers import V2_MODEL_ERROR, V2_OK, ServerThread, delayed, json_response

from pytest_seldon_load import EngineSettings, LoadResult, SeldonEndpoint, run_load, write_replay
from pytest_seldon_load.error_samples import (
    BODY_CHARS,
    KINDS_SAMPLED,
    OFFERS_PER_KIND,
    SAMPLES_PER_KIND,
    ErrorSamples,
)
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.report.html import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    latency_chart,
    render_report,
    throughput_chart,
)
from pytest_seldon_load.report.timeline import split_timeline, whole_seconds
from pytest_seldon_load.result import Window

pytest_plugins = ["pytester"]

SECRET = "tok-SECRET-9f8e7d"


class ThreeWays:
    """Answers in turn: a success, a 503 echoing a token (numbered, so bodies differ), and a
    200 carrying a V2 model error."""

    def __init__(self) -> None:
        self.seen = 0

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen += 1
        turn = self.seen % 3
        if turn == 1:
            return json_response(V2_OK)
        if turn == 2:
            body = json.dumps({"error": f"model not ready #{self.seen}", "token": SECRET})
            return json_response(body.encode(), 503)
        return json_response(V2_MODEL_ERROR)


@pytest.fixture
def replay(tmp_path):
    return write_replay(tmp_path / "v2.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])])


@pytest.fixture(scope="module")
def errors_run(tmp_path_factory) -> tuple[LoadResult, float, float]:
    replay = write_replay(
        tmp_path_factory.mktemp("replay") / "v2.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])]
    )
    before = time.time()
    with ServerThread(ThreeWays()) as server:
        result = run_load(
            SeldonEndpoint(server.url),
            replay,
            rate=60,
            duration="1.5s",
            warmup="0.5s",
            seed=7,
            settings=EngineSettings(connections=8),
        )
    return result, before, time.time()


def test_a_run_keeps_a_few_masked_bodies_of_each_error_kind(errors_run):
    result, before, after = errors_run
    assert set(result.error_kinds) == {"http_503", "model_error"}
    samples = result.error_samples.by_kind
    assert set(samples) == set(result.error_kinds)
    assert len(samples["http_503"]) == SAMPLES_PER_KIND  # bodies differ: bounded all the same
    for sample in samples["http_503"]:
        assert sample.status == 503
        assert "model not ready #" in sample.body
        assert SECRET not in sample.body and '"token": "***"' in sample.body
    assert len(samples["model_error"]) == 1  # the same body every time: kept once
    assert samples["model_error"][0].status == 200
    # the run's settings travel with it
    assert result.protocol == "v2"
    assert result.warmup == 0.5
    assert result.connections == 8
    assert result.seed == 7
    assert before < result.started_at < after


def test_error_samples_and_settings_survive_json_and_old_files_still_load(errors_run):
    result = errors_run[0]
    again = LoadResult.from_json(result.to_json())
    assert again.error_samples == result.error_samples
    assert (again.protocol, again.warmup, again.connections, again.started_at) == (
        result.protocol,
        result.warmup,
        result.connections,
        result.started_at,
    )
    old = result.to_dict()
    for name in ("error_samples", "protocol", "warmup", "connections"):
        del old[name]
    older = LoadResult.from_dict(old)
    assert not older.error_samples and older.protocol == "" and older.connections == 0
    assert older.errors == result.errors


@pytest.mark.parametrize(
    ("samples", "named"),
    [
        ([], "error_samples: expected an object"),
        ({"http_500": {}}, "error_samples.http_500: expected a list"),
        ({"http_500": [{"status": "500", "body": ""}]}, r"error_samples.http_500\[0\].status"),
        ({"http_500": [{"status": 500, "body": 5}]}, r"error_samples.http_500\[0\].body"),
    ],
)
def test_damaged_error_samples_are_refused_naming_the_field(errors_run, samples, named):
    data = errors_run[0].to_dict() | {"error_samples": samples}
    with pytest.raises(ValueError, match=f"not a load result: {named}"):
        LoadResult.from_dict(data)


def test_samples_read_from_a_file_keep_the_live_bounds_and_masking(errors_run):
    data = errors_run[0].to_dict()
    data["error_samples"] = {
        "http_500": [{"status": 500, "body": f"x{i} password={SECRET} " * 200} for i in range(9)]
    }
    kept = LoadResult.from_dict(data).error_samples.by_kind["http_500"]
    assert len(kept) == SAMPLES_PER_KIND
    assert all(len(s.body) <= BODY_CHARS and SECRET not in s.body for s in kept)


def test_sampling_is_bounded_in_kinds_and_reads_any_bytes():
    samples = ErrorSamples()
    for index in range(KINDS_SAMPLED + 5):
        samples.offer(f"kind{index}", 500, b"\xff\xfe not utf-8 \x00")
    assert len(samples.by_kind) == KINDS_SAMPLED
    assert "not utf-8" in samples.by_kind["kind0"][0].body
    merged = ErrorSamples()
    merged.add(samples)
    merged.add(samples)
    assert merged == samples  # equal samples are not kept twice


def test_a_body_repeated_forever_is_looked_at_a_bounded_number_of_times():
    samples = ErrorSamples()
    for _ in range(OFFERS_PER_KIND):
        samples.offer("http_503", 503, b"the same page")
    samples.offer("http_503", 503, b"a different page, too late")
    assert [s.body for s in samples.by_kind["http_503"]] == ["the same page"]
    samples.offer("http_500", 500, b"another kind has its own count")
    assert samples.by_kind["http_500"][0].body == "another kind has its own count"


# --- the page --------------------------------------------------------------------------------


def _entry(result: LoadResult, **extra) -> dict:
    key = "tests/test_iris.py::test_errors"
    return result.to_dict() | {"nodeid": key, "key": key, "verdict": "FAIL"} | extra


def test_the_page_shows_settings_errors_bodies_lag_and_the_failure(errors_run):
    result = errors_run[0]
    failure = f"BudgetExceeded: error rate 66% is over its budget\nAuthorization: Bearer {SECRET}"
    page = render_report([_entry(result, failure=failure)])
    assert SECRET not in page
    settings = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", page))
    assert settings["protocol"] == "v2"
    assert settings["arrival"] == result.arrival
    assert settings["rate"] == "60/s"
    assert settings["warm-up"] == "0.5s"
    assert settings["connections"] == "8"
    assert settings["seed"] == "7"
    assert settings["engine"] == "embedded"
    assert settings["processes"] == "1"
    assert settings["target"].startswith("http://127.0.0.1:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", settings["started"])
    assert re.fullmatch(r"\d+ late sends, worst \S+", settings["lag"])
    # the error table: every status code, every kind with its count and its bodies
    codes = re.search(r'<table class="status-codes">(.*?)</table>', page, re.DOTALL)
    assert codes is not None
    assert f'<tr class="bad"><td>503</td><td>{result.status_codes[503]}</td>' in codes.group(1)
    assert f'<tr class="ok"><td>200</td><td>{result.status_codes[200]}</td>' in codes.group(1)
    kinds = re.search(r'<table class="error-kinds">(.*?)</table>', page, re.DOTALL)
    assert kinds is not None
    assert f"<td>http_503</td><td>{result.error_kinds['http_503']}</td>" in kinds.group(1)
    assert kinds.group(1).count("<span>HTTP 503</span>") == SAMPLES_PER_KIND
    assert "model not ready #" in kinds.group(1) and "&quot;token&quot;: &quot;***&quot;" in page
    assert "the test failed" in page and "error rate 66% is over its budget" in page
    assert "Authorization: ***" in page


def test_a_page_of_an_older_result_says_what_it_does_not_know(errors_run):
    data = errors_run[0].to_dict()
    for name in ("error_samples", "protocol", "warmup", "connections", "started_at"):
        del data[name]
    page = render_report([_entry(LoadResult.from_dict(data))])
    settings = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", page))
    assert settings["protocol"] == settings["connections"] == settings["started"] == "unknown"
    assert "no answer kept" in page  # the kinds are listed, without bodies


def test_a_run_without_errors_has_no_error_table(replay):
    with ServerThread(delayed(0.001)) as server:
        result = run_load(SeldonEndpoint(server.url), replay, rate=30, duration=1)
    assert result.errors == 0
    page = render_report([_entry(result, verdict="pass")])
    assert '<div class="errors">' not in page and '<table class="status-codes">' not in page


# --- the timeline: no partial last second ----------------------------------------------------


def _run_with_windows(duration: float, oks: list[int]) -> dict:
    windows = [Window(second, sent=n, ok=n) for second, n in enumerate(oks)]
    result = LoadResult(target_rate=100, duration=duration, windows=windows)
    result.ok = result.requests = result.scheduled = sum(oks)
    return _entry(result)


def _series(chart, name: str) -> list[float]:
    return next(s.ys for s in chart.series if s.name == name)


@pytest.mark.parametrize(
    ("duration", "oks", "whole", "tail_ok"),
    [
        (3.0, [100, 100, 100, 6], 3, 6),  # answers back after the end
        (2.5, [100, 100, 50, 4], 2, 54),  # half a second of sends, then the answers after it
        (0.5, [50, 2], 0, None),  # shorter than a second: nothing whole to cut at
    ],
)
def test_the_timeline_ends_on_its_last_whole_second(duration, oks, whole, tail_ok):
    run = _run_with_windows(duration, oks)
    assert whole_seconds(duration) == whole
    timeline = split_timeline(run)
    if tail_ok is None:
        assert timeline.tail is None and len(timeline.seconds) == len(oks)
        return
    assert [w["second"] for w in timeline.seconds] == list(range(whole))
    assert timeline.tail is not None and timeline.tail.ok == tail_ok
    assert sum(w["ok"] for w in timeline.seconds) + timeline.tail.ok == sum(oks)
    chart = throughput_chart(run, None)
    assert _series(chart, "ok") == [100.0] * whole  # the last point does not drop
    assert chart.markers and chart.markers[0][:3] == (float(whole), float(tail_ok), "tail")
    assert "shown apart" in chart.render()


def test_a_real_run_ends_on_a_full_second_and_shows_its_late_answers_apart(replay):
    with ServerThread(delayed(0.06)) as server:
        result = run_load(SeldonEndpoint(server.url), replay, rate=50, duration=2)
    assert result.ok == 100
    run = _entry(result)
    assert [w["second"] for w in result.timeline][-1] == 2  # answers came back after the end
    timeline = split_timeline(run)
    assert [w["second"] for w in timeline.seconds] == [0, 1]
    assert timeline.tail is not None and timeline.tail.ok >= 1
    assert sum(w["ok"] for w in timeline.seconds) + timeline.tail.ok == result.ok
    chart = throughput_chart(run, None)
    assert _series(chart, "ok")[-1] >= 40  # a whole second of answers, not a few stragglers
    latency = latency_chart(run, None)
    assert latency.markers and latency.markers[0][2] == "tail"
    assert latency.markers[0][1] >= 50.0  # the late answers' p99, in ms


def test_error_bars_stay_inside_the_plot_area():
    windows = [Window(second, sent=100, ok=60, errors=40) for second in range(5)]
    result = LoadResult(target_rate=100, duration=5.0, windows=windows)
    svg = throughput_chart(_entry(result), None).render()
    bars = re.findall(
        r'<rect class="bar errors" x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" '
        r'height="([0-9.]+)"',
        svg,
    )
    assert len(bars) == 5
    for x, y, width, height in ((float(v) for v in bar) for bar in bars):
        assert x >= LEFT and x + width <= WIDTH - RIGHT + 0.05
        assert y >= TOP and y + height <= HEIGHT - BOTTOM + 0.05


# --- through the plugin: the failure text reaches the page -----------------------------------

FAILING = """
import pytest

@pytest.mark.load(rate=30, duration=1, budgets={"p99": "1ms"}, lag_threshold_ms=100)
def test_too_slow(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]))
"""


def test_a_failed_test_s_message_is_in_its_section(pytester, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_slow=FAILING)
    with ServerThread(delayed(0.01)) as server:
        outcome = pytester.runpytest(
            "-p", "no:cacheprovider", f"--seldon-url={server.url}", "--load-html=report.html"
        )
    outcome.assert_outcomes(failed=1)
    page = (pytester.path / "report.html").read_text()
    failure = re.search(r'<details class="failure" open>(.*?)</details>', page, re.DOTALL)
    assert failure is not None
    assert "BudgetExceeded: marker budget failed:" in failure.group(1)
    assert "p99 latency" in failure.group(1) and "is over its budget of 1.00ms" in failure.group(1)


def test_the_baseline_overlay_ends_on_its_own_last_whole_second():
    run = _run_with_windows(3.0, [100, 100, 100, 6])
    baseline = LoadResult(
        target_rate=100,
        duration=2.5,
        windows=[Window(second, sent=n, ok=n) for second, n in enumerate([90, 90, 45, 3])],
    )
    chart = throughput_chart(run, baseline)
    assert _series(chart, "baseline ok") == [90.0, 90.0]
    assert _series(chart, "ok") == [100.0, 100.0, 100.0]


def test_grpc_status_codes_read_by_name_and_a_clean_grpc_run_shows_no_error_table():
    from pytest_seldon_load.report.run_details import errors_html

    clean = {"protocol": "grpc", "status_codes": {"0": 40}, "error_kinds": {}, "requests": 40}
    assert errors_html(clean) == ""
    failing = {
        "protocol": "grpc",
        "status_codes": {"0": 30, "5": 10},
        "error_kinds": {"grpc_NOT_FOUND": 10},
        "requests": 40,
    }
    page = errors_html(failing)
    assert '<tr class="ok"><td>0 OK</td><td>30</td>' in page
    assert '<tr class="bad"><td>5 NOT_FOUND</td><td>10</td>' in page
    http = {"protocol": "v2", "status_codes": {"200": 30, "503": 10}, "requests": 40}
    assert '<tr class="bad"><td>503</td>' in errors_html(http)
    assert errors_html({"status_codes": {"200": 5}, "requests": 5}) == ""  # older files: HTTP
