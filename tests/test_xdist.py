"""Load runs against one server take turns, across pytest-xdist workers too.

A server that answers one request at a time is what makes overlap visible: two runs that each
fit its capacity alone overload it together, and their latencies grow with the queue.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from aiohttp import web

from pytest_seldon_load.pytest_plugin.waiting import waiting_text
from pytest_seldon_load.target_lock import LOCAL_SERVERS, holder, target_key, target_locked
from tests.servers import V2_OK, ServerThread, json_response

SERVICE_S = 0.010
"""The one-at-a-time server's time per answer: 100 answers a second at most."""


class OneAtATime:
    """Answers one request at a time (a model server with one worker) and remembers, per
    path, when it first and last began to serve it."""

    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None
        self.spans: dict[str, list[float]] = {}

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            now = time.time()
            span = self.spans.setdefault(request.path, [now, now])
            span[1] = now
            await asyncio.sleep(SERVICE_S)
        return json_response(V2_OK)


INNER_TESTS = """
import pytest
from pytest_seldon_load import SeldonEndpoint

URL = {url!r}

@pytest.mark.load(rate=60, duration=2, budgets={{"p99": "150ms", "error_rate": 0}})
@pytest.mark.parametrize("path", ["/first", "/second"])
def test_load(path, replay_file, load_run):
    endpoint = SeldonEndpoint(URL, "v2", "iris")
    replay = replay_file.from_requests([{{"path": path, "json": {{"inputs": []}}}}])
    result = load_run(endpoint, replay)
    assert result.scheduled == 120
"""


@pytest.fixture
def one_at_a_time():
    server = OneAtATime()
    with ServerThread(server) as thread:
        yield server, thread.url


def test_two_load_tests_on_a_one_at_a_time_server_both_pass_under_two_workers(
    pytester: pytest.Pytester, one_at_a_time
) -> None:
    server, url = one_at_a_time
    pytester.makepyfile(test_two=INNER_TESTS.format(url=url))
    outcome = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=2)
    first, second = sorted(server.spans.values())
    # Each run was served in one stretch, the other's after it: they never overlapped.
    assert first[1] < second[0], server.spans


def test_the_same_load_tests_alone_pass_too(pytester: pytest.Pytester, one_at_a_time) -> None:
    _, url = one_at_a_time
    pytester.makepyfile(test_two=INNER_TESTS.format(url=url))
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_run_waits_for_the_holder_and_is_told_who_holds_the_lock(tmp_path) -> None:
    key = target_key("http://127.0.0.1:8080/v2/models/iris")
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with target_locked(tmp_path, key, "gw0 test_a.py::test_one"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    seen: list[tuple[str, float]] = []

    def on_wait(who: str, waited: float) -> None:
        seen.append((who, waited))
        if waited > 0.3:
            release.set()

    with target_locked(tmp_path, key, "gw1 test_b.py::test_two", on_wait=on_wait) as waited:
        assert holder(tmp_path, key) == "gw1 test_b.py::test_two"
    thread.join(5)
    assert waited > 0.3
    assert seen and seen[0][0] == "gw0 test_a.py::test_one"
    text = waiting_text("gw1", key, seen[-1][0], seen[-1][1])
    assert "waiting" in text and "http://127.0.0.1:8080" in text and "gw0 test_a.py" in text


def test_different_servers_do_not_wait_for_each_other(tmp_path) -> None:
    first, second = target_key("http://127.0.0.1:8080"), target_key("http://127.0.0.1:8081")
    with (
        target_locked(tmp_path, first, "a"),
        target_locked(tmp_path, second, "b", timeout=0.5) as waited,
    ):
        assert waited < 0.5


def test_a_wait_can_be_bounded_and_names_the_holder(tmp_path) -> None:
    key = target_key("https://user:secret@seldon.example/seldon/ns/iris")
    assert key == "https://seldon.example:443"
    with (
        target_locked(tmp_path, key, "gw0 test_slow"),
        pytest.raises(TimeoutError, match="held by gw0 test_slow"),
        target_locked(tmp_path, key, "gw1", timeout=0.3),
    ):
        pass


def test_local_servers_share_one_key_because_they_share_the_machine() -> None:
    assert target_key("http://127.0.0.1:1", local=True) == LOCAL_SERVERS
    assert target_key("http://127.0.0.1:2", local=True) == LOCAL_SERVERS
    assert target_key("HTTP://LOCALHOST:9") == "http://localhost:9"


def test_a_waiting_run_says_on_its_terminal_line_what_it_waits_for(tmp_path) -> None:
    from types import SimpleNamespace

    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.pytest_plugin.waiting import WAIT_FD_KEY, run_turn

    read_end, write_end = os.pipe()
    factory = SimpleNamespace(getbasetemp=lambda: tmp_path / "popen-gw1")
    config = SimpleNamespace(
        stash={WAIT_FD_KEY: write_end},
        _tmp_path_factory=factory,
        workerinput={"workerid": "gw1"},
    )
    endpoint = SeldonEndpoint("http://127.0.0.1:8080", "v2", "iris")
    key = target_key(endpoint.base_url)
    released = threading.Event()

    def hold() -> None:
        # The lock directory of xdist workers: the parent of their own base temp directories.
        with target_locked(tmp_path, key, "gw0 test_a.py::test_one"):
            released.wait(10)

    holder_thread = threading.Thread(target=hold)
    holder_thread.start()
    time.sleep(0.2)
    threading.Timer(0.5, released.set).start()
    with run_turn(config, endpoint, "test_b.py::test_two") as waited:  # type: ignore[arg-type]
        assert holder(tmp_path, key) == "gw1 test_b.py::test_two"
    holder_thread.join(5)
    os.close(write_end)
    shown = os.read(read_end, 65536).decode()
    os.close(read_end)
    assert waited > 0.2
    assert "[gw1] waiting" in shown
    assert "the load lock of http://127.0.0.1:8080 (held by gw0 test_a.py::test_one)" in shown
