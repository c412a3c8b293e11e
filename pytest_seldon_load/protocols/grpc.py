"""``grpc``: the Open Inference Protocol over gRPC, ``inference.GRPCInferenceService/ModelInfer``.

MLServer and Seldon Core 2's mesh serve it beside the REST API. A replay line is
``GRPC /inference.GRPCInferenceService/ModelInfer [name:value ...] {JSON}`` (see `oip_grpc`):
the same inference document a ``v2`` line posts, with ``model_name`` inside it. An endpoint is
``grpc://HOST:PORT`` (``grpcs://`` for TLS); its headers travel as metadata.

A call that ends with a status other than OK is an error, counted by its code number in
``status_codes`` (reports show it with its name, ``5 NOT_FOUND``) and by name in
``error_kinds`` (``grpc_NOT_FOUND``); the engine's timeout is
each call's deadline (``timeout`` when it passes, as over HTTP). grpcio is imported only when
a run starts, so writing and checking gRPC replays needs only protobuf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..oip_grpc import GRPC_METHOD, MODEL_INFER, metadata_problem
from .base import PredictionOptions
from .templates import compact
from .v2 import OpenInference

if TYPE_CHECKING:
    from ..endpoint import SeldonEndpoint
    from ..engine import EngineSettings
    from ..transport import Transport

STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC's status codes by number, as the gRPC specification numbers them."""


def status_error(status: int) -> str | None:
    """The error kind of a gRPC status number: None for OK, else ``grpc_<NAME>``."""
    if status == 0:
        return None
    if 0 < status < len(STATUS_NAMES):
        return f"grpc_{STATUS_NAMES[status]}"
    return f"grpc_status_{status}"


class Grpc(OpenInference):
    name = "grpc"
    summary = (
        "Open Inference Protocol over gRPC, inference.GRPCInferenceService/ModelInfer "
        "(MLServer, Seldon Core v2), --seldon-url grpc://HOST:PORT"
    )
    schemes = ("grpc", "grpcs")

    def infer_path(self, model: str) -> str:
        return MODEL_INFER

    def ready_path(self, model: str) -> str:
        return "/inference.GRPCInferenceService/ModelReady"

    def status_ok(self, status: int) -> bool:
        return status == 0

    def status_text(self, status: int) -> str:
        known = 0 <= status < len(STATUS_NAMES)
        return f"{status} {STATUS_NAMES[status]}" if known else str(status)

    def judge(self, status: int, body: bytes) -> str | None:
        # The transport names every failed call itself; a status reaches here only as OK.
        return status_error(status)

    def url_problem(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.path.strip("/") or parts.query:
            return f"{url!r}: a gRPC target has no path (the call names the service)"
        return None

    def header_problem(self, name: str, value: str) -> str | None:
        return metadata_problem(name, value, in_line=False)

    def line_prefix(self, options: PredictionOptions) -> str:
        prefix = f"{GRPC_METHOD} {MODEL_INFER} "
        if options.seldon_model_header:
            prefix += f"seldon-model:{options.seldon_model_header} "
        return prefix

    def document_lead(self, options: PredictionOptions) -> str:
        return f'"model_name":{compact(options.model)},'

    def transport(self, endpoint: SeldonEndpoint, settings: EngineSettings) -> Transport:
        from ..grpc_transport import endpoint_transport

        return endpoint_transport(endpoint, settings)
