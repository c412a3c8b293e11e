"""The Open Inference Protocol over gRPC: ModelInfer requests as replay lines and as protobuf.

A gRPC request in a replay is one line::

    GRPC /inference.GRPCInferenceService/ModelInfer [name:value ...] {JSON}

The target is the call's gRPC path; ``name:value`` words are metadata (``seldon-model:iris``);
the JSON is the OIP inference request as the REST API takes it (``inputs`` with ``name``,
``shape``, ``datatype`` and ``data``; optional ``id``, ``parameters`` and ``outputs``) plus
``model_name`` (required) and ``model_version``. The same document a V2 HTTP replay posts,
with the model named inside it, so the two forms convert into each other by hand.

The line is encoded to a ``ModelInferRequest`` once, when the replay is prepared: each
input's ``data`` goes into the typed ``contents`` field its datatype names. The message types
are built at run time from the public ``dataplane.proto`` field numbers with protobuf's own
descriptor machinery, so no generated stubs (nor MLServer) are needed to send.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .protocols.v2 import oip_rows_document
from .replay import NEVER_REPLAYED, ReplayError, ReplayRequest

GRPC_METHOD = "GRPC"
"""The replay line's first word for a gRPC call."""
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
"""The Open Inference Protocol's inference call (the only one a replay line may name)."""

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""Which typed field of InferTensorContents carries each OIP datatype."""
NARROW_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
}
"""Datatypes narrower than the protobuf field that carries them: their values are checked."""

_METADATA_WORD = re.compile(r"^([0-9A-Za-z_.-]+):([\x21-\x7e]+)$")
_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")
_METADATA_VALUE = re.compile(r"^[\x20-\x7e]*$")
_RESERVED_METADATA = frozenset({"content-type", "te", "user-agent", "host", "connection"})
_REQUEST_KEYS = frozenset({"model_name", "model_version", "id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "data", "parameters"})


class GrpcPayload(NamedTuple):
    """A gRPC call ready to send: method path, serialized request, metadata."""

    method: str
    message: bytes
    metadata: tuple[tuple[str, str], ...]


# ---- the message types, from the public proto's field numbers ---------------------------


def _build_messages() -> dict[str, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="pytest_seldon_load/oip_dataplane.proto", package="inference", syntax="proto3"
    )

    def fill(described: Any, fields: Sequence[tuple]) -> None:
        for field_name, number, kind, *rest in fields:
            field = described.field.add(name=field_name, number=number, type=kind)
            field.label = F.LABEL_REPEATED if "repeated" in rest else F.LABEL_OPTIONAL
            for type_name in (r for r in rest if r.startswith(".")):
                field.type_name = type_name

    def message(parent: Any, name: str, fields: Sequence[tuple], oneof: str = "") -> Any:
        """A message type; a field is (name, number, type[, "repeated"][, ".type.Name"])."""
        described = parent.add(name=name)
        fill(described, fields)
        if oneof:
            described.oneof_decl.add(name=oneof)
            for field in described.field:
                field.oneof_index = 0
        return described

    def parameters(owner: Any, owner_name: str, number: int) -> tuple:
        """A `map<string, InferParameter>` field: protobuf spells it as a nested entry type."""
        entry = message(
            owner.nested_type,
            "ParametersEntry",
            [
                ("key", 1, F.TYPE_STRING),
                ("value", 2, F.TYPE_MESSAGE, ".inference.InferParameter"),
            ],
        )
        entry.options.map_entry = True
        return ("parameters", number, F.TYPE_MESSAGE, "repeated", f".{owner_name}.ParametersEntry")

    message(
        file.message_type,
        "InferParameter",
        [
            ("bool_param", 1, F.TYPE_BOOL),
            ("int64_param", 2, F.TYPE_INT64),
            ("string_param", 3, F.TYPE_STRING),
        ],
        oneof="parameter_choice",
    )
    message(
        file.message_type,
        "InferTensorContents",
        [
            ("bool_contents", 1, F.TYPE_BOOL, "repeated"),
            ("int_contents", 2, F.TYPE_INT32, "repeated"),
            ("int64_contents", 3, F.TYPE_INT64, "repeated"),
            ("uint_contents", 4, F.TYPE_UINT32, "repeated"),
            ("uint64_contents", 5, F.TYPE_UINT64, "repeated"),
            ("fp32_contents", 6, F.TYPE_FLOAT, "repeated"),
            ("fp64_contents", 7, F.TYPE_DOUBLE, "repeated"),
            ("bytes_contents", 8, F.TYPE_BYTES, "repeated"),
        ],
    )
    request_name = "inference.ModelInferRequest"
    request = message(file.message_type, "ModelInferRequest", [])
    tensor = message(request.nested_type, "InferInputTensor", [])
    fill(
        tensor,
        [
            ("name", 1, F.TYPE_STRING),
            ("datatype", 2, F.TYPE_STRING),
            ("shape", 3, F.TYPE_INT64, "repeated"),
            parameters(tensor, f"{request_name}.InferInputTensor", 4),
            ("contents", 5, F.TYPE_MESSAGE, ".inference.InferTensorContents"),
        ],
    )
    output = message(request.nested_type, "InferRequestedOutputTensor", [])
    fill(
        output,
        [
            ("name", 1, F.TYPE_STRING),
            parameters(output, f"{request_name}.InferRequestedOutputTensor", 2),
        ],
    )
    fill(
        request,
        [
            ("model_name", 1, F.TYPE_STRING),
            ("model_version", 2, F.TYPE_STRING),
            ("id", 3, F.TYPE_STRING),
            parameters(request, request_name, 4),
            ("inputs", 5, F.TYPE_MESSAGE, "repeated", f".{request_name}.InferInputTensor"),
            (
                "outputs",
                6,
                F.TYPE_MESSAGE,
                "repeated",
                f".{request_name}.InferRequestedOutputTensor",
            ),
            ("raw_input_contents", 7, F.TYPE_BYTES, "repeated"),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}"))
        for name in ("ModelInferRequest", "InferParameter", "InferTensorContents")
    }


@functools.cache
def _messages() -> dict[str, Any]:
    try:
        return _build_messages()
    except ImportError:
        raise ImportError(
            "gRPC requests need protobuf: pip install 'pytest-seldon-load[grpc]'"
        ) from None


def model_infer_request_class() -> Any:
    """The ModelInferRequest message class (wire-compatible with dataplane.proto)."""
    return _messages()["ModelInferRequest"]


# ---- JSON document -> ModelInferRequest ------------------------------------------------------


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _set_parameters(target: Any, parameters: Any, where: str) -> None:
    if not isinstance(parameters, dict):
        raise ValueError(f"{where}: must be a JSON object")
    for key, value in parameters.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.bool_param = value
        elif isinstance(value, int):
            slot.int64_param = value
        elif isinstance(value, str):
            slot.string_param = value
        else:
            raise ValueError(
                f"{where}.{key}: a gRPC parameter is a bool, an integer or a string, "
                f"got {type(value).__name__}"
            )


def _fill_contents(contents: Any, datatype: str, values: list[Any], where: str) -> None:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        known = ", ".join(CONTENTS_FIELD)
        raise ValueError(
            f"{where}.datatype: {datatype!r} has no typed contents field in gRPC; "
            f"use one of {known}"
        )
    if datatype == "BYTES":
        values = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    bounds = NARROW_RANGES.get(datatype)
    if bounds is not None:
        low, high = bounds
        outside = next((v for v in values if isinstance(v, int) and not low <= v <= high), None)
        if outside is not None:
            raise ValueError(f"{where}.data: {outside} is outside {datatype} ({low}..{high})")
    try:
        getattr(contents, field).extend(values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}.data: values do not fit {datatype} ({exc})") from None


def encode_infer_request(document: Mapping[str, Any]) -> bytes:
    """A ModelInferRequest, serialized, from the line's JSON document (see the module doc)."""
    if not isinstance(document, Mapping):
        raise ValueError("the request must be a JSON object")
    unknown = set(document) - _REQUEST_KEYS
    if unknown:
        raise ValueError(
            f"unknown field {sorted(unknown)[0]!r}; "
            f"a request has {', '.join(sorted(_REQUEST_KEYS))}"
        )
    model = document.get("model_name")
    if not isinstance(model, str) or not model:
        raise ValueError("model_name: required, the name of the model to call")
    request = model_infer_request_class()(model_name=model)
    for key in ("model_version", "id"):
        if key in document:
            if not isinstance(document[key], str):
                raise ValueError(f"{key}: must be a string")
            setattr(request, key, document[key])
    if "parameters" in document:
        _set_parameters(request.parameters, document["parameters"], "parameters")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValueError("inputs: required, a non-empty list of tensors")
    for index, given in enumerate(inputs):
        where = f"inputs[{index}]"
        if not isinstance(given, dict):
            raise ValueError(f"{where}: must be a JSON object")
        unknown = set(given) - _INPUT_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        name, datatype, shape = given.get("name"), given.get("datatype"), given.get("shape")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name: required")
        if not isinstance(datatype, str):
            raise ValueError(f"{where}.datatype: required (FP32, INT64, BYTES, ...)")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"{where}.shape: required, a list of non-negative integers")
        if "data" not in given:
            raise ValueError(f"{where}.data: required")
        values = _flatten(given["data"])
        if len(values) != math.prod(shape):
            raise ValueError(
                f"{where}.data: {len(values)} values do not fill shape {shape} "
                f"({math.prod(shape)} values)"
            )
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        if "parameters" in given:
            _set_parameters(tensor.parameters, given["parameters"], f"{where}.parameters")
        _fill_contents(tensor.contents, datatype, values, where)
    outputs = document.get("outputs", [])
    if not isinstance(outputs, list):
        raise ValueError("outputs: must be a list of {name: ...}")
    for index, given in enumerate(outputs):
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            raise ValueError(f"outputs[{index}]: must be an object with a name")
        output = request.outputs.add(name=given["name"])
        if "parameters" in given:
            _set_parameters(output.parameters, given["parameters"], f"outputs[{index}].parameters")
    return request.SerializeToString()


# ---- replay lines ------------------------------------------------------------------------------


def metadata_problem(name: str, value: str, *, in_line: bool = True) -> str | None:
    """Why `name: value` cannot be gRPC metadata; None when it can.

    In a replay line a value is one word; an endpoint's value (``Bearer TOKEN``) may hold
    spaces, as gRPC allows.
    """
    key = name.lower()
    value_ok = _METADATA_WORD.match(f"{key}:{value}") if in_line else _METADATA_VALUE.match(value)
    if not _METADATA_KEY.match(key) or not value_ok:
        where = "without spaces in a replay line" if in_line else ""
        return (
            f"metadata {name!r}: a gRPC metadata key is letters, digits, '-', '_' or '.', "
            f"and its value printable ASCII {where}".rstrip()
        )
    if key.startswith("grpc-") or key in _RESERVED_METADATA:
        return f"metadata {name!r} is set by gRPC itself; remove it"
    if key.endswith("-bin"):
        where = "go in a replay line" if in_line else "be given as text"
        return f"metadata {name!r}: binary ('-bin') metadata cannot {where}"
    return None


def parse_grpc_line(
    text: str, line_number: int = 0, source: str = "<replay>"
) -> ReplayRequest | None:
    """A ``GRPC ...`` replay line to a request (checked by encoding it); None for blank/comment."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    method, _, rest = stripped.partition(" ")
    if method != GRPC_METHOD:
        raise ReplayError(
            source,
            line_number,
            f"a gRPC line starts with {GRPC_METHOD}: "
            f"'{GRPC_METHOD} {MODEL_INFER} [name:value ...] {{JSON}}'",
            stripped,
        )
    target, _, rest = rest.lstrip(" ").partition(" ")
    if target != MODEL_INFER:
        raise ReplayError(
            source,
            line_number,
            f"unknown gRPC call {target[:80]!r}: a replay line calls {MODEL_INFER}",
        )
    metadata: list[tuple[str, str]] = []
    rest = rest.lstrip(" ")
    while rest and not rest.startswith("{"):
        word, _, after = rest.partition(" ")
        name, colon, value = word.partition(":")
        problem = metadata_problem(name, value) if colon else f"{word[:40]!r} is not name:value"
        if problem:
            raise ReplayError(source, line_number, problem)
        metadata.append((name.lower(), value))
        rest = after.lstrip(" ")
    if not rest:
        raise ReplayError(source, line_number, "a gRPC line needs the request as JSON", stripped)
    body = rest.encode("utf-8")
    try:
        encode_infer_request(json.loads(body))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        raise ReplayError(source, line_number, f"bad ModelInfer request: {exc}") from None
    return ReplayRequest(GRPC_METHOD, target, tuple(metadata), body, line_number)


def prepare(request: ReplayRequest, metadata: Mapping[str, str] | None = None) -> GrpcPayload:
    """A replay request as a ready-to-send call: encoded once, sent as is every time.

    `metadata` (the endpoint's headers) goes with every call; the line's own words win.
    A mesh's route pin (``x-seldon-route``, `replay.NEVER_REPLAYED`) is never sent.
    """
    if request.method != GRPC_METHOD or request.target != MODEL_INFER:
        raise ValueError(
            f"line {request.line_number}: {request.method} {request.target[:80]} is not a gRPC "
            f"call; a gRPC replay line is '{GRPC_METHOD} {MODEL_INFER} ... {{JSON}}'"
        )
    merged: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        problem = metadata_problem(name, value, in_line=False)
        if problem:
            raise ValueError(problem)
        merged[name.lower()] = value
    for name, value in request.headers:
        problem = metadata_problem(name, value)
        if problem:
            raise ValueError(f"line {request.line_number}: {problem}")
        merged[name.lower()] = value
    for name in NEVER_REPLAYED:
        merged.pop(name, None)
    try:
        message = encode_infer_request(json.loads(request.body or b""))
    except ValueError as exc:
        raise ValueError(f"line {request.line_number}: bad ModelInfer request: {exc}") from None
    return GrpcPayload(request.target, message, tuple(merged.items()))


def grpc_request(
    model: str,
    rows: Sequence[Sequence[Any]],
    *,
    input_name: str = "predict",
    datatype: str | None = None,
    outputs: Sequence[str] = (),
    metadata: Sequence[tuple[str, str]] = (),
) -> ReplayRequest:
    """A ModelInfer call for feature rows: one input of shape [rows, columns], row-major."""
    document = {
        "model_name": model,
        **oip_rows_document(rows, input_name=input_name, datatype=datatype, outputs=outputs),
    }
    for name, value in metadata:
        problem = metadata_problem(name, value)
        if problem:
            raise ValueError(problem)
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    encode_infer_request(document)  # refuse now what could not be sent later
    return ReplayRequest(GRPC_METHOD, MODEL_INFER, tuple((k.lower(), v) for k, v in metadata), body)
