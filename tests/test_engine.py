"""The embedded engine against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from servers import (
    V1_FAILURE,
    V1_OK,
    V2_MODEL_ERROR,
    V2_OK,
    ClosedPort,
    EveryNthFails,
    Recording,
    ServerThread,
    StallOnce,
    cut_short,
    delayed,
    fixed,
    hang_up,
)

from pytest_seldon_load import (
    EngineSettings,
    LoadResult,
    Pacer,
    ReplayError,
    ReplayRequest,
    SeldonEndpoint,
    run_load,
    write_replay,
)
from pytest_seldon_load.plan import RunPlan
from pytest_seldon_load.protocols import judge, v1_request, v2_request


@pytest.fixture
def v2_replay(tmp_path):
    return write_replay(tmp_path / "v2.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])])


@pytest.fixture
def v1_replay(tmp_path):
    return write_replay(tmp_path / "v1.txt", [v1_request([[5.1, 3.5, 1.4, 0.2]])])


def assert_accounted(result: LoadResult) -> None:
    """Every scheduled request is in the corrected histogram, exactly once."""
    assert result.latency.get_total_count() == result.scheduled
    assert result.requests + result.unsent == result.scheduled
    assert result.ok + result.errors == result.scheduled
    assert result.service.get_total_count() == result.requests
    assert sum(result.error_kinds.values()) == result.errors
    assert result.error_kinds.get("unsent", 0) == result.unsent


def timed(**kwargs) -> tuple[LoadResult, float]:
    began = time.monotonic()
    result = run_load(**kwargs)
    return result, time.monotonic() - began


def test_fixed_delay_server_is_measured_at_its_delay(v2_replay):
    with ServerThread(delayed(0.020)) as server:
        result = run_load(SeldonEndpoint(server.url), v2_replay, rate=50, duration=2)
    assert_accounted(result)
    assert result.scheduled == result.requests == result.ok == 100
    assert result.errors == 0
    assert result.error_kinds == {}
    assert result.status_codes == {200: 100}
    assert 19.5 <= result.p50 <= 30.0
    assert 19.5 <= result.service_percentile(50) <= 30.0
    assert result.service_percentile(99) <= result.p99 + 0.01
    assert result.latency.get_min_value() >= 19_500


@pytest.mark.parametrize(
    "settings",
    [EngineSettings(max_in_flight=1), EngineSettings(connections=1)],
    ids=["max_in_flight=1", "connections=1"],
)
def test_a_stall_shows_in_corrected_latency_not_in_service_time(v2_replay, settings):
    stall = StallOnce(after=1.0, hold=1.0)
    with ServerThread(stall) as server:
        result = run_load(
            SeldonEndpoint(server.url), v2_replay, rate=100, duration=2.5, settings=settings
        )
    assert stall.stalled
    assert_accounted(result)
    assert result.errors == 0
    assert result.requests == 250
    assert result.p99 >= 500.0
    assert result.p90 >= 300.0
    assert result.max >= 900.0
    assert result.service_percentile(99) < 100.0
    assert result.service_percentile(50) < 20.0
    # (no bound on the whole run's p50: how fast one connection drains the queue after the
    # stall is the machine's speed; the quiet first second shows what was not stalled)
    by_second = {w["second"]: w for w in result.timeline}
    assert by_second[0]["p99"] < 100.0
    assert max(w["p99"] for w in result.timeline if w["p99"] is not None) >= 500.0


@pytest.mark.parametrize(("status", "kind"), [(500, "http_500"), (503, "http_503")])
def test_server_errors_are_counted_by_status(v2_replay, status, kind):
    with ServerThread(fixed(status, b'{"error":"boom"}')) as server:
        result = run_load(SeldonEndpoint(server.url), v2_replay, rate=40, duration=1)
    assert_accounted(result)
    assert result.requests == 40
    assert result.errors == 40
    assert result.ok == 0
    assert result.error_kinds == {kind: 40}
    assert result.status_codes == {status: 40}
    assert result.error_rate == 1.0


def test_v2_error_body_with_200_is_a_model_error(v2_replay):
    with ServerThread(fixed(200, V2_MODEL_ERROR)) as server:
        result = run_load(SeldonEndpoint(server.url), v2_replay, rate=40, duration=1)
    assert_accounted(result)
    assert result.status_codes == {200: 40}
    assert result.error_kinds == {"model_error": 40}
    assert result.ok == 0


@pytest.mark.parametrize(
    ("body", "kinds", "ok"),
    [(V1_FAILURE, {"seldon_failure": 40}, 0), (V1_OK, {}, 40)],
    ids=["failure", "success"],
)
def test_v1_status_in_a_200_body_is_judged(v1_replay, body, kinds, ok):
    with ServerThread(fixed(200, body)) as server:
        endpoint = SeldonEndpoint(server.url, protocol="v1")
        result = run_load(endpoint, v1_replay, rate=40, duration=1)
    assert_accounted(result)
    assert result.status_codes == {200: 40}
    assert result.error_kinds == kinds
    assert result.ok == ok


def test_mixed_server_error_rate(v2_replay):
    handler = EveryNthFails(10)
    with ServerThread(handler) as server:
        result = run_load(SeldonEndpoint(server.url), v2_replay, rate=200, duration=1)
    assert_accounted(result)
    assert handler.seen == 200
    assert result.requests == 200
    assert result.error_rate == pytest.approx(0.1, abs=0.01)
    assert result.error_kinds == {"http_500": result.errors}
    assert result.status_codes == {200: result.ok, 500: result.errors}


def test_connection_refused_is_counted_not_raised(v2_replay):
    with ClosedPort() as port:
        result, elapsed = timed(
            endpoint=SeldonEndpoint(port.url), replay=v2_replay, rate=50, duration=1
        )
    assert elapsed < 1 + 3
    assert_accounted(result)
    assert result.requests == 50
    assert result.error_kinds == {"connection_refused": 50}
    assert result.status_codes == {}
    assert result.ok == 0


def test_a_server_hanging_up_is_counted_as_disconnected(v2_replay):
    with ServerThread(hang_up) as server:
        result, elapsed = timed(
            endpoint=SeldonEndpoint(server.url),
            replay=v2_replay,
            rate=20,
            duration=1,
            settings=EngineSettings(timeout=1.0),
        )
    assert elapsed < 1 + 3
    assert_accounted(result)
    assert result.requests == 20
    assert result.error_kinds == {"server_disconnected": 20}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_cut_short_is_an_error(v2_replay, chunked):
    with ServerThread(cut_short(chunked)) as server:
        result = run_load(
            SeldonEndpoint(server.url),
            v2_replay,
            rate=10,
            duration=1,
            settings=EngineSettings(timeout=1.0),
        )
    assert_accounted(result)
    assert result.requests == 10
    assert result.ok == 0
    assert result.errors == 10
    assert "timeout" not in result.error_kinds


def test_head_requests_complete(tmp_path):
    replay = write_replay(tmp_path / "head.txt", ["HEAD /v2/health/ready"])
    with ServerThread(fixed(200, V2_OK)) as server:
        result = run_load(
            SeldonEndpoint(server.url),
            replay,
            rate=10,
            duration=1,
            settings=EngineSettings(timeout=0.5),
        )
    assert result.error_kinds == {}
    assert result.ok == 10
    assert result.status_codes == {200: 10}


def test_timeouts_are_errors_and_the_run_ends_in_bounded_time(v2_replay):
    with ServerThread(delayed(2.0)) as server:
        result, elapsed = timed(
            endpoint=SeldonEndpoint(server.url),
            replay=v2_replay,
            rate=20,
            duration=1,
            settings=EngineSettings(timeout=0.3),
        )
    assert elapsed < 1 + 3
    assert_accounted(result)
    assert result.requests == 20
    assert result.error_kinds == {"timeout": 20}
    assert result.status_codes == {}
    assert 290.0 <= result.service_percentile(50) <= 800.0
    assert result.service.get_max_value() < 1_500_000


def test_constant_rate_is_held(v2_replay):
    handler = Recording()
    with ServerThread(handler) as server:
        # Punctuality is judged loosely: other tests share the two cores with this one.
        result = run_load(
            SeldonEndpoint(server.url),
            v2_replay,
            rate=200,
            duration=5,
            arrival="constant",
            settings=EngineSettings(lag_threshold_ms=50),
        )
    assert_accounted(result)
    assert result.scheduled == 1000
    assert abs(result.requests - 1000) <= 10
    assert len(handler.seen) == result.requests
    assert result.kept_up, result.health
    assert result.health.sends_checked == result.requests
    assert result.achieved_rate == pytest.approx(200, rel=0.01)
    assert result.errors == 0
    sent = [w["sent"] for w in result.timeline[:5]]
    assert all(abs(n - 200) <= 3 for n in sent), sent


def test_warmup_is_sent_but_not_counted(v2_replay):
    handler = Recording()
    with ServerThread(handler) as server:
        result = run_load(SeldonEndpoint(server.url), v2_replay, rate=100, duration=2, warmup=1)
    assert_accounted(result)
    assert result.scheduled == 200
    assert result.requests == 200
    assert result.duration == 2
    assert len(handler.seen) == 300
    assert [w["second"] for w in result.timeline][:2] == [0, 1]


def test_a_backlog_behind_a_full_pool_is_the_servers_delay_not_the_generators(v2_replay):
    """When a stall fills the pool, the requests due meanwhile go out as slots free up: their
    latency holds the wait, and the generator is not blamed for it."""
    stall = StallOnce(after=1.0, hold=1.0)
    with ServerThread(stall) as server:
        result = run_load(
            SeldonEndpoint(server.url),
            v2_replay,
            rate=100,
            duration=3,
            settings=EngineSettings(connections=4, lag_threshold_ms=50),
        )
    assert stall.stalled
    assert_accounted(result)
    assert result.errors == 0
    assert result.p99 >= 500.0
    assert result.health.late_sends <= 3, result.health
    assert result.kept_up


class BusyLoop:
    """A companion that keeps the run's event loop on the CPU (a saturated generator)."""

    def __init__(self, run) -> None:
        self.stopped = False

    async def __aenter__(self) -> BusyLoop:
        self.task = asyncio.ensure_future(self._burn())
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.stopped = True
        await self.task

    async def _burn(self) -> None:
        while not self.stopped:
            deadline = time.perf_counter() + 0.002
            while time.perf_counter() < deadline:
                pass
            await asyncio.sleep(0)


def test_a_saturated_event_loop_is_flagged_even_when_sends_look_punctual(v2_replay):
    settings = EngineSettings(busy_fraction_allowed=0.4, lag_threshold_ms=50)
    with ServerThread(fixed(200, V2_OK)) as server:
        endpoint = SeldonEndpoint(server.url)
        calm = run_load(endpoint, v2_replay, rate=50, duration=1, settings=settings)
        busy = run_load(
            endpoint, v2_replay, rate=50, duration=1, settings=settings, companion=BusyLoop
        )
    assert 0 < calm.health.busy_fraction < 0.4 and calm.kept_up
    assert busy.health.busy_fraction > 0.4, busy.health
    assert busy.health.saturated and not busy.kept_up
    assert busy.health.late_fraction <= 0.01  # the sends alone would have passed


def test_in_flight_bound_makes_requests_wait_and_lose_their_slot(v2_replay):
    with ServerThread(delayed(0.200)) as server:
        result, elapsed = timed(
            endpoint=SeldonEndpoint(server.url),
            replay=v2_replay,
            rate=50,
            duration=2,
            settings=EngineSettings(max_in_flight=2, timeout=0.5),
        )
    assert elapsed < 2 + 0.5 + 3
    assert_accounted(result)
    assert result.scheduled == 100
    assert result.unsent > 0
    assert result.error_kinds == {"unsent": result.unsent}
    assert result.ok == result.requests
    assert 15 <= result.requests <= 30
    assert 195.0 <= result.service_percentile(50) <= 300.0
    assert result.service_percentile(99) < 450.0
    assert result.p50 > 800.0
    assert result.p99 > 1500.0
    assert result.p50 > 3 * result.service_percentile(50)
    assert result.p99 > 5 * result.service_percentile(99)


def test_split_schedule_adds_up_exactly(tmp_path):
    replay = write_replay(tmp_path / "ab.txt", ["/even", "/odd"])
    kwargs = {"rate": 150, "duration": 1.0, "warmup": 0.5, "arrival": "poisson", "seed": 99}
    expected = np.concatenate(list(Pacer("poisson", 150, 1.5, seed=99).offsets()))
    expected_scheduled = int((expected >= 0.5).sum())

    with ServerThread(Recording()) as server:
        single = run_load(SeldonEndpoint(server.url), replay, **kwargs)
    handlers = [Recording(), Recording()]
    with (
        ServerThread(handlers[0]) as s0,
        ServerThread(handlers[1]) as s1,
        ThreadPoolExecutor(2) as pool,
    ):
        futures = [
            pool.submit(
                run_load,
                SeldonEndpoint(url),
                replay,
                settings=EngineSettings(part=part, parts=2),
                **kwargs,
            )
            for part, url in enumerate((s0.url, s1.url))
        ]
        parts = [f.result() for f in futures]

    assert single.scheduled == expected_scheduled
    assert parts[0].scheduled + parts[1].scheduled == single.scheduled
    assert abs(parts[0].scheduled - parts[1].scheduled) <= 1
    for part in parts:
        assert_accounted(part)
        assert part.target_rate == 75
    assert [h.raw_path for h in handlers[0].seen] == ["/even"] * len(handlers[0].seen)
    assert [h.raw_path for h in handlers[1].seen] == ["/odd"] * len(handlers[1].seen)
    assert len(handlers[0].seen) + len(handlers[1].seen) == expected.size
    merged = LoadResult.merge(parts)
    assert_accounted(merged)
    assert merged.requests == parts[0].requests + parts[1].requests == single.requests
    assert merged.scheduled == single.scheduled
    assert merged.target_rate == single.target_rate == 150
    assert merged.processes == 2


def test_run_load_inside_a_running_event_loop(v2_replay):
    async def main(url: str) -> tuple[LoadResult, bool]:
        result = run_load(SeldonEndpoint(url), v2_replay, rate=30, duration=1)
        await asyncio.sleep(0)
        return result, asyncio.get_running_loop().is_running()

    with ServerThread(delayed(0.005)) as server:
        result, loop_alive = asyncio.run(main(server.url))
    assert loop_alive
    assert_accounted(result)
    assert result.ok == 30
    assert 4.5 <= result.p50 <= 30.0


def test_ctrl_c_works_again_after_a_run(v2_replay):
    """The loop's own SIGINT handler is gone with the loop: a later Ctrl-C interrupts."""
    before = signal.getsignal(signal.SIGINT)
    sigterm_before = signal.getsignal(signal.SIGTERM)
    with ServerThread(fixed(200, V2_OK)) as server:
        run_load(SeldonEndpoint(server.url), v2_replay, rate=20, duration=0.5)
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.getsignal(signal.SIGTERM) is sigterm_before
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)


def test_the_host_processes_heap_is_frozen_during_a_run_and_only_then(v2_replay):
    """A full collection over a pytest session's heap would stall the loop: it is frozen."""
    seen: list[int] = []

    @contextlib.asynccontextmanager
    async def watch(run):
        seen.append(gc.get_freeze_count())
        yield

    with ServerThread(fixed(200, V2_OK)) as server:
        run_load(SeldonEndpoint(server.url), v2_replay, rate=20, duration=0.2, companion=watch)
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_requests_carry_path_prefix_headers_and_body(tmp_path):
    bodies = [
        v2_request("iris", [[5.1, 3.5, 1.4, 0.2]], headers=(("Seldon-Model", "iris"),)),
        ReplayRequest("POST", "/v2/models/iris/infer", (("X-Case", "two"),), b'{"inputs": []}'),
        "http://elsewhere.example:1234/v2/health/ready?probe=1",
    ]
    replay = write_replay(tmp_path / "mixed.txt", bodies)
    handler = Recording()
    with ServerThread(handler) as server:
        endpoint = SeldonEndpoint(
            f"{server.url}/seldon/ns/iris/", headers={"Authorization": "Bearer t0k3n"}
        )
        result = run_load(endpoint, replay, rate=30, duration=1)
    assert_accounted(result)
    assert result.ok == 30
    seen = Counter((s.method, s.raw_path, s.body) for s in handler.seen)
    assert seen == {
        ("POST", "/seldon/ns/iris/v2/models/iris/infer", bodies[0].body): 10,
        ("POST", "/seldon/ns/iris/v2/models/iris/infer", b'{"inputs": []}'): 10,
        ("GET", "/seldon/ns/iris/v2/health/ready?probe=1", b""): 10,
    }
    for s in handler.seen:
        assert s.headers["Authorization"] == "Bearer t0k3n"
        assert "elsewhere.example" not in s.headers.get("Host", "")
        if s.method == "POST" and s.headers.get("X-Case") != "two":
            assert s.headers["Seldon-Model"] == "iris"
            assert s.headers["Content-Type"] == "application/json"
    assert "t0k3n" not in repr(endpoint)


def test_an_empty_replay_fails_the_run(tmp_path):
    replay = write_replay(tmp_path / "empty.txt", [], header="nothing here")
    with ClosedPort() as port, pytest.raises(ReplayError, match="holds no requests"):
        run_load(SeldonEndpoint(port.url), replay, rate=10, duration=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"connections": 0}, "connections"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"timeout": 0}, "timeout"),
        ({"part": 2, "parts": 2}, "part"),
        ({"part": -1, "parts": 2}, "part"),
    ],
)
def test_bad_engine_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EngineSettings(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"duration": 0}, "^duration: "),
        ({"duration": 1, "warmup": -1}, "^warmup: "),
        ({"duration": 1, "arrival": "bursty"}, "^arrival: "),
        ({"duration": 1, "ramp_from": float("nan")}, "^ramp_from: "),
        ({"duration": 1, "seed": "abc"}, "^seed: "),
        ({"duration": "abc"}, "^duration: "),
    ],
)
def test_bad_run_arguments_are_refused_before_sending(v2_replay, kwargs, match):
    with ClosedPort() as port, pytest.raises(ValueError, match=match):
        run_load(SeldonEndpoint(port.url), v2_replay, rate=10, **kwargs)


def test_a_run_takes_a_plan_or_its_options_not_both(v2_replay):
    plan = RunPlan(rate=10, duration=1)
    with ClosedPort() as port, pytest.raises(TypeError, match="not both"):
        run_load(SeldonEndpoint(port.url), v2_replay, plan, rate=20)
    with ClosedPort() as port, pytest.raises(TypeError, match="durations"):
        run_load(SeldonEndpoint(port.url), v2_replay, rate=20, durations=1)


def test_test_server_bodies_are_judged_as_intended():
    assert judge("v2", 200, V2_OK) is None
    assert judge("v1", 200, V1_OK) is None
    assert judge("v2", 200, V2_MODEL_ERROR) == "model_error"
    assert judge("v1", 200, V1_FAILURE) == "seldon_failure"
