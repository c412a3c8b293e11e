"""A lean HTTP/1.1 keep-alive connection pool for the engine's send loop.

The engine's CPU per request decides the highest rate one process can hold while sharing
the machine with the server under test. A general client (aiohttp's ClientSession: a task,
cookie and redirect handling, timeouts objects and tracing per request) costs ~150 µs of CPU
per request here; this pool writes prebuilt request bytes on a keep-alive connection, parses
the response with llhttp (through `httptools`) and reports back through a plain callback: no
task, no coroutine per request.

It does what a load generator needs and no more: HTTP/1.1 with Content-Length or chunked
bodies, keep-alive and ``Connection: close``, TLS (a CA bundle, a client certificate, or no
verification: see `tls`), an explicit HTTP proxy (see `proxy`), a per-request deadline, and
a FIFO of requests waiting for a free connection. No redirects, cookies or compression (the
requests do not ask for it).

Security costs nothing per request: the SSL context is built once per pool, a proxy's
absolute-form target and Proxy-Authorization go into the request bytes that `prepare` builds
once per replay line, and a CONNECT tunnel is opened once per connection.

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
import re
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

import httptools

from .proxy import HttpProxy, ProxyRefused
from .tls import TlsSettings

FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
"""Headers that frame the message on the wire: only the pool writes them."""
KEPT_BODY_BYTES = 64 * 1024
"""How much of an answer's body is kept for judging: Seldon's error bodies fit many times."""
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""An answer larger than this (head and body) is an error: `answer_too_large`."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_TARGET = re.compile(r"[\x21-\x7e]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

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
                if isinstance(exc, ssl.SSLError):
                    kind = "tls_error"  # e.g. TLS 1.3: a refused client certificate
                elif isinstance(exc, ConnectionResetError):
                    kind = "connection_reset"
                else:
                    kind = "server_disconnected"
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
    `tls` says how an https origin is trusted (the system's CAs by default); `proxy` is an
    explicit forward proxy (environment proxies are never used). Build each request's bytes
    once with `prepare`: it puts in what the proxy needs. `notes` says what a run's summary
    must show about how the target was reached (an unverified server, a proxy).
    """

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        timeout: float,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        on_retry: Callable[[Any], None] | None = None,
        tls: TlsSettings | None = None,
        proxy: HttpProxy | None = None,
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
        self.authority = f"{bracketed}:{self.port}"
        self.path_prefix = parts.path.rstrip("/")
        """What goes before each replay path in the request line: the origin too (absolute
        form) when a plain-http target is reached through a proxy."""
        self.extra_headers: dict[str, str] = {}
        """Headers `prepare` adds to every request (the proxy's credentials, in absolute form)."""
        self.proxy = proxy
        self._tunnel = proxy is not None and self.tls
        self._dial = (proxy.host, proxy.port) if proxy is not None else (self.host, self.port)
        if proxy is not None and not self.tls:
            self.path_prefix = f"http://{self.host_header}{self.path_prefix}"
            if proxy.authorization:
                self.extra_headers["Proxy-Authorization"] = proxy.authorization
        self.connections = connections
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.on_retry = on_retry
        self.retries = 0
        self.loop = loop or asyncio.get_running_loop()
        self.tls_settings = tls or TlsSettings()
        self._ssl = self.tls_settings.ssl_context() if self.tls else None
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._opening = 0
        self._connecting: set[asyncio.Task] = set()  # cancelled by close()
        self._waiting: deque[_Pending] = deque()
        self._closed = False

    @property
    def notes(self) -> list[str]:
        """How the target was reached, for the run's summary: said loudly when unverified."""
        notes = list(self.tls_settings.notes) if self.tls else []
        if self.proxy is not None:
            notes.append(f"through the proxy {self.proxy}")
        return notes

    def request_payload(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> bytes:
        """One request to `path` (below the base URL) as the bytes `submit` takes."""
        if self.extra_headers:
            headers = {**self.extra_headers, **(headers or {})}
        return request_bytes(method, self.path_prefix + path, self.host_header, headers, body)

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
        task = self.loop.create_task(self._connect())
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _open(self) -> _Connection:
        """A new connection to the origin: direct, through the proxy, or tunnelled by it."""
        host, port = self._dial
        if not self._tunnel:
            _, connection = await self.loop.create_connection(
                lambda: _Connection(self),
                host,
                port,
                ssl=self._ssl,
            )
            return connection
        assert self.proxy is not None and self._ssl is not None  # tunnels are for https
        transport, tunnel = await self.loop.create_connection(
            lambda: _Tunnel(self.loop), host, port
        )
        try:
            transport.write(self.proxy.connect_request(self.authority))
            await tunnel.established
            connection = _Connection(self)
            secured = await self.loop.start_tls(
                transport, connection, self._ssl, server_hostname=self.host
            )
        except BaseException:
            tunnel.established.cancel()  # nobody waits for it any more
            transport.abort()
            raise
        if secured is None:  # the proxy closed the tunnel during the handshake
            raise ConnectionResetError("the tunnel closed during the TLS handshake")
        connection.connection_made(secured)
        return connection

    async def _connect(self) -> None:
        try:
            connection = await asyncio.wait_for(self._open(), self.timeout)
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
        for task in self._connecting:
            task.cancel()  # a connection (or a proxy tunnel) still opening

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
            await asyncio.gather(*self._connecting, return_exceptions=True)


class _Tunnel(asyncio.Protocol):
    """A connection to the proxy until it answers our CONNECT; then TLS takes it over."""

    MAX_ANSWER_HEAD = 16 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.established: asyncio.Future[None] = loop.create_future()
        self.received = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.established.done():
            return
        self.received += data
        end = self.received.find(b"\r\n\r\n")
        if end < 0:
            if len(self.received) > self.MAX_ANSWER_HEAD:
                self.established.set_exception(ProxyRefused("the proxy's answer has no end"))
            return
        status_line = bytes(self.received[: self.received.find(b"\r\n")])
        fields = status_line.split(None, 2)
        status = fields[1] if len(fields) > 1 and fields[0].startswith(b"HTTP/1.") else b""
        if not (status.isdigit() and status.startswith(b"2")):
            shown = status_line[:80].decode("latin-1")
            self.established.set_exception(ProxyRefused(f"the proxy refused: {shown}"))
        elif end + 4 < len(self.received):
            self.established.set_exception(ProxyRefused("the proxy spoke before the TLS start"))
        else:
            self.established.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.established.done():
            self.established.set_exception(
                exc or ConnectionResetError("the proxy closed before answering CONNECT")
            )


def _connect_error_kind(exc: BaseException) -> str:
    """The error kind of a connection that could not be opened."""
    if isinstance(exc, ProxyRefused):
        return "proxy_error"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "dns_error"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    return "connect_error"
