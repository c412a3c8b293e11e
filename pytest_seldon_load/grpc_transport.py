"""Open Inference Protocol calls over gRPC, with the same contract as the HTTP pool.

The engine hands over a payload prepared once per replay line (`oip_grpc.prepare`: the
serialized ModelInferRequest and its metadata) and a callback; `submit` never blocks. Calls
go through grpcio's asyncio API with no (de)serializers, so no protobuf object is built per
call: the request bytes are written as they are and the response bytes come back untouched
(benchmarks/grpc_clients.py measured this as the cheapest client; see BENCHMARKS.md).

How an outcome is reported (`on_done(context, status, body, error_kind, written_at,
done_at)`): `status` is the gRPC status code number (0 is OK), so `status_codes` counts calls
by code; `error_kind` names the failure:

* ``grpc_<CODE>`` for a status the server sent (``grpc_NOT_FOUND`` for an unknown model,
  ``grpc_INVALID_ARGUMENT``, ``grpc_UNIMPLEMENTED`` for a wrong service or route, ...);
* ``timeout`` when the call's deadline (the engine's timeout) passed: the same kind as an
  HTTP timeout, so the verdicts treat a slow answer alike whichever protocol carried it;
* ``grpc_unreachable`` when no connection could be made (refused, unknown host);
* ``grpc_not_http2`` when the port answers, but not with HTTP/2 (a plain HTTP/1.1 server);
* the close reason (``interrupted``, ``cancelled``) for calls still pending at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

try:
    import grpc
    import grpc.aio
except ImportError:  # pragma: no cover - depends on the installed extras
    raise ImportError("gRPC needs grpcio: pip install 'pytest-seldon-load[grpc]'") from None

from .oip_grpc import GrpcPayload, prepare
from .tls import TlsSettings

if TYPE_CHECKING:
    from .endpoint import SeldonEndpoint
    from .plan import EngineSettings
    from .replay import ReplayRequest

Callback = Callable[[object, "int | None", bytes, "str | None", float, float], None]
"""on_done(context, status, body, error_kind, written_at, done_at)."""

MAX_CHANNELS = 4
"""HTTP/2 multiplexes every call on one connection; a few spread the server's reading."""

_NOT_HTTP2 = re.compile(r"http1\.x server|failed parsing http/2", re.IGNORECASE)
"""grpcio's words when the port answers with something other than HTTP/2."""
_UNREACHABLE = re.compile(
    r"failed to connect|connection refused|errors resolving|lookup failed|unreachable",
    re.IGNORECASE,
)
"""grpcio's words when no connection could be made (refused, unknown host, no route)."""


def error_kind(code: grpc.StatusCode, details: str | None) -> str | None:
    """The error kind of a finished call; None for OK."""
    if code is grpc.StatusCode.OK:
        return None
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout"
    if code is grpc.StatusCode.UNAVAILABLE or code is grpc.StatusCode.INTERNAL:
        text = details or ""
        if _NOT_HTTP2.search(text):  # checked first: grpcio words it as a failed connect too
            return "grpc_not_http2"
        if _UNREACHABLE.search(text):
            return "grpc_unreachable"
    return f"grpc_{code.name}"


def judge(status: int, body: bytes) -> str | None:
    """The gRPC protocol's verdict on an answer the transport passed as a success."""
    return None if status == 0 else f"grpc_status_{status}"


def parse_target(url: str) -> tuple[str, bool]:
    """``grpc://host:port`` (or ``grpcs://`` for TLS) to grpcio's ``host:port`` and TLS flag."""
    parts = urlsplit(url)
    if parts.scheme not in ("grpc", "grpcs") or not parts.hostname:
        raise ValueError(f"cannot call {url!r}: need grpc://host:port (or grpcs:// for TLS)")
    if parts.path.strip("/") or parts.query:
        raise ValueError(f"{url!r}: a gRPC target has no path; the call names the service")
    tls = parts.scheme == "grpcs"
    port = parts.port or (443 if tls else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tls


class GrpcTransport:
    """A few channels to one gRPC server; every call carries the engine's timeout as deadline."""

    def __init__(
        self,
        target_url: str,
        *,
        connections: int,
        timeout: float,
        metadata: Mapping[str, str] | None = None,
        max_answer_bytes: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        tls: TlsSettings | None = None,
    ) -> None:
        target, secure = parse_target(target_url)
        self.timeout = timeout
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.loop = loop or asyncio.get_running_loop()
        channels = max(1, min(connections, MAX_CHANNELS))
        # A local subchannel pool gives each channel its own connection.
        options = [("grpc.use_local_subchannel_pool", 1)]
        if max_answer_bytes is not None:  # larger: RESOURCE_EXHAUSTED, as grpcio says it
            options.append(("grpc.max_receive_message_length", max_answer_bytes))
        if secure:
            # grpcs:// trusts the system's CAs unless --seldon-ca-bundle names others, and
            # shows --seldon-client-cert to a server that asks (as HTTP does)
            credentials = grpc.ssl_channel_credentials(*(tls or TlsSettings()).grpc_pem())
            self._channels = [
                grpc.aio.secure_channel(target, credentials, options=options)
                for _ in range(channels)
            ]
        else:
            self._channels = [
                grpc.aio.insecure_channel(target, options=options) for _ in range(channels)
            ]
        self._callables: dict[str, list[grpc.aio.UnaryUnaryMultiCallable]] = {}
        self._turn = 0
        self._pending: dict[asyncio.Task, tuple[Callback, object, float]] = {}
        self._closing: list[asyncio.Task] = []
        self._closed = False

    def _callables_for(self, method: str) -> list[grpc.aio.UnaryUnaryMultiCallable]:
        found = self._callables.get(method)
        if found is None:
            # No serializers: bytes in, bytes out.
            found = self._callables[method] = [c.unary_unary(method) for c in self._channels]
        return found

    def prepare(self, request: ReplayRequest) -> GrpcPayload:
        """A replay line as a ready call, with the endpoint's metadata (the line's wins)."""
        return prepare(request, self.metadata)

    def submit(self, payload: GrpcPayload, callback: Callback, context: object) -> None:
        """Start the call now; the callback reports its outcome on this loop."""
        callables = self._callables_for(payload.method)
        self._turn = turn = (self._turn + 1) % len(callables)
        written_at = perf_counter()
        if self._closed:
            callback(context, None, b"", "cancelled", written_at, written_at)
            return
        call = callables[turn](payload.message, timeout=self.timeout, metadata=payload.metadata)
        task = self.loop.create_task(self._finish(call, callback, context, written_at))
        self._pending[task] = (callback, context, written_at)

    async def _finish(
        self,
        call: grpc.aio.UnaryUnaryCall,
        callback: Callback,
        context: object,
        written_at: float,
    ) -> None:
        try:
            body = await call
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            status, body, kind = code.value[0], b"", error_kind(code, exc.details())
        except asyncio.CancelledError:
            call.cancel()
            return  # close() has reported it
        else:
            status, kind = 0, None
        self._pending.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
        callback(context, status, body or b"", kind, written_at, perf_counter())

    def close(self, reason: str = "cancelled") -> None:
        """Fail whatever is still pending with `reason`, and close every channel."""
        self._closed = True
        pending, self._pending = self._pending, {}
        for task, (callback, context, written_at) in pending.items():
            task.cancel()
            callback(context, None, b"", reason, written_at, perf_counter())
        self._closing = [self.loop.create_task(c.close()) for c in self._channels]

    async def wait_closed(self) -> None:
        """Let the channels finish closing (call after `close`, before the loop ends)."""
        if self._closing:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self._closing, return_exceptions=True)


def endpoint_transport(endpoint: SeldonEndpoint, settings: EngineSettings) -> GrpcTransport:
    """The ``grpc`` protocol's transport: `endpoint`'s headers go as metadata on every call.

    A grpcs:// target is trusted as an https one is (`TlsSettings`: a CA bundle, a client
    certificate; not `insecure`, which grpcio cannot do); an HTTP proxy cannot carry gRPC, so
    one given is refused rather than silently left out.
    """
    if settings.proxy is not None:
        raise ValueError("an HTTP proxy cannot carry gRPC calls; reach the gRPC port directly")
    return GrpcTransport(
        endpoint.base_url, metadata=endpoint.headers, **settings.connection_options()
    )
