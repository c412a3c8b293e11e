"""A stand-in for Seldon Core 2's mesh (``svc/seldon-mesh``), on loopback, for the emulated
cluster: it routes ONLY by the ``Seldon-Model`` header, as Core 2's Envoy does.

A request whose header names a ready route (``iris``, ``iris-pipeline.pipeline``,
``split.experiment``) goes to the local model server's one model; any other request, and one
that carries ``x-seldon-route`` (Core 2's routes match only without it), is answered 404.
Answers carry ``x-seldon-route`` as Core 2's do. `seen` counts (route, path) pairs, so tests
can tell which header and path arrived.

Given `grpc_upstream` (a ``grpc://`` model server), the same port also serves gRPC, as Core 2's
Envoy does: a connection that opens with the HTTP/2 preface goes to a gRPC stand-in that routes
by ``seldon-model`` metadata the same way and forwards ModelInfer calls (their model name set to
the upstream's model) to the upstream.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from typing import Any

ROUTE_HEADER = "Seldon-Model"
PIN_HEADER = "x-seldon-route"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


class StandInMesh:
    """Serves on 127.0.0.1 from a background thread; forwards to `upstream`'s `model`."""

    def __init__(
        self, upstream: str, model: str = "iris", grpc_upstream: str | None = None
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.model = model
        self.grpc_upstream = grpc_upstream
        self.port = 0
        self.routes: set[str] = set()
        self.seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_routes(self, routes: set[str]) -> None:
        with self._lock:
            self.routes = set(routes)

    def add_route(self, route: str) -> None:
        with self._lock:
            self.routes.add(route)

    def start(self) -> StandInMesh:
        self._thread = threading.Thread(target=self._serve, name="stand-in-mesh", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stand-in mesh did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> StandInMesh:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self) -> None:
        from aiohttp import ClientSession, ClientTimeout, web

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            route = request.headers.get(ROUTE_HEADER, "")
            with self._lock:
                self.seen[(route, request.path)] += 1
                known = route in self.routes
            if not known or PIN_HEADER in request.headers:
                return web.Response(status=404, text=f"no route for {ROUTE_HEADER}: {route!r}\n")
            action = request.path.rstrip("/").rpartition("/")[2]
            if action not in ("infer", "ready"):
                return web.Response(status=404, text=f"no route for path {request.path}\n")
            target = f"{self.upstream}/v2/models/{self.model}/{action}"
            assert session is not None
            async with session.request(
                request.method,
                target,
                data=body,
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            ) as answer:
                payload = await answer.read()
                return web.Response(
                    status=answer.status,
                    body=payload,
                    headers={
                        "Content-Type": answer.headers.get("Content-Type", "application/json"),
                        PIN_HEADER: f":{self.model}_1:",
                    },
                )

        session: ClientSession | None = None
        loop = self._loop = asyncio.new_event_loop()

        async def main() -> None:
            nonlocal session
            self._stop = asyncio.Event()
            session = ClientSession(timeout=ClientTimeout(total=30))
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", forward)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
            await runner.setup()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            http_port = int(listener.getsockname()[1])
            await web.SockSite(runner, listener, backlog=512).start()
            grpc_server = front = None
            if self.grpc_upstream is None:
                self.port = http_port
            else:
                grpc_server, grpc_port = await self._start_grpc()
                front = await self._start_front(http_port, grpc_port)
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                if front is not None:
                    front.close()
                if grpc_server is not None:
                    await grpc_server.stop(0.2)
                await session.close()
                await runner.cleanup()

        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported to the thread that started us
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    # --- gRPC on the same port ------------------------------------------------------------
    async def _start_grpc(self) -> tuple[Any, int]:
        """A grpc.aio server routing by `seldon-model` metadata, and its port."""
        import grpc
        import grpc.aio

        from pytest_seldon_load.oip_grpc import model_infer_request_class

        assert self.grpc_upstream is not None
        channel = grpc.aio.insecure_channel(self.grpc_upstream.removeprefix("grpc://"))
        request_class = model_infer_request_class()

        def handler(details):
            method = details.method
            metadata = {k: v for k, v in details.invocation_metadata or ()}
            route = str(metadata.get(ROUTE_HEADER.lower(), ""))

            async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                with self._lock:
                    self.seen[(route, method)] += 1
                    known = route in self.routes
                if not known or PIN_HEADER in metadata:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"no route for {route!r}")
                if method != MODEL_INFER:
                    await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not served")
                call = request_class.FromString(request)
                call.model_name = self.model
                await context.send_initial_metadata(((PIN_HEADER, f":{self.model}_1:"),))
                return await channel.unary_unary(method)(call.SerializeToString(), timeout=30)

            return grpc.unary_unary_rpc_method_handler(forward)

        class Routes(grpc.GenericRpcHandler):
            def service(self, details):
                return handler(details)

        server = grpc.aio.server()
        server.add_generic_rpc_handlers((Routes(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    async def _start_front(self, http_port: int, grpc_port: int) -> asyncio.AbstractServer:
        """The public port: a connection opening with the HTTP/2 preface is gRPC's, any other
        the HTTP stand-in's; bytes are piped both ways until either side closes."""

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while chunk := await reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readexactly(len(HTTP2_PREFACE))
            except asyncio.IncompleteReadError as short:
                head = short.partial
            port = grpc_port if head == HTTP2_PREFACE else http_port
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.close()
                return
            up_writer.write(head)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        front = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = int(front.sockets[0].getsockname()[1])
        return front
