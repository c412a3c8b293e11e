"""The embedded engine's Iago-compatible admin port, read over HTTP while a real run goes on
against a server on 127.0.0.1: Ostrich's shape and names, periods, text, graphs, shutdown."""

from __future__ import annotations

import random
import socket
import threading
import time
from concurrent.futures import Future

import pytest
import requests
from servers import EveryNthFails, ServerThread

from pytest_seldon_load import RunInterrupted, SeldonEndpoint, run_load
from pytest_seldon_load.admin_port import AdminPort, metric_summary
from pytest_seldon_load.hdr import difference as histogram_difference
from pytest_seldon_load.hdr import new_histogram
from pytest_seldon_load.iago.scraper import StatsScraper
from pytest_seldon_load.iago.stats import OstrichStats, result_from_stats
from pytest_seldon_load.replay import write_replay

PERCENTILE_KEYS = {"p50", "p90", "p95", "p99", "p999", "p9999"}


@pytest.fixture
def replay(tmp_path):
    return write_replay(
        tmp_path / "r.replay",
        ['POST /v2/models/iris/infer Content-Type:application/json {"inputs":[]}'],
    )


def in_background(function, *args, **kwargs) -> Future:
    future: Future = Future()

    def target() -> None:
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as exc:  # handed to the test through the future
            future.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return future


def wait_for(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.02)


def test_a_live_run_serves_ostrich_stats_periods_text_and_graphs(replay):
    every_tenth = EveryNthFails(10)
    admin = AdminPort(0)
    with ServerThread(every_tenth) as server:
        running = in_background(
            run_load,
            SeldonEndpoint(server.url),
            replay,
            rate=50,
            duration=2.6,
            warmup=0.6,
            companion=admin,
        )
        wait_for(lambda: admin.url, what="the admin port listening")
        url = admin.url
        during_warmup = requests.get(f"{url}/stats.json", timeout=5).json()
        assert during_warmup["labels"]["seldon_load/state"] == "warm-up"
        assert during_warmup["metrics"]["client/request_latency_ms"] == {"count": 0}
        time.sleep(0.8)
        first_period = requests.get(f"{url}/stats.json?period=1", timeout=5).json()
        time.sleep(1.2)
        stats = requests.get(f"{url}/stats.json", timeout=5).json()
        period = requests.get(f"{url}/stats.json?period=1", timeout=5).json()
        text = requests.get(f"{url}/stats.txt", timeout=5).text
        graph = requests.get(f"{url}/graph/?g=metric:client/request_latency_ms", timeout=5)
        data = requests.get(f"{url}/graph_data/counter:client/requests", timeout=5).json()
        ping = requests.get(f"{url}/ping.json", timeout=5).json()
        unknown = requests.get(f"{url}/graph/?g=metric:nothing", timeout=5)
        bad_period = requests.get(f"{url}/stats.json?period=soon", timeout=5)
        scraped = StatsScraper(url).stats()
        result = running.result(timeout=20)

    counters, metrics = stats["counters"], stats["metrics"]
    assert set(stats) == {"counters", "gauges", "labels", "metrics"}
    assert counters["client/requests"] == counters["client/success"] + counters["client/failures"]
    assert counters["client/failures"] == counters["client/failures/http_500"] > 0
    assert counters["200"] == counters["client/success"] and counters["500"] > 0
    assert counters["requests_sent"] >= counters["client/requests"] > 40
    assert stats["gauges"]["client/pending"] >= 0
    assert 0 < stats["gauges"]["seldon_load/busy_fraction"] < 1  # the engine thread, live
    assert stats["labels"]["seldon_load/latency"] == "corrected"
    assert stats["labels"]["seldon_load/state"] == "running"
    latency = metrics["client/request_latency_ms"]
    assert set(latency) >= PERCENTILE_KEYS
    assert latency["count"] == counters["client/requests"]
    assert latency["minimum"] <= latency["p50"] <= latency["p99"] <= latency["maximum"]
    assert metrics["client/service_latency_ms"]["count"] == latency["count"]
    # The last complete second, not everything so far.
    assert first_period["labels"]["seldon_load/period_complete"] == "false"
    assert period["labels"]["seldon_load/period_complete"] == "true"
    assert period["labels"]["seldon_load/period_s"] == "1"
    assert 0 < period["counters"]["client/requests"] < counters["client/requests"]
    assert bad_period.status_code == 400
    assert "counters:\n" in text and "\nmetrics:\n" in text
    assert "  client/request_latency_ms: (average=" in text and "p9999=" in text
    assert graph.status_code == 200 and "<svg" in graph.text and "<polyline" in graph.text
    assert "http://" not in graph.text.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", ""
    ), "the graph loads nothing from elsewhere"
    assert data["columns"] == ["time", "requests"] and len(data["rows"]) >= 2
    assert ping == {"response": "pong"} and unknown.status_code == 404
    assert scraped.by_seldon_load and scraped.corrected
    # The admin port told the truth: the run ended with at least what it showed.
    assert result.requests >= counters["client/requests"]
    assert result.status_codes[500] >= counters["500"]


def test_shutdown_json_ends_the_run_and_the_result_is_kept(replay):
    admin = AdminPort(0)
    with ServerThread(EveryNthFails(1000)) as server:
        running = in_background(
            run_load, SeldonEndpoint(server.url), replay, rate=40, duration=30, companion=admin
        )
        wait_for(lambda: admin.url, what="the admin port listening")
        time.sleep(0.5)
        assert StatsScraper(admin.url).shutdown()
        started = time.monotonic()
        with pytest.raises(RunInterrupted) as interrupted:
            running.result(timeout=15)
    assert time.monotonic() - started < 5
    assert admin.shutdown_requested
    assert interrupted.value.result.interrupted and interrupted.value.result.requests > 5
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{admin.url}/ping.json", timeout=2)


def test_the_scraper_turns_our_stats_into_the_same_counts(replay):
    admin = AdminPort(0)
    with ServerThread(EveryNthFails(4)) as server:
        running = in_background(
            run_load, SeldonEndpoint(server.url), replay, rate=40, duration=1.5, companion=admin
        )
        wait_for(lambda: admin.url, what="the admin port listening")
        scraper = StatsScraper(admin.url)
        wait_for(lambda: scraper.stats().requests >= 40, what="40 answers")
        stats = scraper.stats()
        running.result(timeout=20)
    result = result_from_stats(
        stats, baseline=None, duration=1.0, target_rate=40, polls=[], warmup=0.0
    )
    assert result.requests == stats.counters["client/requests"]
    assert result.errors == stats.counters["client/failures"] > 0, "a 500 is counted once"
    assert result.error_kinds == {"http_500": result.errors}
    assert result.corrected and result.p99 == stats.metrics["client/request_latency_ms"]["p99"]


def test_a_busy_admin_port_is_an_error_naming_the_option(replay):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with ServerThread(EveryNthFails(1000)) as server, pytest.raises(OSError) as failure:
            run_load(
                SeldonEndpoint(server.url), replay, rate=10, duration=1, companion=AdminPort(port)
            )
    assert f"--admin-port {port}: cannot listen on 127.0.0.1:{port}" in str(failure.value)


def test_interval_histograms_and_summaries_are_exact():
    rng = random.Random(7)
    before, later, only_later = new_histogram(), new_histogram(), new_histogram()
    for _ in range(500):
        value = rng.randint(100, 90_000)
        before.record_value(value)
        later.record_value(value)
    for _ in range(300):
        value = rng.randint(100, 900_000)
        later.record_value(value)
        only_later.record_value(value)
    snapshot = new_histogram()
    snapshot.add(before)
    difference = histogram_difference(later, snapshot)
    assert difference.get_total_count() == 300
    for q in (50, 90, 99, 99.9):
        assert difference.get_value_at_percentile(q) == only_later.get_value_at_percentile(q)
    summary = metric_summary(only_later)
    assert summary["count"] == 300
    assert summary["average"] == pytest.approx(only_later.get_mean_value() / 1000, abs=0.001)
    assert summary["maximum"] == only_later.get_max_value() / 1000
    assert metric_summary(new_histogram()) == {"count": 0}
    assert OstrichStats.parse({"metrics": {"client/request_latency_ms": summary}}).metrics
