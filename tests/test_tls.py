"""Secured ingresses: TLS with a CA made here, mTLS, no verification, a forward proxy (plain
and CONNECT) and a bearer token, each against real servers on 127.0.0.1 started by the test."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import queue
import select
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme
from aiohttp import web
from servers import V2_OK, ServerThread, json_response

from pytest_seldon_load import HttpProxy, SeldonEndpoint, TlsSettings, bearer_headers, run_load
from pytest_seldon_load.http_pool import HttpPool
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.redact import redact_text
from pytest_seldon_load.replay import write_replay
from pytest_seldon_load.tls import INSECURE_NOTE, InsecureTlsWarning, TlsSettingsError

REQUESTS = 24
INFER_PATH = "/v2/models/iris/infer"
BODY = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'
TOKEN = "tok-3f9a1c77e2b54d0e8f61"


# --- certificates ------------------------------------------------------------------------
@dataclass
class Pki:
    """A CA made for the test, the server's certificate, and a client's, written as PEM files."""

    ca: trustme.CA
    server: trustme.LeafCert
    ca_file: str
    client_cert: str
    client_key: str
    other_key: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("load-client@example.test")
    other = ca.issue_cert("someone-else@example.test")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    other.private_key_pem.write_to_path(str(folder / "other.key"))
    return Pki(
        ca,
        server,
        str(folder / "ca.pem"),
        str(folder / "client.pem"),
        str(folder / "client.key"),
        str(folder / "other.key"),
    )


def server_context(pki: Pki, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.server.configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        pki.ca.configure_trust(context)
    return context


# --- servers -----------------------------------------------------------------------------
@dataclass
class Seen:
    """What the target saw of each request."""

    paths: list[str] = field(default_factory=list)
    secure: list[bool] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)
    hosts: list[str | None] = field(default_factory=list)
    client_subjects: list[object] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.paths.append(request.raw_path)
        self.secure.append(request.transport.get_extra_info("sslcontext") is not None)
        self.authorization.append(request.headers.get("Authorization"))
        self.hosts.append(request.headers.get("Host"))
        self.client_subjects.append(request.transport.get_extra_info("peercert"))
        return json_response(V2_OK)


@contextlib.asynccontextmanager
async def target(handler, context: ssl.SSLContext | None = None):
    """An aiohttp server on 127.0.0.1, TLS when `context` is given; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class ForwardProxy:
    """A small forward proxy: absolute-form requests for http, CONNECT tunnels for https.

    It records each request line (or CONNECT), the Proxy-Authorization it was given, and the
    bytes it carried through tunnels; with `credentials` it answers 407 to anyone without them.
    """

    credentials: str | None = None
    request_lines: list[str] = field(default_factory=list)
    proxy_authorization: list[str | None] = field(default_factory=list)
    tunnelled: bytearray = field(default_factory=bytearray)
    port: int = 0

    @property
    def url(self) -> str:
        userinfo = f"{self.credentials}@" if self.credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}"

    async def __aenter__(self) -> ForwardProxy:
        self._tasks: set[asyncio.Task] = set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:] if line)
                self.request_lines.append(lines[0])
                self.proxy_authorization.append(headers.get("Proxy-Authorization"))
                if not self._authorized(headers.get("Proxy-Authorization")):
                    writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                    await writer.drain()
                    return
                method, target_, version = lines[0].split(" ")
                if method == "CONNECT":
                    host, port = target_.rsplit(":", 1)
                    up_reader, upstream = await asyncio.open_connection(host, int(port))
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    await asyncio.gather(
                        self._pump(reader, upstream, record=True), self._pump(up_reader, writer)
                    )
                    return
                parts = urlsplit(target_)
                if upstream is None:
                    up_reader, upstream = await asyncio.open_connection(parts.hostname, parts.port)
                    self._spawn(self._pump(up_reader, writer))
                length = int(headers.get("Content-Length", "0"))
                body = await reader.readexactly(length) if length else b""
                kept = [f"{h}: {v}" for h, v in headers.items() if h != "Proxy-Authorization"]
                origin_form = f"{method} {parts.path} {version}"
                upstream.write("\r\n".join([origin_form, *kept, "", ""]).encode("latin-1") + body)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if upstream is not None:
                upstream.transport.abort()
            writer.transport.abort()
            self._tasks.discard(task)

    def _authorized(self, given: str | None) -> bool:
        if self.credentials is None:
            return True
        return given == "Basic " + base64.b64encode(self.credentials.encode()).decode()

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool = False
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if record:
                    self.tunnelled += data
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


# --- running -----------------------------------------------------------------------------
@dataclass
class Outcome:
    statuses: list[int | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)


async def send(
    pool: HttpPool, count: int = REQUESTS, headers: dict[str, str] | None = None
) -> Outcome:
    """Send `count` prepared POSTs through `pool` and wait for every answer (or error)."""
    outcome = Outcome()
    done = asyncio.Event()
    payload = pool.request_payload("POST", INFER_PATH, headers, BODY)

    def on_done(_context, status, _body, error, _written, _done) -> None:
        outcome.statuses.append(status)
        outcome.errors.append(error)
        if len(outcome.statuses) == count:
            done.set()

    for index in range(count):
        pool.submit(payload, on_done, index)
    await asyncio.wait_for(done.wait(), 10)
    return outcome


def run(scenario: Callable[[], Awaitable[None]], loop_factory=None) -> None:
    """Run `scenario` on a fresh loop; fail on anything the loop reports as unhandled."""
    loop = (loop_factory or asyncio.new_event_loop)()
    unhandled: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        loop.run_until_complete(asyncio.wait_for(scenario(), 20))
    finally:
        loop.close()
    assert unhandled == []


@contextlib.contextmanager
def served_from_a_thread(handler, context: ssl.SSLContext | None = None):
    """`target` on a loop of its own thread, for runs that block the test's thread."""
    loop = asyncio.new_event_loop()
    ready: queue.Queue[str | BaseException] = queue.Queue()
    stop = loop.create_future()

    async def serve() -> None:
        try:
            async with target(handler, context) as url:
                ready.put(url)
                await stop
        except BaseException as exc:
            ready.put(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started = ready.get(timeout=10)
    if isinstance(started, BaseException):
        raise started
    try:
        yield started
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        loop.close()


def loop_factories() -> list:
    """The stock asyncio loop, and uvloop (what the engine runs on) when installed."""
    factories = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    with contextlib.suppress(ImportError):
        import uvloop

        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


def pool(url: str, **kwargs) -> HttpPool:
    return HttpPool(url, connections=4, timeout=3.0, **kwargs)


# --- TLS ---------------------------------------------------------------------------------
def test_verified_tls_with_the_ca_bundle_succeeds(pki):
    seen = Seen()

    async def scenario() -> None:
        async with target(seen.handle, server_context(pki)) as url:
            connections = pool(url, tls=TlsSettings(ca_bundle=pki.ca_file))
            outcome = await send(connections)
            connections.close()
            await connections.wait_closed()
            assert connections.notes == []
        assert outcome.errors == [None] * REQUESTS
        assert outcome.statuses == [200] * REQUESTS

    run(scenario)
    assert seen.paths == [INFER_PATH] * REQUESTS
    assert all(seen.secure)


def test_a_server_the_system_cas_do_not_trust_is_a_tls_error(pki):
    seen = Seen()

    async def scenario() -> None:
        async with target(seen.handle, server_context(pki)) as url:
            connections = pool(url)
            outcome = await send(connections)
            connections.close()
            await connections.wait_closed()
        assert outcome.errors == ["tls_error"] * REQUESTS
        assert outcome.statuses == [None] * REQUESTS

    run(scenario)
    assert seen.paths == []


def test_a_run_without_the_ca_bundle_counts_tls_errors(pki, tmp_path):
    replay = write_replay(tmp_path / "v2.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])])
    seen = Seen()
    with served_from_a_thread(seen.handle, server_context(pki)) as url:
        result = run_load(SeldonEndpoint(url), replay, rate=20, duration=1)
    assert result.requests == 20
    assert result.error_kinds == {"tls_error": 20}
    assert result.status_codes == {}
    assert seen.paths == []


def test_insecure_mode_reaches_an_untrusted_server_and_says_so_loudly(pki):
    seen = Seen()

    async def scenario() -> None:
        async with target(seen.handle, server_context(pki)) as url:
            with pytest.warns(InsecureTlsWarning, match="verification was OFF"):
                connections = pool(url, tls=TlsSettings(insecure=True))
            outcome = await send(connections)
            connections.close()
            await connections.wait_closed()
            assert connections.notes == [INSECURE_NOTE]
        assert outcome.statuses == [200] * REQUESTS

    run(scenario)
    assert len(seen.paths) == REQUESTS


# --- mTLS --------------------------------------------------------------------------------
def test_a_server_requiring_client_certificates_accepts_ours(pki):
    seen = Seen()
    settings = TlsSettings(
        ca_bundle=pki.ca_file, client_cert=pki.client_cert, client_key=pki.client_key
    )

    async def scenario() -> None:
        async with target(seen.handle, server_context(pki, require_client_cert=True)) as url:
            connections = pool(url, tls=settings)
            outcome = await send(connections)
            connections.close()
            await connections.wait_closed()
        assert outcome.statuses == [200] * REQUESTS

    run(scenario)
    assert len(seen.client_subjects) == REQUESTS
    subjects = {str(subject) for subject in seen.client_subjects}
    assert len(subjects) == 1
    assert "load-client@example.test" in subjects.pop()


def test_a_server_requiring_client_certificates_refuses_a_run_without_one(pki):
    async def scenario() -> None:
        with CertificateGate(server_context(pki, require_client_cert=True)) as gate:
            connections = pool(gate.url, tls=TlsSettings(ca_bundle=pki.ca_file))
            outcome = await send(connections, count=8)
            connections.close()
            await connections.wait_closed()
            assert gate.admitted == 0
            assert gate.refused >= 1
        assert outcome.statuses == [None] * 8
        assert outcome.errors == ["tls_error"] * 8

    run(scenario)


class CertificateGate:
    """A TLS server on 127.0.0.1 that only completes handshakes, the way a TLS-terminating
    ingress does: a refused client gets the TLS alert, and the connection stays open until the
    client closes it (no reset racing the alert)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.admitted = 0
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> CertificateGate:
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handshake, args=(raw,), daemon=True).start()

    def _handshake(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        with tls:
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError):
                self.refused += 1
                with contextlib.suppress(OSError):
                    while not self._stop.is_set():
                        if select.select([tls], [], [], 0.1)[0] and not os.read(
                            tls.fileno(), 65536
                        ):
                            break  # the client closed
                return
            self.admitted += 1


# --- the proxy ---------------------------------------------------------------------------
def test_plain_http_goes_through_the_proxy_in_absolute_form_with_its_credentials():
    seen = Seen()

    async def scenario() -> None:
        async with target(seen.handle) as url, ForwardProxy("load:s3cr3t-pw") as proxy:
            connections = pool(url + "/seldon/ns/iris", proxy=HttpProxy(proxy.url))
            outcome = await send(connections)
            connections.close()
            await connections.wait_closed()
            assert connections.notes == [f"through the proxy http://***@127.0.0.1:{proxy.port}"]
            authority = urlsplit(url).netloc
            expected_line = f"POST http://{authority}/seldon/ns/iris{INFER_PATH} HTTP/1.1"
            assert proxy.request_lines == [expected_line] * REQUESTS
            credentials = "Basic " + base64.b64encode(b"load:s3cr3t-pw").decode()
            assert proxy.proxy_authorization == [credentials] * REQUESTS
            assert seen.hosts == [authority] * REQUESTS
        assert outcome.statuses == [200] * REQUESTS

    run(scenario)
    assert seen.paths == [f"/seldon/ns/iris{INFER_PATH}"] * REQUESTS


@pytest.mark.parametrize("loop_factory", loop_factories())
def test_https_goes_through_a_connect_tunnel_with_tls_end_to_end(pki, loop_factory):
    seen = Seen()

    async def scenario() -> None:
        async with target(seen.handle, server_context(pki)) as url, ForwardProxy() as proxy:
            connections = pool(
                url, tls=TlsSettings(ca_bundle=pki.ca_file), proxy=HttpProxy(proxy.url)
            )
            outcome = await send(connections, headers={"Authorization": f"Bearer {TOKEN}"})
            connections.close()
            await connections.wait_closed()
            assert outcome.statuses == [200] * REQUESTS
            authority = urlsplit(url).netloc
            # One CONNECT per connection opened, never more than the pool's size.
            assert 1 <= len(proxy.request_lines) <= 4
            assert set(proxy.request_lines) == {f"CONNECT {authority} HTTP/1.1"}
            assert proxy.tunnelled  # the requests went through the tunnel ...
            assert INFER_PATH.encode() not in proxy.tunnelled  # ... encrypted
            assert TOKEN.encode() not in proxy.tunnelled

    run(scenario, loop_factory)
    assert seen.paths == [INFER_PATH] * REQUESTS
    assert all(seen.secure)
    assert seen.authorization == [f"Bearer {TOKEN}"] * REQUESTS


def test_a_proxy_refusing_the_tunnel_is_a_proxy_error(pki):
    seen = Seen()

    async def scenario() -> None:
        async with target(seen.handle, server_context(pki)) as url, ForwardProxy("u:p") as proxy:
            # The proxy wants credentials; these are not given.
            without = HttpProxy(f"http://127.0.0.1:{proxy.port}")
            connections = pool(url, tls=TlsSettings(ca_bundle=pki.ca_file), proxy=without)
            outcome = await send(connections, count=6)
            connections.close()
            await connections.wait_closed()
            assert proxy.proxy_authorization and set(proxy.proxy_authorization) == {None}
        assert outcome.errors == ["proxy_error"] * 6

    run(scenario)
    assert seen.paths == []


def test_proxy_urls_are_checked_and_never_shown_with_their_password():
    with pytest.raises(ValueError, match="only http:// proxies") as caught:
        HttpProxy("https://user:hunter2-pw@proxy.example:3128")
    assert "hunter2-pw" not in str(caught.value)
    with pytest.raises(ValueError, match=r"--seldon-proxy.*host:port"):
        HttpProxy("http://proxy.example")
    with pytest.raises(ValueError, match="no path"):
        HttpProxy("http://proxy.example:3128/some/path")
    proxy = HttpProxy("http://user:hunter2-pw@proxy.example:3128")
    assert (proxy.host, proxy.port) == ("proxy.example", 3128)
    for shown in (str(proxy), repr(proxy), redact_text(f"failed: {proxy.authorization}")):
        assert "hunter2-pw" not in shown
        assert base64.b64encode(b"user:hunter2-pw").decode() not in shown


# --- the bearer token --------------------------------------------------------------------
def test_the_token_reaches_the_server_and_no_output(tmp_path):
    replay = write_replay(tmp_path / "v2.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])])
    seen = Seen()
    headers = bearer_headers("LOAD_TEST_TOKEN", environ={"LOAD_TEST_TOKEN": f"  {TOKEN}\n"})
    with ServerThread(seen.handle) as server:
        endpoint = SeldonEndpoint(server.url, headers=headers)
        result = run_load(endpoint, replay, rate=20, duration=1)
        # The same endpoint against a port nothing listens on: every request an error.
        failed = run_load(
            SeldonEndpoint("http://127.0.0.1:9", headers=headers), replay, rate=5, duration=1
        )
    assert result.ok == 20
    assert seen.authorization == [f"Bearer {TOKEN}"] * 20
    assert failed.errors == 5
    for shown in (
        result.to_json(),
        failed.to_json(),
        json.dumps(result.summary()),
        repr(endpoint),
        str(endpoint),
        redact_text(f"request failed with headers {dict(endpoint.headers)}"),
    ):
        assert TOKEN not in shown


def test_a_missing_token_variable_is_named_and_no_value_is_shown():
    with pytest.raises(ValueError, match="--seldon-token-env: the environment variable NO_SUCH"):
        bearer_headers("NO_SUCH", environ={})
    with pytest.raises(ValueError, match="not set or empty"):
        bearer_headers("EMPTY", environ={"EMPTY": "  "})
    with pytest.raises(ValueError, match="not an environment variable name"):
        bearer_headers("Bearer abc.def", environ={})
    with pytest.raises(ValueError, match="line break") as caught:
        bearer_headers("TWO_LINES", environ={"TWO_LINES": "first-half\nsecond-half"})
    assert "first-half" not in str(caught.value)
    assert bearer_headers("T", environ={"T": "abc.def"}) == {"Authorization": "Bearer abc.def"}


# --- bad input ---------------------------------------------------------------------------
def test_a_missing_ca_bundle_names_the_option_and_the_path(tmp_path):
    missing = str(tmp_path / "nowhere" / "ca.pem")
    with pytest.raises(TlsSettingsError) as caught:
        TlsSettings(ca_bundle=missing).ssl_context()
    assert "--seldon-ca-bundle" in str(caught.value)
    assert missing in str(caught.value)
    assert "no such file" in str(caught.value)


def test_a_ca_bundle_that_holds_no_certificate_is_refused(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("this is not a certificate\n")
    with pytest.raises(TlsSettingsError, match=r"--seldon-ca-bundle.*no usable CA certificate"):
        TlsSettings(ca_bundle=str(junk)).ssl_context()


def test_a_key_that_does_not_match_the_certificate_names_both(pki):
    settings = TlsSettings(client_cert=pki.client_cert, client_key=pki.other_key)
    with pytest.raises(TlsSettingsError, match="does not match the certificate") as caught:
        settings.ssl_context()
    message = str(caught.value)
    assert "--seldon-client-key" in message and pki.other_key in message
    assert "--seldon-client-cert" in message and pki.client_cert in message


def test_a_missing_client_key_file_is_named(pki, tmp_path):
    missing = str(tmp_path / "client.key")
    with pytest.raises(TlsSettingsError, match=r"--seldon-client-key.*no such file") as caught:
        TlsSettings(client_cert=pki.client_cert, client_key=missing).ssl_context()
    assert missing in str(caught.value)


def test_a_directory_given_as_the_client_certificate_is_named(tmp_path):
    with pytest.raises(TlsSettingsError, match=r"--seldon-client-cert.*is a directory"):
        TlsSettings(client_cert=str(tmp_path)).ssl_context()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_an_unreadable_ca_bundle_is_named(pki, tmp_path):
    locked = tmp_path / "ca.pem"
    locked.write_bytes(Path(pki.ca_file).read_bytes())
    locked.chmod(0)
    with pytest.raises(TlsSettingsError, match=r"--seldon-ca-bundle: cannot read"):
        TlsSettings(ca_bundle=str(locked)).ssl_context()


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(Path(pki.client_key).read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    settings = TlsSettings(client_cert=pki.client_cert, client_key=str(encrypted))
    with pytest.raises(TlsSettingsError, match=r"--seldon-client-key.*is encrypted"):
        settings.ssl_context()


def test_contradicting_settings_are_refused_at_once(pki):
    with pytest.raises(TlsSettingsError, match=r"client_key .* without client_cert"):
        TlsSettings(client_key=pki.client_key)
    with pytest.raises(TlsSettingsError, match="contradict"):
        TlsSettings(ca_bundle=pki.ca_file, insecure=True)


# --- the pytest options ------------------------------------------------------------------
SECURED_SUITE = """
import pytest

@pytest.mark.load(rate=20, duration="1s", budgets={"error_rate": 0})
def test_secured(load_run, seldon_endpoint, replay_file):
    features = [{"name": f"x{i}", "type": "numeric", "min": 0, "max": 1} for i in range(4)]
    replay = replay_file.prediction(seldon_endpoint, features)
    result = load_run(seldon_endpoint, replay)
    print("ERROR-KINDS", dict(result.error_kinds))
"""


def test_the_options_reach_a_tls_target_with_a_ca_bundle_and_a_bearer_token(
    pki, pytester, monkeypatch
):
    seen = Seen()
    pytester.makepyfile(SECURED_SUITE)
    monkeypatch.setenv("INGRESS_TOKEN", TOKEN)
    with served_from_a_thread(seen.handle, server_context(pki)) as url:
        result = pytester.runpytest(
            "-p",
            "no:cacheprovider",
            "-s",
            f"--seldon-url={url}",
            f"--seldon-ca-bundle={pki.ca_file}",
            "--seldon-token-env=INGRESS_TOKEN",
        )
    result.assert_outcomes(passed=1)
    assert seen.paths and all(seen.secure)
    assert set(seen.authorization) == {f"Bearer {TOKEN}"}
    assert TOKEN not in result.stdout.str() + result.stderr.str()


def test_the_options_without_the_ca_bundle_fail_the_budget_on_tls_errors(pki, pytester):
    seen = Seen()
    pytester.makepyfile(SECURED_SUITE)
    with served_from_a_thread(seen.handle, server_context(pki)) as url:
        result = pytester.runpytest("-p", "no:cacheprovider", "-s", f"--seldon-url={url}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ERROR-KINDS {'tls_error': 20}*"])
    assert seen.paths == []


def test_client_certificate_options_in_an_ini_file_pass_a_mtls_gate(pki, pytester):
    seen = Seen()
    pytester.makepyfile(SECURED_SUITE)
    pytester.makeini(
        f"[pytest]\nseldon_ca_bundle = {pki.ca_file}\nseldon_client_cert = {pki.client_cert}\n"
        f"seldon_client_key = {pki.client_key}\n"
    )
    with served_from_a_thread(seen.handle, server_context(pki, require_client_cert=True)) as url:
        result = pytester.runpytest("-p", "no:cacheprovider", "-s", f"--seldon-url={url}")
    result.assert_outcomes(passed=1)
    assert seen.client_subjects and all(seen.client_subjects)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--seldon-client-key=k.pem"], "*--seldon-client-key*without*--seldon-client-cert*"),
        (["--seldon-token-env=NOT_SET_ANYWHERE"], "*--seldon-token-env*NOT_SET_ANYWHERE*not set*"),
        (["--seldon-proxy=https://proxy:3128"], "*--seldon-proxy*only http:// proxies*"),
        (["--seldon-insecure", "--seldon-ca-bundle=ca.pem"], "*--seldon-insecure*contradict*"),
    ],
)
def test_a_contradictory_secured_option_is_a_usage_error_naming_it(pytester, arguments, message):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *arguments)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
