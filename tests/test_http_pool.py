"""The keep-alive HTTP pool against real servers on 127.0.0.1, each started by its test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter

import pytest
from aiohttp import web

from pytest_seldon_load.http_pool import KEPT_BODY_BYTES, HttpPool, request_bytes

RawHandler = Callable[["Conn"], Awaitable[None]]


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    """Run `scenario` in a fresh event loop; fail on anything the loop reports as unhandled."""
    errors: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        await asyncio.wait_for(scenario(), timeout)

    asyncio.run(main())
    assert errors == []


@dataclass
class Call:
    context: object
    status: int | None
    body: bytes
    error: str | None
    written_at: float
    done_at: float


class Results:
    """The pool's callback: keeps every call and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._changed = asyncio.Event()

    def __call__(self, context, status, body, error, written_at, done_at) -> None:
        self.calls.append(Call(context, status, body, error, written_at, done_at))
        self._changed.set()

    async def wait(self, count: int, timeout: float = 2.0) -> list[Call]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.calls) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(self.calls)} of {count} callbacks: {self.calls}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.calls

    def by_context(self) -> dict[object, list[Call]]:
        seen: dict[object, list[Call]] = {}
        for call in self.calls:
            seen.setdefault(call.context, []).append(call)
        return seen


@dataclass
class Conn:
    """One accepted connection of a RawServer, numbered from 1."""

    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read_request(self) -> tuple[bytes, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return head, body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0)."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class RawServer:
    """A 127.0.0.1 server whose handler writes exact bytes; counts accepted connections."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.accepted = 0
        self.requests: list[bytes] = []
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self.handler(Conn(self.accepted, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            self._tasks.discard(task)


def response(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def keep_alive(reply: Callable[[bytes], bytes] = lambda _head: response(b"ok")) -> RawHandler:
    """Answer every request on the connection, immediately, with `reply(request head)`."""

    async def handler(conn: Conn) -> None:
        while True:
            head, _ = await conn.read_request()
            await conn.send(reply(head))

    return handler


def get(pool: HttpPool, path: str = "/") -> bytes:
    return request_bytes("GET", pool.path_prefix + path, pool.host_header, None, None)


@contextlib.asynccontextmanager
async def pool_for(url: str, connections: int = 1, timeout: float = 2.0):
    pool = HttpPool(url, connections=connections, timeout=timeout)
    try:
        yield pool
    finally:
        pool.close()


@contextlib.asynccontextmanager
async def aiohttp_server(handler):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_request_bytes_get_without_body_has_no_content_length():
    data = request_bytes("GET", "/v2/health/ready", "127.0.0.1:9000", None, None)
    assert data == (
        b"GET /v2/health/ready HTTP/1.1\r\n"
        b"Host: 127.0.0.1:9000\r\n"
        b"User-Agent: pytest-seldon-load\r\n"
        b"\r\n"
    )


def test_request_bytes_post_with_body_and_headers():
    body = '{"x": "é"}'.encode()
    data = request_bytes(
        "POST",
        "/v2/models/iris/infer",
        "seldon:8080",
        {"Content-Type": "application/json", "Seldon-Model": "iris"},
        body,
    )
    assert data == (
        b"POST /v2/models/iris/infer HTTP/1.1\r\n"
        b"Host: seldon:8080\r\n"
        b"Content-Type: application/json\r\n"
        b"Seldon-Model: iris\r\n"
        b"User-Agent: pytest-seldon-load\r\n"
        b"Content-Length: 11\r\n"
        b"\r\n" + body
    )


def test_request_bytes_post_without_body_says_zero_length():
    data = request_bytes("POST", "/p", "h", None, None)
    assert data.endswith(b"\r\nContent-Length: 0\r\n\r\n")


def test_request_bytes_keeps_a_user_agent_given_by_the_user():
    data = request_bytes("GET", "/", "h", {"user-agent": "mine/1"}, None)
    assert data == b"GET / HTTP/1.1\r\nHost: h\r\nuser-agent: mine/1\r\n\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Token": "abc\r\nX-Injected: 1"},
        {"X-Token": "abc\nX-Injected: 1"},
        {"X-Token": "abc\r"},
        {"X-Bad\r\nName": "v"},
    ],
)
def test_request_bytes_rejects_line_breaks_in_headers(headers):
    with pytest.raises(ValueError, match="line break"):
        request_bytes("POST", "/", "h", headers, b"{}")


@pytest.mark.parametrize(("name", "value"), [("Host", "other:1"), ("Content-Length", "3")])
def test_request_bytes_never_sends_a_framing_header_twice(name, value):
    try:
        data = request_bytes("POST", "/", "h:1", {name: value}, b"hello")
    except ValueError:
        return
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    assert sum(line.lower().startswith(name.lower().encode() + b":") for line in lines) == 1


def test_simple_response_is_reported_with_status_body_and_times():
    async def scenario() -> None:
        async with (
            RawServer(keep_alive(lambda _h: response(b"hello body"))) as server,
            pool_for(server.url) as pool,
        ):
            results = Results()
            payload = request_bytes("POST", "/infer", pool.host_header, None, b"{}")
            submitted = perf_counter()
            pool.submit(payload, results, "ctx")
            [call] = await results.wait(1)
            assert (call.context, call.status, call.body, call.error) == (
                "ctx",
                200,
                b"hello body",
                None,
            )
            assert submitted <= call.written_at <= call.done_at <= perf_counter()
            assert server.accepted == 1

    run(scenario)


def test_the_server_receives_the_payload_bytes_unchanged():
    received: list[bytes] = []

    async def handler(conn: Conn) -> None:
        head, body = await conn.read_request()
        received.append(head + body)
        await conn.send(response(b"ok"))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            payload = request_bytes(
                "POST", "/v2/models/m/infer", pool.host_header, {"X-A": "1"}, b'{"a":[1,2]}'
            )
            pool.submit(payload, results, None)
            await results.wait(1)
            assert received == [payload]

    run(scenario)


def test_sequential_requests_reuse_one_keep_alive_connection():
    async def scenario() -> None:
        server = RawServer(keep_alive(lambda head: response(head.split(b" ")[1])))
        async with server, pool_for(server.url, connections=1) as pool:
            results = Results()
            for i in range(20):
                pool.submit(get(pool, f"/r{i}"), results, i)
                await results.wait(i + 1)
            assert [c.body for c in results.calls] == [f"/r{i}".encode() for i in range(20)]
            assert all(c.status == 200 and c.error is None for c in results.calls)
            assert server.accepted == 1

    run(scenario)


def test_chunked_body_is_reassembled_and_the_connection_kept():
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    async def scenario() -> None:
        async with (
            RawServer(keep_alive(lambda _h: chunked)) as server,
            pool_for(server.url) as pool,
        ):
            results = Results()
            for i in range(2):
                pool.submit(get(pool), results, i)
                await results.wait(i + 1)
            assert [(c.status, c.body, c.error) for c in results.calls] == [
                (200, b"hello, world!", None)
            ] * 2
            assert server.accepted == 1

    run(scenario)


@pytest.mark.parametrize("server_closes", [True, False], ids=["server-closes", "server-stays"])
def test_connection_close_response_is_not_reused(server_closes):
    saw_eof: list[bool] = []

    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(response(b"bye", extra="Connection: close\r\n"))
        if not server_closes:
            rest = await asyncio.wait_for(conn.reader.read(), 1.0)
            saw_eof.append(rest == b"")

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            for i in range(3):
                pool.submit(get(pool), results, i)
                await results.wait(i + 1)
            assert [(c.status, c.body, c.error) for c in results.calls] == [(200, b"bye", None)] * 3
            assert server.accepted == 3
            if not server_closes:
                for _ in range(100):
                    if len(saw_eof) == 3:
                        break
                    await asyncio.sleep(0.01)
                assert saw_eof == [True, True, True]

    run(scenario)


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.0 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"],
    ids=["http-1.0", "http-1.1-close"],
)
def test_body_delimited_by_connection_close(head):
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(head + b"first part, ")
        await asyncio.sleep(0.05)
        await conn.send(b"second part")
        conn.writer.close()

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, 1)
            pool.submit(get(pool), results, 2)
            calls = await results.wait(2)
            assert [(c.context, c.status, c.body, c.error) for c in calls] == [
                (1, 200, b"first part, second part", None),
                (2, 200, b"first part, second part", None),
            ]
            assert server.accepted == 2

    run(scenario)


def test_reset_mid_response_is_an_error_and_the_pool_recovers():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        if conn.index == 1:
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Le")
            await asyncio.sleep(0.05)
            conn.reset()
            return
        await conn.send(response(b"fresh"))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, "first")
            [first] = await results.wait(1)
            assert first.error in ("connection_reset", "server_disconnected")
            assert (first.status, first.body) == (None, b"")
            pool.submit(get(pool), results, "second")
            second = (await results.wait(2))[1]
            assert (second.status, second.body, second.error) == (200, b"fresh", None)
            assert server.accepted == 2
            await asyncio.sleep(0.05)
            assert len(results.calls) == 2

    run(scenario)


def test_reset_after_headers_is_a_reset_not_a_short_success():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await asyncio.sleep(0.05)
        conn.reset()

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, None)
            [call] = await results.wait(1)
            assert call.error == "connection_reset"
            assert call.status is None

    run(scenario)


@pytest.mark.parametrize(
    "partial",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly 20 bytes here..",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
    ids=["content-length", "chunked"],
)
def test_body_cut_short_by_a_clean_close_is_an_error(partial):
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(partial)
        conn.writer.close()

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, None)
            [call] = await results.wait(1)
            assert call.error in ("server_disconnected", "connection_reset"), call

    run(scenario)


def test_server_closing_without_an_answer_is_server_disconnected():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        conn.writer.close()

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, None)
            [call] = await results.wait(1)
            assert (call.status, call.body, call.error) == (None, b"", "server_disconnected")
            await asyncio.sleep(0.05)
            assert len(results.calls) == 1
            assert pool.retries == 0  # a fresh connection: the server's own doing
            assert server.accepted == 1

    run(scenario)


def test_malformed_response_is_bad_response_and_the_pool_recovers():
    async def handler(conn: Conn) -> None:
        while True:
            await conn.read_request()
            await conn.send(b"garbage\r\n\r\n" if conn.index == 1 else response(b"good"))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, 1)
            [bad] = await results.wait(1)
            assert (bad.status, bad.body, bad.error) == (None, b"", "bad_response")
            pool.submit(get(pool), results, 2)
            good = (await results.wait(2))[1]
            assert (good.status, good.body, good.error) == (200, b"good", None)
            assert server.accepted == 2

    run(scenario)


def test_an_unsolicited_response_does_not_answer_the_next_request():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        if conn.index == 1:
            await conn.send(response(b"asked") + response(b"not asked"))
            await asyncio.sleep(1.0)
            return
        await conn.send(response(b"second"))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, 1)
            await results.wait(1)
            await asyncio.sleep(0.05)
            pool.submit(get(pool), results, 2)
            calls = await results.wait(2)
            assert [(c.context, c.body, c.error) for c in calls] == [
                (1, b"asked", None),
                (2, b"second", None),
            ]
            assert server.accepted == 2

    run(scenario)


def refused_url() -> tuple[socket.socket, str]:
    """A 127.0.0.1 port bound but not listening, so every connection attempt is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_connection_refused_for_one_request_per_connection():
    sock, url = refused_url()

    async def scenario() -> None:
        async with pool_for(url, connections=3, timeout=5.0) as pool:
            results = Results()
            for i in range(3):
                pool.submit(get(pool), results, i)
            await results.wait(3, timeout=1.0)
            await asyncio.sleep(0.05)
            seen = results.by_context()
            assert sorted(seen) == [0, 1, 2]
            assert all(len(calls) == 1 for calls in seen.values())
            assert {c.error for c in results.calls} == {"connection_refused"}
            assert all(c.status is None and c.written_at == c.done_at for c in results.calls)

    try:
        run(scenario)
    finally:
        sock.close()


def test_connection_refused_for_every_request_beyond_the_pool_size():
    sock, url = refused_url()

    async def scenario() -> None:
        async with pool_for(url, connections=1, timeout=5.0) as pool:
            results = Results()
            for i in range(4):
                pool.submit(get(pool), results, i)
            await results.wait(4, timeout=1.0)
            seen = results.by_context()
            assert sorted(seen) == [0, 1, 2, 3]
            assert all(len(calls) == 1 for calls in seen.values())
            assert {c.error for c in results.calls} == {"connection_refused"}

    try:
        run(scenario)
    finally:
        sock.close()


def test_timeout_aborts_the_connection_and_calls_back_once():
    server_saw_eof: list[bool] = []

    async def handler(conn: Conn) -> None:
        await conn.read_request()
        if conn.index == 1:
            await asyncio.sleep(0.5)
            server_saw_eof.append(conn.reader.at_eof())
            with contextlib.suppress(ConnectionError):
                await conn.send(response(b"late"))
            return
        await conn.send(response(b"on time"))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url, timeout=0.2) as pool:
            results = Results()
            submitted = perf_counter()
            pool.submit(get(pool), results, "slow")
            [call] = await results.wait(1)
            assert (call.status, call.body, call.error) == (None, b"", "timeout")
            assert 0.15 <= call.done_at - submitted <= 1.0
            await asyncio.sleep(0.8 - (perf_counter() - submitted))
            assert len(results.calls) == 1
            assert server_saw_eof == [True]
            pool.submit(get(pool), results, "next")
            after = (await results.wait(2))[1]
            assert (after.context, after.status, after.body, after.error) == (
                "next",
                200,
                b"on time",
                None,
            )
            assert server.accepted == 2

    run(scenario)


def test_requests_waiting_for_a_connection_time_out_too():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await asyncio.sleep(2.0)

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url, timeout=0.2) as pool:
            results = Results()
            pool.submit(get(pool), results, "written")
            pool.submit(get(pool), results, "waiting")
            calls = await results.wait(2)
            assert {c.context: c.error for c in calls} == {
                "written": "timeout",
                "waiting": "timeout",
            }
            waiting = next(c for c in calls if c.context == "waiting")
            assert waiting.written_at == waiting.done_at
            await asyncio.sleep(0.3)
            pool.close("interrupted")
            await asyncio.sleep(0.05)
            assert len(results.calls) == 2

    run(scenario)


def test_slow_headers_and_body_arriving_in_pieces():
    body = b"0123456789abcdefghijklmnopqrst"

    async def handler(conn: Conn) -> None:
        await conn.read_request()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        for i in range(0, len(head), 7):
            await conn.send(head[i : i + 7])
            await asyncio.sleep(0.01)
        for i in range(0, len(body), 5):
            await conn.send(body[i : i + 5])
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url, timeout=2.0) as pool:
            results = Results()
            pool.submit(get(pool), results, None)
            [call] = await results.wait(1)
            assert (call.status, call.body, call.error) == (200, body, None)
            assert call.done_at - call.written_at >= 0.25

    run(scenario)


def test_waiting_requests_are_served_in_submission_order():
    async def handler(conn: Conn) -> None:
        while True:
            head, _ = await conn.read_request()
            await asyncio.sleep(0.05)
            await conn.send(response(head.split(b" ")[1]))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url, connections=1) as pool:
            results = Results()
            for i in range(5):
                pool.submit(get(pool, f"/{i}"), results, i)
            calls = await results.wait(5)
            assert [(c.context, c.body, c.error) for c in calls] == [
                (i, f"/{i}".encode(), None) for i in range(5)
            ]
            assert all(a.done_at <= b.written_at for a, b in itertools.pairwise(calls))
            assert server.accepted == 1

    run(scenario)


def test_pool_opens_up_to_its_size_and_no_more():
    async def handler(conn: Conn) -> None:
        while True:
            await conn.read_request()
            await asyncio.sleep(0.1)
            await conn.send(response(b"ok"))

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url, connections=3) as pool:
            results = Results()
            began = perf_counter()
            for i in range(9):
                pool.submit(get(pool), results, i)
            calls = await results.wait(9)
            elapsed = perf_counter() - began
            assert all(c.error is None for c in calls)
            assert server.accepted == 3
            assert 0.28 <= elapsed < 1.0

    run(scenario)


def test_idle_connection_closed_by_the_server_is_not_used():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(response(b"ok"))
        await asyncio.sleep(0.05)

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, 1)
            await results.wait(1)
            await asyncio.sleep(0.2)
            pool.submit(get(pool), results, 2)
            calls = await results.wait(2)
            assert [(c.status, c.error) for c in calls] == [(200, None)] * 2
            assert server.accepted == 2

    run(scenario)


def answer_once_then(close: Callable[[Conn], Awaitable[None]]) -> RawHandler:
    """Answer the first request on each connection; `close` it when the next one arrives."""

    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(response(b"ok %d" % conn.index))
        await conn.read_request()
        await close(conn)

    return handler


async def close_cleanly(conn: Conn) -> None:
    conn.writer.close()


async def close_with_reset(conn: Conn) -> None:
    conn.reset()


@pytest.mark.parametrize("close", [close_cleanly, close_with_reset], ids=["fin", "rst"])
def test_a_request_lost_on_a_stale_connection_is_sent_again_on_a_fresh_one(close):
    async def scenario() -> None:
        retried: list[object] = []
        async with RawServer(answer_once_then(close)) as server:
            pool = HttpPool(server.url, connections=1, timeout=2.0, on_retry=retried.append)
            try:
                results = Results()
                pool.submit(get(pool), results, "first")
                await results.wait(1)
                pool.submit(get(pool), results, "second")
                calls = await results.wait(2)
                await asyncio.sleep(0.05)
            finally:
                pool.close()
        assert [(c.context, c.status, c.body, c.error) for c in calls] == [
            ("first", 200, b"ok 1", None),
            ("second", 200, b"ok 2", None),
        ]
        assert (pool.retries, retried, server.accepted) == (1, ["second"], 2)
        assert calls[1].written_at < calls[1].done_at

    run(scenario)


def test_a_stale_connection_retry_is_made_once_only():
    async def handler(conn: Conn) -> None:
        if conn.index == 1:
            await answer_once_then(close_cleanly)(conn)
        else:
            await conn.read_request()
            conn.writer.close()

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, 1)
            await results.wait(1)
            pool.submit(get(pool), results, 2)
            calls = await results.wait(2)
            await asyncio.sleep(0.05)
            assert [(c.status, c.error) for c in calls] == [
                (200, None),
                (None, "server_disconnected"),
            ]
            assert (pool.retries, server.accepted, len(results.calls)) == (1, 2, 2)

    run(scenario)


def test_no_retry_once_part_of_the_answer_came_back():
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(response(b"ok"))
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Le")
        conn.writer.close()

    async def scenario() -> None:
        async with RawServer(handler) as server, pool_for(server.url) as pool:
            results = Results()
            pool.submit(get(pool), results, 1)
            await results.wait(1)
            pool.submit(get(pool), results, 2)
            calls = await results.wait(2)
            await asyncio.sleep(0.05)
            assert calls[1].error == "server_disconnected"
            assert (pool.retries, server.accepted, len(results.calls)) == (0, 1, 2)

    run(scenario)


def test_a_large_body_is_kept_only_up_to_what_the_judge_reads():
    big = b"x" * (3 * 1024 * 1024)

    async def scenario() -> None:
        async with (
            RawServer(keep_alive(lambda _head: response(big))) as server,
            pool_for(server.url) as pool,
        ):
            results = Results()
            pool.submit(get(pool), results, 1)
            pool.submit(get(pool), results, 2)
            calls = await results.wait(2)
        assert [(c.status, c.error) for c in calls] == [(200, None)] * 2
        assert [c.body for c in calls] == [big[:KEPT_BODY_BYTES]] * 2
        assert server.accepted == 1  # the whole body was read: the connection stays usable

    run(scenario)


MIB = 1024 * 1024


@pytest.mark.parametrize("framing", ["content-length", "chunked", "endless"])
def test_an_answer_over_the_maximum_is_answer_too_large_and_its_connection_closed(framing):
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        if conn.index > 1:
            await conn.send(response(b"small"))
            return
        if framing == "content-length":
            await conn.send(response(b"z" * (3 * MIB)))
        elif framing == "chunked":
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await conn.send(b"%x\r\n" % (3 * MIB) + b"z" * (3 * MIB) + b"\r\n0\r\n\r\n")
        else:
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                await conn.send(b"10000\r\n" + b"z" * 65536 + b"\r\n")

    async def scenario() -> None:
        async with RawServer(handler) as server:
            pool = HttpPool(server.url, connections=1, timeout=2.0, max_answer_bytes=MIB)
            try:
                results = Results()
                pool.submit(get(pool), results, 1)
                [call] = await results.wait(1)
                assert (call.status, call.body, call.error) == (200, b"", "answer_too_large")
                pool.submit(get(pool), results, 2)
                calls = await results.wait(2)
                assert (calls[1].status, calls[1].body) == (200, b"small")
                assert server.accepted == 2
            finally:
                pool.close()

    run(scenario)


@pytest.mark.parametrize("when", ["before-connect", "after-write"])
def test_close_fails_pending_and_waiting_requests_once(when):
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        server_got.set()
        await asyncio.sleep(2.0)

    server_got: asyncio.Event

    async def scenario() -> None:
        nonlocal server_got
        server_got = asyncio.Event()
        async with RawServer(handler) as server:
            pool = HttpPool(server.url, connections=2, timeout=0.3)
            results = Results()
            for i in range(5):
                pool.submit(get(pool), results, i)
            if when == "after-write":
                await asyncio.wait_for(server_got.wait(), 2.0)
                await asyncio.sleep(0.02)
                assert results.calls == []
            pool.close("interrupted")
            seen = results.by_context()
            assert sorted(seen) == [0, 1, 2, 3, 4]
            assert {c.error for c in results.calls} == {"interrupted"}
            assert all(c.status is None for c in results.calls)
            await asyncio.sleep(0.4)
            assert len(results.calls) == 5

    run(scenario)


@pytest.mark.parametrize(
    ("url", "host", "port", "host_header", "prefix"),
    [
        (
            "http://127.0.0.1:8080/seldon/ns/iris/",
            "127.0.0.1",
            8080,
            "127.0.0.1:8080",
            "/seldon/ns/iris",
        ),
        ("http://127.0.0.1:8080", "127.0.0.1", 8080, "127.0.0.1:8080", ""),
        ("http://Seldon.Example:80/api", "seldon.example", 80, "seldon.example", "/api"),
        ("http://seldon.example/", "seldon.example", 80, "seldon.example", ""),
        ("https://seldon.example/v2", "seldon.example", 443, "seldon.example", "/v2"),
        ("https://seldon.example:8443/", "seldon.example", 8443, "seldon.example:8443", ""),
        ("http://user:secret@gw:9000/p", "gw", 9000, "gw:9000", "/p"),
        ("http://[::1]:8080/p", "::1", 8080, "[::1]:8080", "/p"),
    ],
)
def test_base_url_gives_host_header_port_and_path_prefix(url, host, port, host_header, prefix):
    async def scenario() -> None:
        pool = HttpPool(url, connections=1, timeout=1.0)
        assert (pool.host, pool.port, pool.host_header, pool.path_prefix) == (
            host,
            port,
            host_header,
            prefix,
        )
        pool.close()

    run(scenario)


def test_ipv6_host_header_on_the_default_port_keeps_brackets():
    async def scenario() -> None:
        pool = HttpPool("http://[::1]/", connections=1, timeout=1.0)
        assert pool.host_header == "[::1]"
        pool.close()

    run(scenario)


@pytest.mark.parametrize("url", ["ftp://h/", "127.0.0.1:8080", "http:///path"])
def test_base_url_without_http_scheme_or_host_is_rejected(url):
    async def scenario() -> None:
        with pytest.raises(ValueError, match="cannot connect"):
            HttpPool(url, connections=1, timeout=1.0)

    run(scenario)


def test_prefixed_request_reaches_an_aiohttp_server():
    seen: list[tuple[str, str, str, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, request.host, await request.read()))
        return web.json_response({"outputs": []})

    async def scenario() -> None:
        async with aiohttp_server(handler) as url, pool_for(url + "/seldon/ns/iris/") as pool:
            results = Results()
            payload = request_bytes(
                "POST",
                pool.path_prefix + "/v2/models/iris/infer",
                pool.host_header,
                {"Content-Type": "application/json"},
                b'{"inputs": []}',
            )
            pool.submit(payload, results, None)
            [call] = await results.wait(1)
            assert (call.status, call.body, call.error) == (200, b'{"outputs": []}', None)
            assert seen == [
                (
                    "POST",
                    "/seldon/ns/iris/v2/models/iris/infer",
                    pool.host_header,
                    b'{"inputs": []}',
                )
            ]

    run(scenario)


def test_server_error_status_is_reported_not_judged():
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, body=b'{"error": "boom"}')

    async def scenario() -> None:
        async with aiohttp_server(handler) as url, pool_for(url) as pool:
            results = Results()
            for i in range(3):
                pool.submit(get(pool), results, i)
            calls = await results.wait(3)
            assert [(c.status, c.body, c.error) for c in calls] == [
                (500, b'{"error": "boom"}', None)
            ] * 3

    run(scenario)
