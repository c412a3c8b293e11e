"""The fault matrix: each way a server or the network misbehaves, against a real loopback
server, measured correctly (counts, error kinds, status codes, plausible latencies) and
ending on time.

Cases covered elsewhere, not repeated here:

- 500 and 503 storms: test_engine.py::test_server_errors_are_counted_by_status
- a 200 with a Seldon error body: test_engine.py::test_v2_error_body_with_200_is_a_model_error,
  test_engine.py::test_v1_status_in_a_200_body_is_judged
- refused connections: test_engine.py::test_connection_refused_is_counted_not_raised
- a server hanging up without an answer:
  test_engine.py::test_a_server_hanging_up_is_counted_as_disconnected
- the same faults at the pool's level (exact bytes on the wire): test_http_pool.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from servers import (
    V1_FAILURE,
    V2_MODEL_ERROR,
    V2_OK,
    Counting,
    HangUpOnReuse,
    ServerThread,
    chunked,
    cut_short,
    endless,
    fixed,
    large,
    never_answers,
    reset_mid_answer,
    trickle,
)

from pytest_seldon_load import (
    EngineSettings,
    LoadResult,
    RunInterrupted,
    SeldonEndpoint,
    run_load,
    write_replay,
)
from pytest_seldon_load.assertions import describe_run
from pytest_seldon_load.protocols import v1_request, v2_request


@pytest.fixture
def v2_replay(tmp_path):
    return write_replay(tmp_path / "v2.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])])


@pytest.fixture
def v1_replay(tmp_path):
    return write_replay(tmp_path / "v1.txt", [v1_request([[5.1, 3.5, 1.4, 0.2]])])


def measure(url: str, replay, *, protocol: str = "v2", **kwargs) -> tuple[LoadResult, float]:
    """Run the load; return the result and the wall time it took."""
    began = time.monotonic()
    result = run_load(SeldonEndpoint(url, protocol=protocol), replay, **kwargs)
    return result, time.monotonic() - began


def assert_accounted(result: LoadResult) -> None:
    """Every scheduled request is counted once: sent or unsent, ok or an error of a kind."""
    assert result.requests + result.unsent == result.scheduled
    assert result.ok + result.errors == result.scheduled
    assert result.latency.get_total_count() == result.scheduled
    assert result.service.get_total_count() == result.requests
    assert sum(result.error_kinds.values()) == result.errors


def test_a_server_that_never_answers_times_out_each_request_on_time(v2_replay):
    with ServerThread(never_answers) as server:
        result, elapsed = measure(
            server.url, v2_replay, rate=10, duration=1, settings=EngineSettings(timeout=0.3)
        )
    assert elapsed < 1 + 0.3 + 2
    assert_accounted(result)
    assert result.requests == 10
    assert result.error_kinds == {"timeout": 10}
    assert result.status_codes == {}
    assert result.latency.get_min_value() >= 290_000
    assert result.max < 1000.0


def test_a_reset_mid_answer_is_a_reset_and_never_a_success(v2_replay):
    with ServerThread(reset_mid_answer) as server:
        result, elapsed = measure(
            server.url, v2_replay, rate=10, duration=1, settings=EngineSettings(timeout=2.0)
        )
    assert elapsed < 1 + 3
    assert_accounted(result)
    assert result.requests == 10
    assert result.ok == 0
    assert result.error_kinds == {"connection_reset": 10}
    assert result.status_codes == {}
    assert result.retries == 0  # part of an answer came back: never sent twice
    assert 15.0 <= result.service_percentile(50) < 1000.0


def test_a_server_closing_after_every_answer_loses_nothing(v2_replay):
    handler = Counting(close=True)
    with ServerThread(handler) as server:
        result, _ = measure(server.url, v2_replay, rate=50, duration=1)
    assert_accounted(result)
    assert result.ok == result.requests == handler.seen == 50
    assert result.status_codes == {200: 50}
    assert result.retries == 0


def test_idle_connections_closed_by_the_server_are_not_its_errors(v2_replay):
    # Closed after 20 ms idle, reused after ~25 ms on average: some sends race the close.
    handler = Counting()
    with ServerThread(handler, keepalive_timeout=0.02) as server:
        result, _ = measure(
            server.url,
            v2_replay,
            rate=40,
            duration=3,
            arrival="poisson",
            seed=1,
            settings=EngineSettings(connections=8),
        )
    assert_accounted(result)
    assert result.error_kinds == {}
    assert result.ok == result.requests == handler.seen
    assert result.requests >= 100


def test_a_request_meeting_a_stale_connection_is_sent_once_more_and_counted(v2_replay):
    handler = HangUpOnReuse()
    with ServerThread(handler) as server:
        result, _ = measure(
            server.url, v2_replay, rate=20, duration=1, settings=EngineSettings(connections=1)
        )
    assert_accounted(result)
    assert result.ok == result.requests == 20
    assert result.error_kinds == {}
    assert result.retries == handler.hung_up == 19
    assert LoadResult.from_json(result.to_json()).retries == 19
    assert LoadResult.merge([result, result]).retries == 38


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_short_body_is_a_disconnect_without_a_status(v2_replay, framing):
    with ServerThread(cut_short(chunked=framing == "chunked")) as server:
        result, elapsed = measure(
            server.url, v2_replay, rate=10, duration=1, settings=EngineSettings(timeout=2.0)
        )
    assert elapsed < 1 + 3
    assert_accounted(result)
    assert result.requests == 10
    assert result.error_kinds == {"server_disconnected": 10}
    assert result.status_codes == {}


@pytest.mark.parametrize(
    ("protocol", "body", "pieces", "kinds"),
    [
        ("v2", V2_OK, 7, {}),
        ("v2", V2_MODEL_ERROR, 3, {"model_error": 20}),
        ("v1", V1_FAILURE, 4, {"seldon_failure": 20}),
    ],
    ids=["v2-ok", "v2-model-error", "v1-failure"],
)
def test_chunked_answers_are_reassembled_and_judged(
    v2_replay, v1_replay, protocol, body, pieces, kinds
):
    replay = v2_replay if protocol == "v2" else v1_replay
    with ServerThread(chunked(body, pieces)) as server:
        result, _ = measure(server.url, replay, protocol=protocol, rate=20, duration=1)
    assert_accounted(result)
    assert result.requests == 20
    assert result.status_codes == {200: 20}
    assert result.error_kinds == kinds
    assert result.ok == 20 - sum(kinds.values())


def test_a_10_mb_answer_is_received_whole_and_counted_once(v2_replay):
    with ServerThread(large(10 * 1024 * 1024)) as server:
        result, elapsed = measure(server.url, v2_replay, rate=4, duration=1)
    assert elapsed < 1 + 5
    assert_accounted(result)
    assert result.ok == result.requests == 4
    assert result.status_codes == {200: 4}
    assert result.service_percentile(50) < 2000.0


def test_an_answer_over_the_maximum_size_is_its_own_error(v2_replay):
    settings = EngineSettings(max_answer_bytes=1024 * 1024, timeout=5.0)
    with ServerThread(large(10 * 1024 * 1024)) as server:
        result, elapsed = measure(server.url, v2_replay, rate=4, duration=1, settings=settings)
    assert elapsed < 1 + 5
    assert_accounted(result)
    assert result.requests == 4
    assert result.error_kinds == {"answer_too_large": 4}
    assert result.status_codes == {200: 4}


def test_an_endless_answer_ends_at_the_maximum_size_not_at_the_timeout(v2_replay):
    settings = EngineSettings(max_answer_bytes=4 * 1024 * 1024, timeout=5.0)
    with ServerThread(endless) as server:
        result, elapsed = measure(server.url, v2_replay, rate=4, duration=1, settings=settings)
    assert elapsed < 1 + 4  # the timeout alone would take 1 + 5 s
    assert_accounted(result)
    assert result.requests == 4
    assert result.error_kinds == {"answer_too_large": 4}
    assert result.max < 4000.0


@pytest.mark.parametrize(
    ("timeout", "kinds", "ok"),
    [(3.0, {}, 3), (0.3, {"timeout": 3}, 0)],
    ids=["within-timeout", "beyond-timeout"],
)
def test_a_body_of_one_byte_per_100ms_is_timed_to_its_last_byte(v2_replay, timeout, kinds, ok):
    body = b'{"ok":1}'  # 8 bytes: 0.7 s from the first byte to the last
    with ServerThread(trickle(body, 0.1)) as server:
        result, elapsed = measure(
            server.url, v2_replay, rate=3, duration=1, settings=EngineSettings(timeout=timeout)
        )
    assert elapsed < 1 + timeout + 2
    assert_accounted(result)
    assert result.requests == 3
    assert result.error_kinds == kinds
    assert result.ok == ok
    if ok:
        assert result.status_codes == {200: 3}
        assert result.service.get_min_value() >= 690_000
        assert result.max < 2000.0
    else:
        assert result.latency.get_min_value() >= 290_000
        assert result.max < 1000.0


@pytest.mark.parametrize("status", [429, 504])
def test_a_storm_of_one_status_is_counted_by_that_status(v2_replay, status):
    with ServerThread(fixed(status, b'{"error":"slow down"}')) as server:
        result, _ = measure(server.url, v2_replay, rate=40, duration=1)
    assert_accounted(result)
    assert result.requests == 40
    assert result.error_kinds == {f"http_{status}": 40}
    assert result.status_codes == {status: 40}
    assert result.error_rate == 1.0
    assert result.p99 < 1000.0


def test_a_name_that_does_not_resolve_is_a_dns_error(v2_replay):
    result, elapsed = measure(
        "http://no-such-host.invalid:8080",
        v2_replay,
        rate=5,
        duration=1,
        settings=EngineSettings(timeout=5.0),
    )
    assert elapsed < 1 + 6
    assert_accounted(result)
    assert result.requests == 5
    assert result.error_kinds == {"dns_error": 5}
    assert result.status_codes == {}


def test_https_against_a_plain_http_port_is_a_tls_error(v2_replay):
    handler = Counting()
    with ServerThread(handler) as server:
        url = server.url.replace("http://", "https://")
        result, elapsed = measure(
            url, v2_replay, rate=10, duration=1, settings=EngineSettings(timeout=2.0)
        )
    assert elapsed < 1 + 3
    assert_accounted(result)
    assert result.requests == 10
    assert result.error_kinds == {"tls_error": 10}
    assert result.status_codes == {}
    assert handler.seen == 0


def _stop_after(seconds: float):
    @contextlib.asynccontextmanager
    async def companion(run):
        asyncio.get_running_loop().call_later(seconds, run.stop)
        yield

    return companion


def test_an_interrupt_during_a_stall_keeps_the_stalled_requests(v2_replay):
    with ServerThread(never_answers) as server:
        began = time.monotonic()
        with pytest.raises(RunInterrupted) as stopped:
            run_load(
                SeldonEndpoint(server.url),
                v2_replay,
                rate=40,
                duration=30,
                companion=_stop_after(1.0),
            )
        elapsed = time.monotonic() - began
    result = stopped.value.result
    assert elapsed < 5
    assert result.interrupted
    assert 30 <= result.requests <= 50
    assert result.ok == 0
    assert result.error_kinds == {"interrupted_in_flight": result.requests}
    assert result.status_codes == {}
    # Each waited from its send to the interrupt: ~1 s for the first, ~0 for the last.
    assert 900.0 <= result.max <= 2000.0
    assert 300.0 <= result.p50 <= 800.0
    assert result.service_percentile(99) >= 800.0
    described = describe_run(result)
    assert f"interrupted_in_flight ×{result.requests}" in described
    assert "errors: none" not in described
    saved = json.loads(result.to_json())
    assert saved["error_kinds"] == {"interrupted_in_flight": result.requests}


def test_an_interrupt_with_nothing_stalled_counts_only_what_was_in_flight(v2_replay):
    handler = Counting()
    with ServerThread(handler) as server, pytest.raises(RunInterrupted) as stopped:
        run_load(
            SeldonEndpoint(server.url),
            v2_replay,
            rate=50,
            duration=30,
            companion=_stop_after(1.0),
        )
    result = stopped.value.result
    assert 40 <= result.requests <= 60
    assert result.ok >= result.requests - 2
    assert set(result.error_kinds) <= {"interrupted_in_flight"}
    assert result.ok + result.errors == result.requests


@pytest.mark.parametrize("size", [0, -1])
def test_a_maximum_answer_size_below_one_byte_is_refused(size):
    with pytest.raises(ValueError, match="max_answer_bytes: must be at least 1"):
        EngineSettings(max_answer_bytes=size)
