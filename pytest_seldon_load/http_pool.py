"""A lean HTTP/1.1 keep-alive connection pool for the engine's send loop.

The engine's CPU per request decides the highest rate one process can hold while sharing
the machine with the server under test. A general client (aiohttp's ClientSession: a task,
cookie and redirect handling, timeouts objects and tracing per request) costs ~150 µs of CPU
per request here; this pool writes prebuilt request bytes on a keep-alive connection, parses
the response with llhttp (through `httptools`) and reports back through a plain callback: no
task, no coroutine per request.

It does what a load generator needs and no more: HTTP/1.1 with Content-Length or chunked
bodies, keep-alive and ``Connection: close``, TLS, a per-request deadline, and a FIFO of
requests waiting for a free connection. No redirects, cookies, proxies or compression (the
requests do not ask for it).

Two things keep a hostile or merely ordinary server from distorting the measurement:

* A kept-alive connection the server closed while it sat idle (proxies and load balancers
  do, after a few seconds or milliseconds) may take a request before its close arrives. A
  request lost that way, on a connection that had answered before and with no byte of answer
  back, never reached the application: it is sent once more on a fresh connection and counted
  as a retry, not as the server's error.
* Only the first `KEPT_BODY_BYTES` of an answer's body are kept (what the protocols' error
  checks read); an answer larger than `max_answer_bytes` in all fails as `answer_too_large`
  and its connection is closed, so an endless body costs neither memory nor time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

import httptools

FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
"""Headers that frame the message on the wire: only the pool writes them."""
KEPT_BODY_BYTES = 64 * 1024
"""How much of an answer's body is kept for judging: Seldon's error bodies fit many times."""
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""An answer larger than this (head and body) is an error: `answer_too_large`."""

Callback = Callable[[Any, "int | None", bytes, "str | None", float, float], None]
"""on_done(context, status, body, error_kind, written_at, done_at); `written_at` equals
`done_at` when the request never went on the wire."""


def request_bytes(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
) -> bytes:
    """A complete HTTP/1.1 request, built once and written as is for every send."""
    lines = [f"{method} {target} HTTP/1.1"]
    names = set()
    for name, value in (headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        lowered = name.lower()
        if lowered in FRAMING_HEADERS:
            raise ValueError(
                f"header {name!r} is set by the load generator from the body; remove it"
            )
        if lowered in names:
            raise ValueError(f"header {name!r} is given twice")
        lines.append(f"{name}: {value}")
        names.add(lowered)
    if "host" not in names:  # a Host header of the user's (a virtual host) wins
        lines.insert(1, f"Host: {host}")
    if "user-agent" not in names:
        lines.append("User-Agent: pytest-seldon-load")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


class _Pending:
    __slots__ = (
        "callback",
        "connection",
        "context",
        "head",
        "payload",
        "retried",
        "timer",
        "written_at",
    )

    def __init__(self, payload: bytes, callback: Callback, context: object) -> None:
        self.payload = payload
        self.head = payload.startswith(b"HEAD ")  # its answer has headers and no body
        self.callback: Callback | None = callback
        self.context = context
        self.connection: _Connection | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.written_at = 0.0
        self.retried = False

    def finish(self, status: int | None, body: bytes, error: str | None) -> None:
        done = perf_counter()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(self.context, status, body, error, self.written_at or done, done)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one request on it at a time (no pipelining)."""

    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.pending: _Pending | None = None
        self.body: list[bytes] = []
        self.kept = 0  # bytes of body kept for the current answer
        self.received = 0  # bytes of the current answer received, head included
        self.answered = False  # has answered a request before: may go stale while idle
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the body does not end at EOF
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.pool.max_answer_bytes and self.pending is not None:
            status = self.parser.get_status_code() if self.headers_done else None
            self._fail("answer_too_large", status)
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad_response")
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        pending = self.pending
        if pending is not None:
            self.pending = None
            if exc is None and self.headers_done and not self.framed:
                # A body delimited by the end of the connection ends here.
                pending.finish(self.parser.get_status_code(), b"".join(self.body), None)
            elif self.answered and not self.received and not pending.retried:
                self.pool._retry(pending)  # the server had closed it while it was idle
            else:
                kind = (
                    "connection_reset"
                    if isinstance(exc, ConnectionResetError)
                    else ("server_disconnected")
                )
                pending.finish(None, b"", kind)
        self.pool._lost(self)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        pending = self.pending
        if pending is not None and pending.head:
            # The parser cannot be told the request was a HEAD and would wait for the body
            # that Content-Length announces: the answer ends here, on a fresh parser.
            parser = self.parser
            self.parser = httptools.HttpResponseParser(self)
            self._complete(parser.get_status_code(), parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        kept = self.kept
        if kept < KEPT_BODY_BYTES:
            if kept + len(body) > KEPT_BODY_BYTES:
                body = body[: KEPT_BODY_BYTES - kept]
            self.body.append(body)
            self.kept = kept + len(body)

    def on_message_complete(self) -> None:
        self._complete(self.parser.get_status_code(), self.parser.should_keep_alive())

    def _complete(self, status: int, keep_alive: bool) -> None:
        pending = self.pending
        self.pending = None
        self.headers_done = self.framed = False
        body = b"".join(self.body) if self.body else b""
        self.body.clear()
        self.kept = 0
        if pending is None:
            self.abort()  # a response nobody asked for: the stream is out of step
            return
        pending.finish(status, body, None)
        if keep_alive and not self.closed:
            self.answered = True
            self.pool._release(self)
        else:
            self.abort()

    # used by the pool
    def send(self, pending: _Pending) -> None:
        self.pending = pending
        self.received = 0
        pending.connection = self
        pending.written_at = perf_counter()
        self.transport.write(pending.payload)  # type: ignore[union-attr]  # set once connected

    def _fail(self, kind: str, status: int | None = None) -> None:
        pending = self.pending
        if pending is not None:
            self.pending = None
            pending.finish(status, b"", kind)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()


class HttpPool:
    """Up to `connections` keep-alive connections to one origin; extra requests wait in FIFO.

    `on_retry(context)` is told of each request sent again after it met a stale connection.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout: float,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        on_retry: Callable[[Any], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot connect to {base_url!r}: need http(s)://host[:port]")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = bracketed if default_port else f"{bracketed}:{self.port}"
        self.path_prefix = parts.path.rstrip("/")
        self.connections = connections
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.on_retry = on_retry
        self.retries = 0
        self.loop = loop or asyncio.get_running_loop()
        self._ssl = ssl.create_default_context() if self.tls else None
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._opening = 0
        self._waiting: deque[_Pending] = deque()
        self._closed = False

    def submit(self, payload: bytes, callback: Callback, context: object) -> None:
        """Send `payload` now if a connection is free; the callback reports the outcome."""
        pending = _Pending(payload, callback, context)
        pending.timer = self.loop.call_at(self.loop.time() + self.timeout, self._expire, pending)
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.send(pending)
                return
        self._waiting.append(pending)
        if len(self._all) + self._opening < self.connections:
            self._open_one()

    def _open_one(self) -> None:
        self._opening += 1
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, connection = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                ),
                self.timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            self._opening -= 1
            kind = _connect_error_kind(exc)
            # Each waiting request gets its own attempt, and its own honest failure.
            waiting = self._waiting
            while waiting:
                pending = waiting.popleft()
                if pending.callback is not None:
                    pending.finish(None, b"", kind)
                    break
            if waiting and not self._closed:
                self._open_one()
            return
        self._opening -= 1
        if self._closed:
            connection.abort()
            return
        self._all.add(connection)
        self._release(connection)

    def _release(self, connection: _Connection) -> None:
        waiting = self._waiting
        while waiting:
            pending = waiting.popleft()
            if pending.callback is not None:  # not expired while it waited
                connection.send(pending)
                return
        self._idle.append(connection)

    def _retry(self, pending: _Pending) -> None:
        """Send `pending` again, first in line, on the next connection free (a fresh one)."""
        if self._closed:
            pending.finish(None, b"", "server_disconnected")
            return
        pending.retried = True
        pending.connection = None
        self.retries += 1
        self._waiting.appendleft(pending)
        if self.on_retry is not None:
            self.on_retry(pending.context)

    def _lost(self, connection: _Connection) -> None:
        self._all.discard(connection)
        if self._waiting and not self._closed:
            self._open_one()

    def _expire(self, pending: _Pending) -> None:
        pending.timer = None
        connection = pending.connection
        if connection is not None and connection.pending is pending:
            connection.pending = None
            pending.finish(None, b"", "timeout")
            connection.abort()  # a late answer would arrive out of step
        else:
            pending.finish(None, b"", "timeout")

    def close(self, reason: str = "cancelled") -> None:
        """Fail whatever is still pending with `reason`, and close every connection."""
        self._closed = True
        while self._waiting:
            self._waiting.popleft().finish(None, b"", reason)
        for connection in list(self._all):
            connection._fail(reason)
            connection.abort()
        self._all.clear()
        self._idle.clear()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)


def _connect_error_kind(exc: BaseException) -> str:
    """The error kind of a connection that could not be opened."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "dns_error"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    return "connect_error"
