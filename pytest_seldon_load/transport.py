"""What carries the engine's requests: prepare each replay request once, then submit it.

The engine knows nothing of the wire. A protocol names the transport that carries it (the
HTTP/1.1 pool for Seldon's HTTP protocols; a gRPC channel would be another), and the engine
asks it for three things only:

* ``prepare(request)``: a replay request as a ready-to-send payload, built once per request
  of the replay (not once per send: a cached replay is prepared once and looped);
* ``submit(payload, callback, context)``: send now, or as soon as a connection is free, and
  call ``callback(context, status, body, error_kind, written_at, done_at)`` exactly once;
* ``close(reason)``: fail whatever is still pending with `reason` and let go of connections;
  then ``await wait_closed()`` before the event loop ends.

The engine binds ``submit`` once, so a transport adds no call per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .http_pool import HttpPool
from .replay import GRPC_METHOD, NEVER_REPLAYED

if TYPE_CHECKING:
    from .endpoint import SeldonEndpoint
    from .engine import EngineSettings
    from .replay import ReplayRequest


Callback = Callable[[Any, "int | None", bytes, "str | None", float, float], None]
"""on_done(context, status, body, error_kind, written_at, done_at): once per submitted payload;
a status whenever there is no error kind."""


class Transport(Protocol):
    """A carrier of prepared requests to one endpoint, driven from the run's event loop."""

    def prepare(self, request: ReplayRequest) -> Any:
        """The request as this transport sends it; raises ValueError for what it cannot."""
        ...

    def submit(self, payload: Any, callback: Callback, context: object) -> None: ...

    def close(self, reason: str) -> None: ...

    async def wait_closed(self) -> None:
        """Let go of what `close` started closing (awaited before the run's loop ends)."""
        ...


TransportFactory = Callable[["SeldonEndpoint", "EngineSettings"], Transport]
"""How a protocol builds its transport for an endpoint, inside the run's event loop."""


class HttpTransport(HttpPool):
    """The HTTP/1.1 keep-alive pool, sending prebuilt request bytes with the endpoint's headers.

    A replay line's header replaces an endpoint header of the same name (in any case): the
    line is the more specific of the two. Headers in `replay.NEVER_REPLAYED` (a mesh's route
    pin) are dropped from both. A gRPC line is refused: its protocol is ``grpc``.
    """

    def __init__(self, endpoint: SeldonEndpoint, settings: EngineSettings) -> None:
        super().__init__(endpoint.base_url, proxy=settings.proxy, **settings.connection_options())
        self.endpoint_headers: Mapping[str, str] = {
            k: v for k, v in endpoint.headers.items() if k.lower() not in NEVER_REPLAYED
        }

    def prepare(self, request: ReplayRequest) -> bytes:
        if request.method == GRPC_METHOD:
            raise ValueError(
                f"line {request.line_number}: a gRPC call cannot go over HTTP; "
                "run a gRPC replay with protocol grpc and a grpc://HOST:PORT endpoint"
            )
        headers = self.endpoint_headers
        if request.headers:
            given = {name.lower() for name, _ in request.headers}
            merged = {k: v for k, v in headers.items() if k.lower() not in given}
            merged.update((k, v) for k, v in request.headers if k.lower() not in NEVER_REPLAYED)
            headers = merged
        return self.request_payload(request.method, request.path, headers, request.body)


def http_transport(endpoint: SeldonEndpoint, settings: EngineSettings) -> Transport:
    """The transport of Seldon's HTTP protocols (v2, v1, legacy)."""
    return HttpTransport(endpoint, settings)
