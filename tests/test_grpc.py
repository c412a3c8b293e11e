"""The Open Inference Protocol over gRPC: replay lines, ModelInferRequest encoding, transport.

Encoding is checked against MLServer's own generated `dataplane_pb2` and converters; the
transport against a real MLServer's gRPC port, a grpc.aio server that never answers, a closed
port and a plain HTTP/1.1 server, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from servers import ClosedPort, ServerThread, by_path

from pytest_seldon_load.cluster.local import INSTALL_HINT, LocalSeldonServer, mlserver_available
from pytest_seldon_load.grpc_transport import GrpcTransport, error_kind, parse_target
from pytest_seldon_load.oip_grpc import (
    MODEL_INFER,
    GrpcPayload,
    encode_infer_request,
    grpc_request,
    parse_grpc_line,
    prepare,
)
from pytest_seldon_load.replay import ReplayError, ReplayFile, parse_line, write_replay
from pytest_seldon_load.result import LoadResult, Recorder

needs_mlserver = pytest.mark.skipif(
    not mlserver_available(), reason=f"MLServer is not installed ({INSTALL_HINT})"
)
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


# ---- encoding -------------------------------------------------------------------------------


def _mixed_document() -> dict:
    return {
        "model_name": "iris",
        "model_version": "v1",
        "id": "req-7",
        "parameters": {"content_type": "np", "priority": 3, "trace": True},
        "inputs": [
            {"name": "f32", "shape": [2, 2], "datatype": "FP32", "data": [[1.5, 2.5], [3.5, 4.5]]},
            {"name": "i64", "shape": [3], "datatype": "INT64", "data": [1, -2, 2**40]},
            {"name": "u8", "shape": [2], "datatype": "UINT8", "data": [0, 255]},
            {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [True]},
            {
                "name": "text",
                "shape": [2],
                "datatype": "BYTES",
                "data": ["héllo", "x"],
                "parameters": {"content_type": "str"},
            },
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": False}}],
    }


@needs_mlserver
def test_encoding_parses_as_mlserver_dataplane_request() -> None:
    from mlserver.grpc import dataplane_pb2

    parsed = dataplane_pb2.ModelInferRequest.FromString(encode_infer_request(_mixed_document()))

    assert (parsed.model_name, parsed.model_version, parsed.id) == ("iris", "v1", "req-7")
    assert parsed.parameters["content_type"].string_param == "np"
    assert parsed.parameters["priority"].int64_param == 3
    assert parsed.parameters["trace"].bool_param is True
    f32, i64, u8, flag, text = parsed.inputs
    assert (f32.name, f32.datatype, list(f32.shape)) == ("f32", "FP32", [2, 2])
    assert list(f32.contents.fp32_contents) == [1.5, 2.5, 3.5, 4.5]
    assert list(i64.contents.int64_contents) == [1, -2, 2**40]
    assert list(u8.contents.uint_contents) == [0, 255]
    assert list(flag.contents.bool_contents) == [True]
    assert list(text.contents.bytes_contents) == ["héllo".encode(), b"x"]
    assert text.parameters["content_type"].string_param == "str"
    assert [o.name for o in parsed.outputs] == ["predict"]
    assert parsed.outputs[0].parameters["binary_data"].bool_param is False
    assert not parsed.raw_input_contents


@needs_mlserver
def test_mlserver_reads_the_same_request_from_grpc_bytes_as_from_rest_json() -> None:
    """MLServer's own converter turns our protobuf into the request its REST API would parse."""
    from mlserver.grpc import dataplane_pb2
    from mlserver.grpc.converters import ModelInferRequestConverter
    from mlserver.types import InferenceRequest

    document = {
        "model_name": "iris",
        "inputs": [
            {"name": "predict", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROW * 2},
            {"name": "n", "shape": [1], "datatype": "INT32", "data": [7]},
        ],
    }
    parsed = dataplane_pb2.ModelInferRequest.FromString(encode_infer_request(document))
    from_grpc = ModelInferRequestConverter.to_types(parsed)
    rest = {key: value for key, value in document.items() if key != "model_name"}
    from_rest = InferenceRequest.model_validate(rest)

    for got, want in zip(from_grpc.inputs, from_rest.inputs, strict=True):
        assert (got.name, got.datatype, list(got.shape)) == (want.name, want.datatype, want.shape)
        assert list(got.data) == list(want.data.root)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"inputs": []}, "model_name"),
        ({"model_name": "m", "inputs": []}, "inputs"),
        (
            {
                "model_name": "m",
                "inputs": [{"name": "a", "shape": [3], "datatype": "FP32", "data": [1]}],
            },
            "inputs[0].data: 1 values do not fill shape [3]",
        ),
        (
            {
                "model_name": "m",
                "inputs": [{"name": "a", "shape": [1], "datatype": "FP16", "data": [1]}],
            },
            "inputs[0].datatype: 'FP16'",
        ),
        (
            {
                "model_name": "m",
                "inputs": [{"name": "a", "shape": [1], "datatype": "INT64", "data": ["x"]}],
            },
            "inputs[0].data: values do not fit INT64",
        ),
        (
            {
                "model_name": "m",
                "inputs": [{"name": "a", "shape": [1], "datatype": "UINT8", "data": [-1]}],
            },
            "inputs[0].data: -1 is outside UINT8 (0..255)",
        ),
        (
            {
                "model_name": "m",
                "inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [128]}],
            },
            "inputs[0].data: 128 is outside INT8 (-128..127)",
        ),
        (
            {
                "model_name": "m",
                "inputs": [{"name": "a", "shape": [-1], "datatype": "FP32", "data": []}],
            },
            "inputs[0].shape",
        ),
        ({"model_name": "m", "parameters": {"x": 1.5}, "inputs": []}, "parameters.x"),
        ({"model_name": "m", "inputz": []}, "unknown field 'inputz'"),
    ],
)
def test_encoding_names_what_is_wrong(document: dict, words: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        encode_infer_request(document)
    assert words in str(caught.value)


# ---- replay lines ---------------------------------------------------------------------------


def test_prediction_request_round_trips_through_a_replay_file(tmp_path: Path) -> None:
    request = grpc_request("iris", [IRIS_ROW, IRIS_ROW], metadata=[("Seldon-Model", "iris")])
    replay = write_replay(tmp_path / "grpc.txt", [request])
    line = (tmp_path / "grpc.txt").read_text().strip()

    assert line.startswith(f"GRPC {MODEL_INFER} seldon-model:iris {{")
    parsed = parse_grpc_line(line, 1, str(replay))
    assert parsed == request
    document = json.loads(parsed.body or b"")
    assert document["model_name"] == "iris"
    assert document["inputs"][0]["shape"] == [2, 4]
    assert document["inputs"][0]["datatype"] == "FP64"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("POST /v2/models/iris/infer {}", "a gRPC line starts with GRPC"),
        ("GRPC /inference.GRPCInferenceService/ModelReady {}", "unknown gRPC call"),
        (f"GRPC {MODEL_INFER}", "needs the request as JSON"),
        (f"GRPC {MODEL_INFER} {{not json", "bad ModelInfer request"),
        (f"GRPC {MODEL_INFER} grpc-timeout:1S {{}}", "set by gRPC itself"),
        (f"GRPC {MODEL_INFER} trace-bin:AAA {{}}", "binary"),
        (f"GRPC {MODEL_INFER} nocolon {{}}", "not name:value"),
        (f'GRPC {MODEL_INFER} {{"model_name":"m","inputs":[]}}', "inputs: required"),
    ],
)
def test_bad_grpc_lines_name_file_and_line(line: str, words: str) -> None:
    with pytest.raises(ReplayError) as caught:
        parse_grpc_line(line, 12, "replays/grpc.txt")
    assert str(caught.value).startswith("replays/grpc.txt:12: ")
    assert words in str(caught.value)


def test_blank_and_comment_lines_are_skipped() -> None:
    assert parse_grpc_line("   ") is None
    assert parse_grpc_line("# a comment") is None


def test_prepare_merges_endpoint_metadata_and_lets_the_line_win() -> None:
    request = grpc_request("iris", [IRIS_ROW], metadata=[("seldon-model", "from-line")])
    payload = prepare(request, {"Seldon-Model": "from-endpoint", "X-Team": "ml"})

    assert payload.method == MODEL_INFER
    assert dict(payload.metadata) == {"seldon-model": "from-line", "x-team": "ml"}
    assert payload.message == encode_infer_request(json.loads(request.body or b""))


def test_prepare_refuses_an_http_line() -> None:
    request = parse_line("POST /v2/models/iris/infer {}", 3)
    assert request is not None
    with pytest.raises(ValueError, match="line 3: POST /v2/models/iris/infer is not a gRPC call"):
        prepare(request)


@pytest.mark.parametrize(
    ("url", "target", "tls"),
    [
        ("grpc://127.0.0.1:8081", "127.0.0.1:8081", False),
        ("grpcs://models.example:443", "models.example:443", True),
        ("grpc://[::1]:9000", "[::1]:9000", False),
    ],
)
def test_targets(url: str, target: str, tls: bool) -> None:
    assert parse_target(url) == (target, tls)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8081", "grpc://", "grpc://h:1/v2/models"])
def test_bad_targets_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"grpc://host:port|no path"):
        parse_target(url)


def test_error_kinds_by_code() -> None:
    assert error_kind(grpc.StatusCode.OK, "") is None
    assert error_kind(grpc.StatusCode.NOT_FOUND, "no model") == "grpc_NOT_FOUND"
    assert error_kind(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") == "timeout"
    assert error_kind(grpc.StatusCode.UNAVAILABLE, "server shutting down") == "grpc_UNAVAILABLE"


# ---- the transport, open loop ---------------------------------------------------------------


async def _open_loop(
    transport: GrpcTransport, payload: GrpcPayload, rate: float, seconds: float, timeout: float
) -> LoadResult:
    """Send at `rate` on schedule, never waiting for answers; wait for every answer."""
    loop = asyncio.get_running_loop()
    recorder = Recorder(0.0)
    total = round(rate * seconds)
    answered = 0
    all_answered = loop.create_future()
    start = loop.time() + 0.01

    def on_done(
        offset: object, status: int | None, body: bytes, kind: str | None, sent: float, done: float
    ) -> None:
        nonlocal answered
        assert isinstance(offset, float)
        recorder.completed(offset, sent - perf_start, done - perf_start, status, kind)
        answered += 1
        if answered == total and not all_answered.done():
            all_answered.set_result(None)

    from time import perf_counter

    perf_start = perf_counter() + (start - loop.time())
    for index in range(total):
        offset = index / rate
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        recorder.sent(offset, perf_counter() - perf_start, 0.0)
        transport.submit(payload, on_done, offset)
    await asyncio.wait_for(all_answered, timeout + 5.0)
    transport.close("cancelled")
    await transport.wait_closed()
    return recorder.result(target_rate=rate, duration=seconds, scheduled=total, engine="test")


def _run(
    url: str, payload: GrpcPayload, *, rate: float = 20, seconds: float = 0.5, timeout: float = 5
) -> LoadResult:
    async def main() -> LoadResult:
        transport = GrpcTransport(url, connections=2, timeout=timeout)
        return await _open_loop(transport, payload, rate, seconds, timeout)

    return asyncio.run(main())


def _payload(model: str = "iris", method: str = MODEL_INFER) -> GrpcPayload:
    return prepare(grpc_request(model, [IRIS_ROW]))._replace(method=method)


@pytest.fixture(scope="module")
def mlserver(seldon_local_server: LocalSeldonServer) -> LocalSeldonServer:
    """The session's local MLServer (the plugin's fixture), its gRPC port ready."""

    async def grpc_ready() -> None:
        target, _ = parse_target(seldon_local_server.grpc_url)
        async with grpc.aio.insecure_channel(target) as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)

    asyncio.run(grpc_ready())
    return seldon_local_server


@needs_mlserver
def test_grpc_url_is_the_local_servers_loopback_grpc_port(mlserver: LocalSeldonServer) -> None:
    assert mlserver.grpc_url.startswith("grpc://127.0.0.1:")
    assert mlserver.grpc_url.rsplit(":", 1)[1] != mlserver.base_url.rsplit(":", 1)[1]


@needs_mlserver
def test_open_loop_against_mlserver_has_no_errors(mlserver: LocalSeldonServer) -> None:
    result = _run(mlserver.grpc_url, _payload(), rate=50, seconds=1.5)

    assert result.requests == 75
    assert result.ok == 75, result.error_kinds
    assert result.errors == 0
    assert result.status_codes == {0: 75}
    assert 0 < result.p50 < 1000  # ms: answered, and not by a stalled server


@needs_mlserver
def test_answer_is_mlservers_inference_response(mlserver: LocalSeldonServer) -> None:
    from mlserver.grpc import dataplane_pb2

    bodies: list[bytes] = []

    async def main() -> None:
        transport = GrpcTransport(mlserver.grpc_url, connections=1, timeout=5)
        done = asyncio.get_running_loop().create_future()

        def on_done(*outcome: object) -> None:
            bodies.append(outcome[2])  # type: ignore[arg-type]
            done.set_result(None)

        transport.submit(_payload(), on_done, None)
        await asyncio.wait_for(done, 10)
        transport.close()
        await transport.wait_closed()

    asyncio.run(main())
    response = dataplane_pb2.ModelInferResponse.FromString(bodies[0])
    assert response.model_name == "iris"
    assert response.outputs[0].name == "predict"


@needs_mlserver
def test_unknown_model_is_counted_by_code_name(mlserver: LocalSeldonServer) -> None:
    result = _run(mlserver.grpc_url, _payload(model="no-such-model"))

    assert result.ok == 0
    assert result.error_kinds == {"grpc_NOT_FOUND": 10}
    assert result.status_codes == {grpc.StatusCode.NOT_FOUND.value[0]: 10}


@needs_mlserver
def test_wrong_service_is_unimplemented(mlserver: LocalSeldonServer) -> None:
    result = _run(mlserver.grpc_url, _payload(method="/inference.NoSuchService/ModelInfer"))

    assert result.error_kinds == {"grpc_UNIMPLEMENTED": 10}


def test_server_that_never_answers_ends_each_call_at_its_deadline() -> None:
    async def main() -> LoadResult:
        started: list[object] = []

        async def never(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            started.append(request)
            await asyncio.sleep(30)
            return b""

        class Never(grpc.GenericRpcHandler):
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                return grpc.unary_unary_rpc_method_handler(never)

        server = grpc.aio.server()
        server.add_generic_rpc_handlers([Never()])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            transport = GrpcTransport(f"grpc://127.0.0.1:{port}", connections=1, timeout=0.4)
            result = await _open_loop(transport, _payload(), rate=20, seconds=0.5, timeout=0.4)
        finally:
            await server.stop(0)
        assert len(started) == 10  # every call reached the server: the deadline ended it
        return result

    result = asyncio.run(main())
    assert result.error_kinds == {"timeout": 10}
    assert 400 <= result.service_percentile(50) < 1400  # ms: ended by the 0.4 s deadline, not later


def test_unreachable_port_is_one_clear_error_kind() -> None:
    with ClosedPort() as closed:
        result = _run(f"grpc://127.0.0.1:{closed.port}", _payload(), timeout=3)
    assert result.error_kinds == {"grpc_unreachable": 10}
    assert result.max < 3000  # refused at once, not waited out


def test_plain_http_server_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiohttp")  # it complains of the HTTP/2 preface
    with ServerThread(by_path) as http:
        result = _run(f"grpc://127.0.0.1:{http.port}", _payload(), timeout=3)
    assert result.error_kinds == {"grpc_not_http2": 10}
    assert result.max < 3000


def test_close_fails_pending_calls_with_the_reason() -> None:
    async def main() -> list[tuple[object, str | None]]:
        async def never(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await asyncio.sleep(30)
            return b""

        class Never(grpc.GenericRpcHandler):
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
                return grpc.unary_unary_rpc_method_handler(never)

        server = grpc.aio.server()
        server.add_generic_rpc_handlers([Never()])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        outcomes: list[tuple[object, str | None]] = []
        transport = GrpcTransport(f"grpc://127.0.0.1:{port}", connections=1, timeout=10)
        for context in range(3):
            transport.submit(_payload(), lambda c, s, b, k, w, d: outcomes.append((c, k)), context)
        await asyncio.sleep(0.2)
        transport.close("interrupted")
        await transport.wait_closed()
        transport.submit(_payload(), lambda c, s, b, k, w, d: outcomes.append((c, k)), "late")
        await server.stop(0)
        return outcomes

    outcomes = asyncio.run(main())
    assert sorted(outcomes[:3]) == [(0, "interrupted"), (1, "interrupted"), (2, "interrupted")]
    assert outcomes[3] == ("late", "cancelled")


# ---- the grpc protocol: replays, endpoints, the engine -------------------------------------

IRIS_FEATURES = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


def test_grpc_is_a_registered_protocol_with_its_own_schemes() -> None:
    from pytest_seldon_load import protocols

    assert "grpc" in protocols.names()
    assert protocols.get("grpc").schemes == ("grpc", "grpcs")
    assert protocols.judge("grpc", 0, b"") is None
    assert protocols.judge("grpc", 12, b"") == "grpc_UNIMPLEMENTED"


def test_replay_file_reads_grpc_lines_and_check_agrees_with_a_run(tmp_path: Path) -> None:
    """`replay check` and a run read the same lines the same way (one parser)."""
    from pytest_seldon_load.cli.replay import check_replay
    from pytest_seldon_load.replay import ReplayFile

    good = grpc_request("iris", [IRIS_ROW]).to_line()
    lines = [
        good,
        f"GRPC {MODEL_INFER} seldon-model:iris " + good.split(" ", 2)[2],
        f"GRPC {MODEL_INFER} {{not json",
        f'GRPC {MODEL_INFER} {{"model_name":"m","inputs":[]}}',
        "GRPC /inference.GRPCInferenceService/ServerLive {}",
        f"GRPC {MODEL_INFER} grpc-timeout:1S " + good.split(" ", 2)[2],
    ]
    for number, line in enumerate(lines, 1):
        path = tmp_path / f"{number}.replay"
        path.write_text(line + "\n")
        counts, bad = check_replay(path)
        try:
            read = list(ReplayFile(path))
        except ReplayError:
            read = None
        assert (read is None) == bool(bad), line
        if read is not None:
            assert counts == {("GRPC", MODEL_INFER): 1}
            assert read[0].method == "GRPC"
    path = tmp_path / "all.replay"
    path.write_text("\n".join(lines) + "\n")
    counts, bad = check_replay(path)
    assert counts == {("GRPC", MODEL_INFER): 2}
    assert [number for number, _, _ in bad] == [3, 4, 5, 6]


def test_write_replay_refuses_a_bad_grpc_request(tmp_path: Path) -> None:
    line = f'GRPC {MODEL_INFER} {{"model_name":"m","inputs":[]}}'
    with pytest.raises(ValueError, match="replay request 1: bad ModelInfer request: inputs"):
        write_replay(tmp_path / "bad.replay", [line])
    assert not (tmp_path / "bad.replay").exists()


def test_prediction_replay_in_grpc_encodes_every_line(tmp_path: Path) -> None:
    from pytest_seldon_load.generate import write_prediction_replay
    from pytest_seldon_load.oip_grpc import model_infer_request_class

    replay = write_prediction_replay(
        tmp_path / "g.replay",
        protocol="grpc",
        features=IRIS_FEATURES,
        num=50,
        batch=3,
        model="iris",
        seldon_model_header="iris.pipeline",
        outputs=["predict"],
    )
    requests = list(replay)
    assert len(requests) == 50
    first = requests[0]
    assert (first.method, first.target, first.headers) == (
        "GRPC",
        MODEL_INFER,
        (("seldon-model", "iris.pipeline"),),
    )
    message = model_infer_request_class().FromString(prepare(first).message)
    assert message.model_name == "iris"
    assert list(message.inputs[0].shape) == [3, 4]
    assert message.inputs[0].datatype == "FP64"
    assert len(message.inputs[0].contents.fp64_contents) == 12
    assert all(0 <= v <= 5 for v in message.inputs[0].contents.fp64_contents)
    assert [o.name for o in message.outputs] == ["predict"]


def test_prediction_replay_in_grpc_carries_strings_one_input_per_feature(tmp_path: Path) -> None:
    from pytest_seldon_load.generate import write_prediction_replay
    from pytest_seldon_load.oip_grpc import model_infer_request_class

    replay = write_prediction_replay(
        tmp_path / "g.replay",
        protocol="grpc",
        features=[
            {"name": "size", "type": "numeric", "min": 0, "max": 1},
            {"name": "colour", "type": "categorical", "values": ["red", "blue"]},
        ],
        num=5,
    )
    message = model_infer_request_class().FromString(prepare(next(iter(replay))).message)
    size, colour = message.inputs
    assert (size.name, size.datatype, colour.name, colour.datatype) == (
        "size",
        "FP64",
        "colour",
        "BYTES",
    )
    assert colour.contents.bytes_contents[0] in (b"red", b"blue")


def test_grpc_prediction_refuses_v1_options(tmp_path: Path) -> None:
    from pytest_seldon_load.generate import write_prediction_replay
    from pytest_seldon_load.protocols import ProtocolOptionError

    with pytest.raises(ProtocolOptionError, match="tensor is for the v1 protocol only, not grpc"):
        write_prediction_replay(
            tmp_path / "g.replay", protocol="grpc", features=IRIS_FEATURES, tensor=True
        )


def test_cli_writes_a_grpc_prediction_replay_that_check_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_seldon_load.cli import main

    out = tmp_path / "g.replay"
    code = main(
        [
            "replay",
            "prediction",
            "--protocol",
            "grpc",
            "--model",
            "iris",
            "--seldon-model",
            "--batch",
            "2",
            "--num",
            "20",
            "--replay",
            str(out),
            *[arg for spec in IRIS_FEATURES for arg in ("--feature", json.dumps(spec))],
        ]
    )
    assert code == 0, capsys.readouterr()
    assert "wrote 20 grpc prediction requests (2 rows each)" in capsys.readouterr().out
    line = out.read_text().splitlines()[0]
    assert line.startswith(f'GRPC {MODEL_INFER} seldon-model:iris {{"model_name":"iris",')
    assert main(["replay", "check", str(out)]) == 0
    assert f"20  GRPC   {MODEL_INFER}" in capsys.readouterr().out


def test_cli_refuses_a_v1_option_for_grpc(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pytest_seldon_load.cli import main

    out = tmp_path / "g.replay"
    feature = json.dumps(IRIS_FEATURES[0])
    code = main(
        [
            "replay",
            "prediction",
            "--protocol",
            "grpc",
            "--tensor",
            "--feature",
            feature,
            "--replay",
            str(out),
        ]
    )
    assert code == 2
    assert not out.exists()
    assert "--tensor applies to --protocol v1 only, not grpc" in capsys.readouterr().err


# ---- endpoints ------------------------------------------------------------------------------


def test_endpoint_takes_a_grpc_url_and_headers_as_metadata() -> None:
    from pytest_seldon_load.endpoint import SeldonEndpoint

    endpoint = SeldonEndpoint(
        "grpc://127.0.0.1:8081",
        protocol="grpc",
        headers={"Seldon-Model": "iris", "Authorization": "Bearer abc def"},
    )
    assert endpoint.base_url == "grpc://127.0.0.1:8081"
    assert endpoint.infer_path == MODEL_INFER
    assert "abc def" not in repr(endpoint)


@pytest.mark.parametrize(
    ("url", "protocol", "words"),
    [
        ("http://127.0.0.1:8080", "grpc", "the grpc protocol needs a grpc://host:port URL"),
        ("grpc://127.0.0.1:8081", "v2", "a grpc:// URL is for protocol grpc"),
        ("grpc://127.0.0.1:8081/v2/models", "grpc", "a gRPC target has no path"),
        ("grpc://", "grpc", "must look like grpc://host:port"),
    ],
)
def test_endpoint_refuses_a_url_of_the_wrong_kind(url: str, protocol: str, words: str) -> None:
    from pytest_seldon_load.endpoint import SeldonEndpoint

    with pytest.raises(ValueError, match=None) as caught:
        SeldonEndpoint(url, protocol=protocol)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("name", "words"), [("grpc-timeout", "set by gRPC itself"), ("trace-bin", "binary")]
)
def test_endpoint_refuses_headers_that_cannot_be_metadata(name: str, words: str) -> None:
    from pytest_seldon_load.endpoint import SeldonEndpoint

    with pytest.raises(ValueError, match=f"header {name}: .*{words}"):
        SeldonEndpoint("grpc://127.0.0.1:1", protocol="grpc", headers={name: "x"})


# ---- x-seldon-route is never replayed -------------------------------------------------------


def test_route_pin_is_dropped_from_grpc_metadata() -> None:
    request = grpc_request("iris", [IRIS_ROW], metadata=[("x-seldon-route", ":iris_1:")])
    payload = prepare(request, {"X-Seldon-Route": ":iris_2:", "Seldon-Model": "iris"})
    assert dict(payload.metadata) == {"seldon-model": "iris"}


def test_route_pin_is_dropped_from_http_requests() -> None:
    """Neither the endpoint's headers nor a replay line's put x-seldon-route on the wire."""
    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.plan import EngineSettings
    from pytest_seldon_load.transport import HttpTransport

    endpoint = SeldonEndpoint(
        "http://127.0.0.1:1", headers={"X-Seldon-Route": ":iris_1:", "Seldon-Model": "iris"}
    )

    async def wire() -> list[bytes]:
        transport = HttpTransport(endpoint, EngineSettings(connections=1))
        plain = parse_line("/v2/models/iris/ready", 1)
        pinned = parse_line("POST /v2/models/iris/infer x-seldon-route::iris_3: X-Team:ml {}", 2)
        assert plain is not None and pinned is not None
        payloads = [transport.prepare(plain), transport.prepare(pinned)]
        transport.close("cancelled")
        return payloads

    for payload in asyncio.run(wire()):
        assert b"seldon-route" not in payload.lower()
        assert b"Seldon-Model: iris" in payload


def test_http_transport_refuses_a_grpc_line() -> None:
    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.plan import EngineSettings
    from pytest_seldon_load.transport import HttpTransport

    async def prepare_it() -> None:
        transport = HttpTransport(SeldonEndpoint("http://127.0.0.1:1"), EngineSettings())
        try:
            transport.prepare(grpc_request("iris", [IRIS_ROW]))
        finally:
            transport.close("cancelled")

    with pytest.raises(ValueError, match="a gRPC call cannot go over HTTP"):
        asyncio.run(prepare_it())


# ---- the engine over gRPC -------------------------------------------------------------------


def _grpc_replay(tmp_path: Path, model: str = "iris") -> ReplayFile:
    from pytest_seldon_load.generate import write_prediction_replay

    return write_prediction_replay(
        tmp_path / f"{model}.replay", protocol="grpc", features=IRIS_FEATURES, num=40, model=model
    )


def _engine_run(
    url: str,
    replay: ReplayFile,
    *,
    rate: float = 40,
    duration: float = 1.0,
    timeout: float = 5.0,
) -> LoadResult:
    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.engine import run_load
    from pytest_seldon_load.plan import EngineSettings

    settings = EngineSettings(connections=4, timeout=timeout, lag_threshold_ms=50)
    endpoint = SeldonEndpoint(url, protocol="grpc")
    return run_load(endpoint, replay, rate=rate, duration=duration, settings=settings)


@needs_mlserver
def test_engine_open_loop_over_grpc_has_no_errors(
    mlserver: LocalSeldonServer, tmp_path: Path
) -> None:
    result = _engine_run(mlserver.grpc_url, _grpc_replay(tmp_path), rate=60, duration=1.5)

    assert result.requests == result.scheduled == 90
    assert result.errors == 0, result.error_kinds
    assert result.status_codes == {0: 90}
    assert 0 < result.service_percentile(50) <= result.p99 < 5000


@needs_mlserver
def test_tight_grpc_budget_fails_with_the_usual_message(
    mlserver: LocalSeldonServer, tmp_path: Path
) -> None:
    from pytest_seldon_load import assert_p99_below

    result = _engine_run(mlserver.grpc_url, _grpc_replay(tmp_path), rate=40, duration=1.0)
    assert result.errors == 0, result.error_kinds
    with pytest.raises(AssertionError, match=r"p99 latency .* is over its budget of 1us"):
        assert_p99_below(result, "0.001ms", allow_lag=True)
    assert_p99_below(result, "5s")


@needs_mlserver
def test_engine_counts_an_unknown_model_by_code_name(
    mlserver: LocalSeldonServer, tmp_path: Path
) -> None:
    result = _engine_run(mlserver.grpc_url, _grpc_replay(tmp_path, "no-such-model"), rate=20)

    assert result.ok == 0
    assert result.error_kinds == {"grpc_NOT_FOUND": 20}


def test_engine_counts_a_server_without_the_service_as_unimplemented(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=2))  # serves no service at all
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = _engine_run(f"grpc://127.0.0.1:{port}", _grpc_replay(tmp_path), rate=20)
    finally:
        server.stop(0)
    assert result.error_kinds == {"grpc_UNIMPLEMENTED": 20}
    assert result.status_codes == {grpc.StatusCode.UNIMPLEMENTED.value[0]: 20}


def test_engine_counts_an_unreachable_server_as_one_kind(tmp_path: Path) -> None:
    with ClosedPort() as closed:
        result = _engine_run(f"grpc://127.0.0.1:{closed.port}", _grpc_replay(tmp_path), rate=20)
    assert result.error_kinds == {"grpc_unreachable": 20}


def test_engine_against_plain_http_errors_cleanly_and_on_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from time import monotonic

    caplog.set_level(logging.CRITICAL, logger="aiohttp")
    with ServerThread(by_path) as http:
        began = monotonic()
        result = _engine_run(
            f"grpc://127.0.0.1:{http.port}", _grpc_replay(tmp_path), rate=20, timeout=3.0
        )
        took = monotonic() - began
    assert result.error_kinds == {"grpc_not_http2": 20}
    assert result.max < 3000  # each call failed before its deadline
    assert took < 1.0 + 3.0 + 2.0  # the run ends: sending time, one deadline, the drain grace


def test_engine_refuses_an_http_replay_for_a_grpc_endpoint(tmp_path: Path) -> None:
    replay = write_replay(tmp_path / "http.replay", ["/v2/models/iris/ready"])
    with pytest.raises(ValueError, match="line 1: GET /v2/models/iris/ready is not a gRPC call"):
        _engine_run("grpc://127.0.0.1:1", replay, rate=5, duration=0.2)


def test_prediction_replay_follows_the_endpoints_infer_path(tmp_path: Path) -> None:
    """A Core 2 pipeline's endpoint is predicted at /v2/pipelines/NAME/infer, not /v2/models."""
    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.pytest_plugin.fixtures import ReplayFactory

    pipeline = SeldonEndpoint(
        "http://127.0.0.1:1",
        model="chain",
        headers={"Seldon-Model": "chain.pipeline"},
        infer_path_override="/v2/pipelines/chain/infer",
    )
    model = SeldonEndpoint("http://127.0.0.1:1", model="iris")
    factory = ReplayFactory(tmp_path)

    assert {r.target for r in factory.prediction(pipeline, num=5)} == {"/v2/pipelines/chain/infer"}
    assert {r.target for r in factory.prediction(model, num=5)} == {"/v2/models/iris/infer"}
    grpc_endpoint = SeldonEndpoint("grpc://127.0.0.1:1", protocol="grpc", model="iris")
    assert {r.method for r in factory.prediction(grpc_endpoint, num=5)} == {"GRPC"}


# ---- the plugin: --seldon-protocol grpc -----------------------------------------------------

GRPC_SUITE = """
import pytest

@pytest.mark.load
def test_over_grpc(seldon_endpoint, replay_file, load_run):
    assert seldon_endpoint.protocol == "grpc"
    assert seldon_endpoint.base_url.startswith("grpc://127.0.0.1:")
    replay = replay_file.prediction(seldon_endpoint, num=50)
    result = load_run(seldon_endpoint, replay, rate=40, duration="1s", lag_threshold_ms=50)
    assert result.requests == 40
    assert result.status_codes == {0: 40}, result.error_kinds
"""


@needs_mlserver
def test_seldon_protocol_grpc_without_url_load_tests_the_local_server(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_suite=GRPC_SUITE)
    outcome = pytester.runpytest("-p", "no:cacheprovider", "--seldon-protocol", "grpc")
    outcome.assert_outcomes(passed=1)


def test_seldon_headers_travel_as_grpc_metadata(pytester: pytest.Pytester) -> None:
    """--seldon-url grpc://... --seldon-header: every call carries the header as metadata; a
    mesh pin given as a header is not sent."""
    from concurrent.futures import ThreadPoolExecutor

    seen: list[dict[str, str]] = []

    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(dict(context.invocation_metadata()))
        return b""

    class Recording(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
            if details.method != MODEL_INFER:
                return None
            return grpc.unary_unary_rpc_method_handler(answer)

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([Recording()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_suite=GRPC_SUITE)
    try:
        outcome = pytester.runpytest(
            "-p",
            "no:cacheprovider",
            f"--seldon-url=grpc://127.0.0.1:{port}",
            "--seldon-protocol=grpc",
            "--seldon-header=Seldon-Model:iris.pipeline",
            "--seldon-header=X-Seldon-Route::iris_1:",
        )
    finally:
        server.stop(0)
    outcome.assert_outcomes(passed=1)
    assert len(seen) == 40
    assert all(m.get("seldon-model") == "iris.pipeline" for m in seen)
    assert not any("x-seldon-route" in m for m in seen)


def test_a_plain_http_url_with_protocol_grpc_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_suite=GRPC_SUITE)
    outcome = pytester.runpytest(
        "-p", "no:cacheprovider", "--seldon-url=http://127.0.0.1:1", "--seldon-protocol=grpc"
    )
    outcome.assert_outcomes(errors=1)
    outcome.stdout.fnmatch_lines(["*the grpc protocol needs a grpc://host:port URL*"])


@needs_mlserver
def test_cli_run_over_grpc(
    mlserver: LocalSeldonServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_seldon_load.cli import main

    replay = _grpc_replay(tmp_path)
    args = ["run", "--url", mlserver.grpc_url, "--protocol", "grpc", "--replay", str(replay)]
    code = main([*args, "--rate", "20", "--duration", "1s", "--threshold", "error_rate<0.01"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "20 requests sent of 20 scheduled" in out


def test_cli_run_refuses_an_http_url_for_grpc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_seldon_load.cli import main

    replay = _grpc_replay(tmp_path)
    args = ["run", "--url", "http://127.0.0.1:1", "--protocol", "grpc", "--replay", str(replay)]
    assert main([*args, "--rate", "5", "--duration", "1s"]) == 2
    assert "--url: the grpc protocol needs a grpc://host:port URL" in capsys.readouterr().err


@needs_mlserver
def test_an_answer_over_the_size_limit_is_counted_by_code(
    mlserver: LocalSeldonServer, tmp_path: Path
) -> None:
    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.engine import run_load
    from pytest_seldon_load.plan import EngineSettings

    result = run_load(
        SeldonEndpoint(mlserver.grpc_url, protocol="grpc"),
        _grpc_replay(tmp_path),
        rate=20,
        duration=0.5,
        settings=EngineSettings(max_answer_bytes=10, lag_threshold_ms=50),
    )
    assert result.error_kinds == {"grpc_RESOURCE_EXHAUSTED": 10}


def test_an_http_proxy_is_refused_for_grpc_not_ignored(tmp_path: Path) -> None:
    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.engine import run_load
    from pytest_seldon_load.plan import EngineSettings
    from pytest_seldon_load.proxy import HttpProxy

    with pytest.raises(ValueError, match=r"an HTTP proxy cannot carry gRPC calls"):
        run_load(
            SeldonEndpoint("grpc://127.0.0.1:1", protocol="grpc"),
            _grpc_replay(tmp_path),
            rate=5,
            duration=0.2,
            settings=EngineSettings(proxy=HttpProxy("http://127.0.0.1:3128")),
        )


def test_stopping_a_run_against_a_stalled_grpc_server_keeps_the_calls_in_flight(
    tmp_path: Path,
) -> None:
    """Stopped mid-run, every call still waiting counts as interrupted_in_flight, at once."""
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from time import monotonic

    from pytest_seldon_load.endpoint import SeldonEndpoint
    from pytest_seldon_load.engine import ActiveRun, RunInterrupted, run_load
    from pytest_seldon_load.plan import EngineSettings

    released = threading.Event()

    def stall(request: bytes, context: grpc.ServicerContext) -> bytes:
        released.wait(10)
        return b""

    class Stalled(grpc.GenericRpcHandler):
        def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(stall)

    @contextlib.asynccontextmanager
    async def stop_soon(run: ActiveRun) -> AsyncIterator[None]:
        asyncio.get_running_loop().call_later(0.8, run.stop)
        yield

    server = grpc.server(ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers([Stalled()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    began = monotonic()
    try:
        with pytest.raises(RunInterrupted) as stopped:
            run_load(
                SeldonEndpoint(f"grpc://127.0.0.1:{port}", protocol="grpc"),
                _grpc_replay(tmp_path),
                rate=40,
                duration=30,
                settings=EngineSettings(timeout=20, lag_threshold_ms=50),
                companion=stop_soon,
            )
        elapsed = monotonic() - began
    finally:
        released.set()
        server.stop(0)
    result = stopped.value.result
    assert elapsed < 5
    assert result.interrupted
    assert 20 <= result.requests <= 50
    assert result.error_kinds == {"interrupted_in_flight": result.requests}
