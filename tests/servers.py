"""Small aiohttp servers on 127.0.0.1 for engine tests, each served from its own thread."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

V2_OK = json.dumps(
    {
        "model_name": "iris",
        "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [0]}],
    }
).encode()
V2_MODEL_ERROR = json.dumps({"error": "model failed to predict"}).encode()
V1_OK = json.dumps(
    {
        "data": {"names": ["t:0"], "ndarray": [[0.9]]},
        "meta": {},
        "status": {"code": 200, "status": "SUCCESS"},
    }
).encode()
V1_FAILURE = json.dumps(
    {
        "status": {
            "code": -1,
            "info": "predictor exploded",
            "reason": "MICROSERVICE_INTERNAL_ERROR",
            "status": 1,
        }
    }
).encode()


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


async def by_path(request: web.Request) -> web.StreamResponse:
    """Answers as the path says: ``/delay/<ms>`` waits that long, ``/status/<code>`` answers
    that status with an error body; anything else is a V2 success."""
    await request.read()
    parts = request.path.strip("/").split("/")
    if parts[0] == "delay" and len(parts) > 1:
        await asyncio.sleep(float(parts[1]) / 1000.0)
    if parts[0] == "status" and len(parts) > 1:
        return json_response(b'{"error":"failed"}', status=int(parts[1]))
    return json_response(V2_OK)


class ServerThread:
    """Serve one handler for every method and path on 127.0.0.1, from a background thread.

    `keepalive_timeout` (seconds) is how long the server keeps an idle connection open.
    """

    def __init__(self, handler: Handler, keepalive_timeout: float = 75.0) -> None:
        self.handler = handler
        self.keepalive_timeout = keepalive_timeout
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread = threading.Thread(target=self._serve, name="test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        app = web.Application()
        handler = self.handler

        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(request)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=0.2,
            keepalive_timeout=self.keepalive_timeout,
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock, backlog=512).start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(_cancel_the_rest())
            loop.close()


async def _cancel_the_rest() -> None:
    """Cancel handlers still sleeping past the shutdown grace period."""
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


class ClosedPort:
    """A 127.0.0.1 port held bound but not listening: every connection attempt is refused."""

    def __enter__(self) -> ClosedPort:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()


class Slots:
    """A server of `workers` concurrent answers of `service_s` each: it serves
    workers / service_s requests a second and queues the rest (their latency grows)."""

    def __init__(self, workers: int, service_s: float) -> None:
        self.capacity = workers / service_s
        self.service_s = service_s
        self.slots = asyncio.Semaphore(workers)

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        async with self.slots:
            await asyncio.sleep(self.service_s)
        return json_response(V2_OK)


def delayed(seconds: float, body: bytes = V2_OK) -> Handler:
    """Answer 200 with `body` after `seconds`."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(seconds)
        return json_response(body)

    return handler


def fixed(status: int, body: bytes) -> Handler:
    """Answer every request with `status` and `body` at once."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return json_response(body, status)

    return handler


class EveryNthFails:
    """Every n-th request (n, 2n, ...) gets a 500; the others a V2 success."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen += 1
        if self.seen % self.n == 0:
            return json_response(b'{"error":"injected"}', 500)
        return json_response(V2_OK)


class StallOnce:
    """Fast, except once: the first request `after` s past the first one holds every request
    for `hold` seconds (a GC pause, a failover)."""

    def __init__(self, after: float = 1.0, hold: float = 1.0) -> None:
        self.after = after
        self.hold = hold
        self.first: float | None = None
        self.stalled = False
        self._released: asyncio.Event | None = None

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        if self.first is None:
            self.first = now
        if not self.stalled and now - self.first >= self.after:
            self.stalled = True
            self._released = asyncio.Event()
            await asyncio.sleep(self.hold)
            self._released.set()
        elif self._released is not None and not self._released.is_set():
            await self._released.wait()
        return json_response(V2_OK)


@dataclass(frozen=True)
class Seen:
    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes


class Recording:
    """Answer a V2 success and keep every request as it arrived."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, dict(request.headers), body))
        return json_response(V2_OK)


async def hang_up(request: web.Request) -> web.Response:
    """Read the request, then close the connection without answering."""
    await request.read()
    request.transport.close()
    return web.Response()


def cut_short(chunked: bool) -> Handler:
    """Start a 200 and close the connection before the body is complete."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        if chunked:
            response = web.StreamResponse()
            response.enable_chunked_encoding()
        else:
            response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"outp')
        request.transport.close()
        return response

    return handler


class Counting:
    """Answer a V2 success (closing the connection after it if `close`); count requests."""

    def __init__(self, close: bool = False) -> None:
        self.close = close
        self.seen = 0

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen += 1
        response = json_response(V2_OK)
        if self.close:
            response.force_close()
        return response


async def never_answers(request: web.Request) -> web.Response:
    """Read the request and hold it until the server stops."""
    await request.read()
    await asyncio.Event().wait()
    return web.Response()


async def reset_mid_answer(request: web.Request) -> web.StreamResponse:
    """Start a 200 with part of its body, then close with a TCP RST (SO_LINGER 0)."""
    await request.read()
    response = web.StreamResponse(headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b'{"outp')
    await asyncio.sleep(0.02)
    sock = request.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()
    return response


def chunked(body: bytes, pieces: int) -> Handler:
    """Answer 200 with `body` in `pieces` chunks of chunked transfer encoding."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        step = max(1, -(-len(body) // pieces))
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
        await response.write_eof()
        return response

    return handler


def large(size: int) -> Handler:
    """Answer 200 with a body of `size` bytes, announced by Content-Length."""
    payload = b"x" * size

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=payload, content_type="application/octet-stream")

    return handler


async def endless(request: web.Request) -> web.StreamResponse:
    """Answer 200 with a chunked body that never ends (until the client goes away)."""
    await request.read()
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    piece = b"y" * 65536
    while True:
        await response.write(piece)


def trickle(body: bytes, interval: float) -> Handler:
    """Answer 200 with `body` announced by Content-Length, one byte every `interval` s."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Length": str(len(body))})
        await response.prepare(request)
        for index in range(len(body)):
            await response.write(body[index : index + 1])
            if index + 1 < len(body):
                await asyncio.sleep(interval)
        return response

    return handler


class HangUpOnReuse:
    """Answer the first request on each connection; close the connection, unanswered, when a
    second one arrives on it (a server closing an idle connection as a request reaches it)."""

    def __init__(self) -> None:
        self.seen = 0
        self.hung_up = 0
        self._answered: set[object] = set()

    async def __call__(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen += 1
        if request.transport in self._answered:
            self.hung_up += 1
            request.transport.close()
            return web.Response()
        self._answered.add(request.transport)
        return json_response(V2_OK)
