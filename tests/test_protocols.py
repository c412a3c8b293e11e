"""Protocols by name: the registry, each protocol's rules, and a new protocol added by one
module and one registration line, carried end to end by a run against a loopback server."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from aiohttp import web
from servers import Recording, ServerThread

from pytest_seldon_load import protocols
from pytest_seldon_load.endpoint import PROTOCOLS, SeldonEndpoint, is_loopback_url
from pytest_seldon_load.engine import EngineSettings, run_load
from pytest_seldon_load.generate import PREDICTION_PROTOCOLS, write_prediction_replay
from pytest_seldon_load.protocols import (
    Column,
    Formatter,
    PredictionOptions,
    ProtocolOptionError,
    SeldonProtocol,
)
from pytest_seldon_load.replay import ReplayFile
from pytest_seldon_load.transport import HttpTransport

IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


def test_one_list_of_protocols_in_one_order():
    assert protocols.names() == ("v2", "v1", "legacy", "grpc")
    assert PROTOCOLS == PREDICTION_PROTOCOLS == protocols.names()


@pytest.mark.parametrize("name", ["v3", "V2", "", None])
def test_an_unknown_protocol_names_the_known_ones_in_order(name):
    with pytest.raises(
        ValueError, match=r"unknown protocol .*; choose one of v2, v1, legacy, grpc$"
    ):
        protocols.get(name)
    with pytest.raises(ValueError, match=r"^protocol: unknown protocol"):
        SeldonEndpoint("http://127.0.0.1:9", protocol=name)


@pytest.mark.parametrize(
    ("name", "infer", "ready"),
    [
        ("v2", "/v2/models/m1/infer", "/v2/models/m1/ready"),
        ("v1", "/api/v1.0/predictions", "/health/ping"),
        ("legacy", "/js/predict", "/"),
    ],
)
def test_an_endpoint_takes_its_paths_from_its_protocol(name, infer, ready):
    endpoint = SeldonEndpoint("http://127.0.0.1:9/prefix", protocol=name, model="m1")
    assert (endpoint.infer_path, endpoint.ready_path) == (infer, ready)
    assert endpoint.speaks is protocols.get(name)


@pytest.mark.parametrize(
    ("name", "status", "body", "kind"),
    [
        ("v2", 200, b'{"outputs":[]}', None),
        ("v2", 200, b'{"error":"boom"}', "model_error"),
        ("v2", 200, b'{"error":""}', None),
        ("v2", 503, b"", "http_503"),
        ("v1", 200, b'{"status":{"status":1,"info":"x"}}', "seldon_failure"),
        ("v1", 200, b'{"status":{"status":0}}', None),
        ("v1", 200, b'{"status": not json', None),
        ("legacy", 200, b'j({"error_id":1,"error_msg":"no"})', "seldon_failure"),
        ("legacy", 200, b'j({"list":[{"id":"error"}]})', None),
        ("legacy", 404, b"", "http_404"),
    ],
)
def test_each_protocol_judges_its_own_answers(name, status, body, kind):
    assert protocols.get(name).judge(status, body) == kind
    assert protocols.judge(name, status, body) == kind


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("v2", ["tensor"], "tensor is for the v1 protocol only, not v2"),
        ("legacy", ["consumer_key", "batch"], "batch is for the v2, v1 and grpc protocols only"),
        ("v1", ["seldon_model_header"], "seldon_model_header is for the v2 and grpc protocols"),
        ("legacy", [], "the legacy protocol needs a consumer key"),
    ],
)
def test_option_rules_come_from_the_protocols(name, given, message):
    with pytest.raises(ProtocolOptionError, match=message) as caught:
        protocols.check_options(name, given)
    assert caught.value.protocol == name
    assert protocols.check_options("v2", ["batch", "outputs"]) is protocols.get("v2")


def test_a_registered_name_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="'v2' is already registered"):
        protocols.register(protocols.get("v2"))


class PlainText(SeldonProtocol):
    """A made-up protocol: rows as comma-separated text, 'FAILED' in a 200 is a failure, and a
    transport of its own that counts what it prepares."""

    name = "plain"
    summary = "comma-separated rows, POST /predict/MODEL"
    accepts = frozenset({"model"})

    def __init__(self) -> None:
        self.prepared = 0

    def infer_path(self, model: str) -> str:
        return f"/predict/{model}"

    def ready_path(self, model: str) -> str:
        return "/ready"

    def judge(self, status: int, body: bytes) -> str | None:
        if not 200 <= status < 300:
            return f"http_{status}"
        return "plain_failure" if b"FAILED" in body else None

    def prediction_formatter(
        self, columns: Sequence[Column], options: PredictionOptions
    ) -> Formatter:
        head = f"POST {self.infer_path(options.model)} Content-Type:text/plain "

        def format_lines(samples: list[np.ndarray]) -> list[str]:
            texts = [c.texts(s, "json") for c, s in zip(columns, samples, strict=True)]
            return [head + ",".join(row) for row in zip(*texts, strict=True)]

        return format_lines

    def transport(self, endpoint: SeldonEndpoint, settings: EngineSettings) -> HttpTransport:
        protocol = self

        class Counting(HttpTransport):
            def prepare(self, request):
                protocol.prepared += 1
                return super().prepare(request)

        return Counting(endpoint, settings)


@pytest.fixture
def plain(monkeypatch):
    monkeypatch.setattr(protocols, "_REGISTRY", dict(protocols._REGISTRY))
    return protocols.register(PlainText())


def test_a_new_protocol_is_one_class_and_one_registration_line(plain, tmp_path):
    assert protocols.names() == ("v2", "v1", "legacy", "grpc", "plain")
    with pytest.raises(ProtocolOptionError, match="batch is for the v2, v1 and grpc protocols"):
        write_prediction_replay(tmp_path / "x", protocol="plain", features=IRIS, batch=2)
    replay = write_prediction_replay(
        tmp_path / "plain.replay", protocol="plain", features=IRIS, num=20, model="m1"
    )
    lines = (tmp_path / "plain.replay").read_text().splitlines()
    assert len(lines) == 20 and all(line.startswith("POST /predict/m1 ") for line in lines)
    recording = Recording()
    with ServerThread(recording) as server:
        endpoint = SeldonEndpoint(server.url, protocol="plain", model="m1")
        result = run_load(
            endpoint, ReplayFile(replay.path), rate=40, duration=0.5, settings=EngineSettings()
        )
    assert result.requests == 20 and result.ok == 20
    assert plain.prepared == 20  # the protocol's own transport prepared each line once
    seen = recording.seen[0]
    assert seen.raw_path == "/predict/m1"
    assert seen.headers["Content-Type"] == "text/plain"
    assert seen.body.decode() == lines[0].split(" ", 3)[3]


def test_a_new_protocols_judge_decides_what_failed(plain, tmp_path):
    replay = tmp_path / "p.replay"
    replay.write_text("POST /predict/m Content-Type:text/plain 1,2\n")

    async def failed(request):
        await request.read()
        return web.Response(body=b"FAILED: no model", status=200)

    with ServerThread(failed) as server:
        result = run_load(
            SeldonEndpoint(server.url, protocol="plain", model="m"),
            ReplayFile(replay),
            rate=20,
            duration=0.5,
        )
    assert result.errors == result.requests == 10
    assert result.error_kinds == {"plain_failure": 10}


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.8.9.10/x", True),
        ("http://[::1]:9000", True),
        ("grpc://localhost:9000", True),
        ("http://10.0.0.7:8000", False),
        ("http://seldon-mesh.seldon:80", False),
        ("http://example.test", False),
    ],
)
def test_a_loopback_target_is_told_from_one_a_pod_can_reach(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
