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
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from time import perf_counter
from urllib.parse import urlsplit

import httptools

FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
"""Headers that frame the message on the wire: only the pool writes them."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_TARGET = re.compile(r"[\x21-\x7e]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Callback = Callable[[object, "int | None", bytes, "str | None", float, float], None]
"""on_done(context, status, body, error_kind, written_at, done_at)."""


def request_bytes(
    method: str,
    target: str,
    host: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
) -> bytes:
    """A complete HTTP/1.1 request, built once and written as is for every send.

    Nothing that could end a line or a field reaches the head: a control character or a space
    in the target, or a control character in a header, is a ValueError (the replay parser
    refuses such lines first, naming them).
    """
    if not _TOKEN.match(method):
        raise ValueError(f"method {method!r} is not an HTTP method token")
    if not _TARGET.match(target):
        raise ValueError(
            f"request target {target[:80]!r} holds a space, a control character or non-ASCII"
        )
    lines = [f"{method} {target} HTTP/1.1"]
    names = set()
    for name, value in (headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        if not _TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if _CONTROL.search(value):
            raise ValueError(f"header {name!r} holds a control character")
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
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a header holds text outside Latin-1") from None
    return head + (body or b"")


class _Pending:
    __slots__ = ("callback", "connection", "context", "head", "payload", "timer", "written_at")

    def __init__(self, payload: bytes, callback: Callback, context: object) -> None:
        self.payload = payload
        self.head = payload.startswith(b"HEAD ")  # its answer has headers and no body
        self.callback = callback
        self.context = context
        self.connection: _Connection | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.written_at = 0.0

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
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the body does not end at EOF
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
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
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._complete(self.parser.get_status_code(), self.parser.should_keep_alive())

    def _complete(self, status: int, keep_alive: bool) -> None:
        pending = self.pending
        self.pending = None
        self.headers_done = self.framed = False
        body = b"".join(self.body) if self.body else b""
        self.body.clear()
        if pending is None:
            self.abort()  # a response nobody asked for: the stream is out of step
            return
        pending.finish(status, body, None)
        if keep_alive and not self.closed:
            self.pool._release(self)
        else:
            self.abort()

    # used by the pool
    def send(self, pending: _Pending) -> None:
        self.pending = pending
        pending.connection = self
        pending.written_at = perf_counter()
        self.transport.write(pending.payload)

    def _fail(self, kind: str) -> None:
        pending = self.pending
        if pending is not None:
            self.pending = None
            pending.finish(None, b"", kind)

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()


class HttpPool:
    """Up to `connections` keep-alive connections to one origin; extra requests wait in FIFO."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout: float,
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
            kind = (
                "connection_refused"
                if isinstance(exc, ConnectionRefusedError)
                else "timeout"
                if isinstance(exc, asyncio.TimeoutError)
                else "connect_error"
            )
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
