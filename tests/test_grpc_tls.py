"""grpcs:// trusted as https is: a CA bundle, a client certificate (mTLS, the key in its own file
or beside the certificate), against real TLS gRPC servers on 127.0.0.1 signed by a test CA;
what grpcio cannot do (skip verification, read a CA directory) is refused by option name."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")
trustme = pytest.importorskip("trustme")

from pytest_seldon_load.endpoint import SeldonEndpoint  # noqa: E402
from pytest_seldon_load.engine import run_load  # noqa: E402
from pytest_seldon_load.generate import write_prediction_replay  # noqa: E402
from pytest_seldon_load.plan import EngineSettings  # noqa: E402
from pytest_seldon_load.tls import TlsSettings, TlsSettingsError  # noqa: E402

IRIS = [
    {"name": name, "type": "numeric", "min": 0.1, "max": 7.9}
    for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
]


class Answer(grpc.GenericRpcHandler):
    """Answers every call with an empty message (a valid ModelInferResponse)."""

    def __init__(self) -> None:
        self.calls = 0

    def service(self, details):
        def answer(request: bytes, context) -> bytes:
            self.calls += 1
            return b""

        return grpc.unary_unary_rpc_method_handler(answer)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grpc-pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("load-client@example.test")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    client.private_key_and_cert_chain_pem.write_to_path(str(folder / "client-both.pem"))
    return ca, server, folder


@contextlib.contextmanager
def tls_server(pki, *, require_client_cert: bool = False) -> Iterator[tuple[str, Answer]]:
    ca, server, _ = pki
    credentials = grpc.ssl_server_credentials(
        [(server.private_key_pem.bytes(), b"".join(p.bytes() for p in server.cert_chain_pems))],
        root_certificates=ca.cert_pem.bytes() if require_client_cert else None,
        require_client_auth=require_client_cert,
    )
    answer = Answer()
    running = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    running.add_generic_rpc_handlers((answer,))
    port = running.add_secure_port("127.0.0.1:0", credentials)
    running.start()
    try:
        yield f"grpcs://127.0.0.1:{port}", answer
    finally:
        running.stop(0.5)


def grpc_run(url: str, tmp_path: Path, tls: TlsSettings | None):
    replay = write_prediction_replay(
        tmp_path / "iris-grpc.replay", protocol="grpc", features=IRIS, num=20, model="iris"
    )
    settings = EngineSettings(tls=tls, timeout=5.0, lag_threshold_ms=200)
    return run_load(
        SeldonEndpoint(url, protocol="grpc"), replay, rate=20, duration=1, settings=settings
    )


def test_a_ca_bundle_makes_a_grpcs_server_trusted(pki, tmp_path):
    folder = pki[2]
    with tls_server(pki) as (url, answer):
        trusted = grpc_run(url, tmp_path, TlsSettings(ca_bundle=str(folder / "ca.pem")))
        untrusted = grpc_run(url, tmp_path, None)  # the system's CAs do not know the test CA
    assert trusted.ok == trusted.requests == 20 and trusted.errors == 0, trusted.error_kinds
    assert answer.calls == 20  # the untrusted run's calls never reached the handler
    assert untrusted.ok == 0 and untrusted.errors == untrusted.requests == 20


@pytest.mark.parametrize("key_file", ["client.key", None], ids=["key-file", "key-in-cert"])
def test_a_client_certificate_is_shown_to_a_server_that_asks(pki, tmp_path, key_file):
    folder = pki[2]
    cert = folder / ("client.pem" if key_file else "client-both.pem")
    tls = TlsSettings(
        ca_bundle=str(folder / "ca.pem"),
        client_cert=str(cert),
        client_key=str(folder / key_file) if key_file else None,
    )
    with tls_server(pki, require_client_cert=True) as (url, _):
        shown = grpc_run(url, tmp_path, tls)
        refused = grpc_run(url, tmp_path, TlsSettings(ca_bundle=str(folder / "ca.pem")))
    assert shown.ok == 20 and shown.errors == 0, shown.error_kinds
    assert refused.ok == 0 and refused.errors == 20


def test_what_grpc_cannot_do_is_refused_by_option_name(pki, tmp_path):
    folder = pki[2]
    with pytest.raises(TlsSettingsError, match=r"insecure \(--seldon-insecure\) cannot apply"):
        grpc_run("grpcs://127.0.0.1:1", tmp_path, TlsSettings(insecure=True))
    with pytest.raises(TlsSettingsError, match=r"--seldon-ca-bundle\).*is a directory"):
        grpc_run("grpcs://127.0.0.1:1", tmp_path, TlsSettings(ca_bundle=str(folder)))
    with pytest.raises(TlsSettingsError, match=r"--seldon-ca-bundle\): no such file"):
        grpc_run("grpcs://127.0.0.1:1", tmp_path, TlsSettings(ca_bundle=str(folder / "no.pem")))


def test_a_plaintext_grpc_target_leaves_tls_settings_aside_as_http_does(pki, tmp_path):
    folder = pki[2]
    running = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    answer = Answer()
    running.add_generic_rpc_handlers((answer,))
    port = running.add_insecure_port("127.0.0.1:0")
    running.start()
    try:
        result = grpc_run(
            f"grpc://127.0.0.1:{port}", tmp_path, TlsSettings(ca_bundle=str(folder / "ca.pem"))
        )
    finally:
        running.stop(0.5)
    assert result.ok == 20 and answer.calls == 20
