"""Seldon's three HTTP protocols: build prediction requests, judge responses.

* ``v2``: the Open Inference Protocol (MLServer, Seldon Core v2, KServe, Triton).
* ``v1``: Seldon Core v1's ``/api/v1.0/predictions``.
* ``legacy``: the seldon-server JS API the original Iago replays target (GET, JSONP).

A response is an error when its status is not 2xx, and also when a 200 carries a Seldon
failure in its body (a proxy may answer 200 for a failed graph).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote_plus

from .endpoint import PROTOCOLS
from .replay import ReplayRequest

JSON_HEADERS = (("Content-Type", "application/json"),)
_JSONP_NAME = re.compile(rb"[A-Za-z0-9_$.]+")


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def v2_datatype(values: Sequence[Any]) -> str:
    """The OIP datatype that carries these values without loss."""
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def v2_request(
    model: str,
    rows: Sequence[Sequence[Any]],
    *,
    input_name: str = "predict",
    datatype: str | None = None,
    outputs: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> ReplayRequest:
    """An OIP inference request: one input of shape [rows, columns], data row-major."""
    flat = [value for row in rows for value in row]
    document: dict[str, Any] = {
        "inputs": [
            {
                "name": input_name,
                "shape": [len(rows), len(rows[0]) if rows else 0],
                "datatype": datatype or v2_datatype(flat),
                "data": flat,
            }
        ]
    }
    if outputs:
        document["outputs"] = [{"name": name} for name in outputs]
    return ReplayRequest(
        "POST", f"/v2/models/{model}/infer", (*tuple(headers), *JSON_HEADERS), _compact(document)
    )


def v2_request_columns(
    model: str,
    columns: Sequence[tuple[str, Sequence[Any]]],
    *,
    datatypes: Sequence[str | None] = (),
    outputs: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> ReplayRequest:
    """An OIP request with one input per feature, each of shape [rows, 1].

    For rows that mix types (strings beside numbers): one OIP tensor has one datatype, so each
    feature travels as its own input, named after the feature.
    """
    inputs = []
    for position, (name, values) in enumerate(columns):
        given = datatypes[position] if position < len(datatypes) else None
        inputs.append(
            {
                "name": name,
                "shape": [len(values), 1],
                "datatype": given or v2_datatype(values),
                "data": list(values),
            }
        )
    document: dict[str, Any] = {"inputs": inputs}
    if outputs:
        document["outputs"] = [{"name": name} for name in outputs]
    return ReplayRequest(
        "POST", f"/v2/models/{model}/infer", (*tuple(headers), *JSON_HEADERS), _compact(document)
    )


def v1_request(
    rows: Sequence[Sequence[Any]], names: Sequence[str] = (), *, tensor: bool = False
) -> ReplayRequest:
    """A Seldon Core v1 prediction: ``{"data":{"names":[..],"ndarray":[[..]]}}`` (or tensor)."""
    data: dict[str, Any] = {}
    if names:
        data["names"] = list(names)
    if tensor:
        data["tensor"] = {
            "shape": [len(rows), len(rows[0]) if rows else 0],
            "values": [value for row in rows for value in row],
        }
    else:
        data["ndarray"] = [list(row) for row in rows]
    return ReplayRequest("POST", "/api/v1.0/predictions", JSON_HEADERS, _compact({"data": data}))


def legacy_predict_line(
    features: dict[str, Any], consumer_key: str, endpoint_host: str = "seldon-server"
) -> str:
    """A seldon-server JS prediction URL, byte for byte as Seldon's replay script wrote it."""
    payload = quote_plus(json.dumps(features, separators=(", ", ": ")))
    return (
        f"http://{endpoint_host}/js/predict?json={payload}"
        f"&consumer_key={consumer_key}&jsonpCallback=j"
    )


def unwrap_jsonp(body: bytes) -> bytes:
    """``j({...})`` → ``{...}``; a body that is not JSONP comes back unchanged.

    Spring's JSONP writer puts a ``/**/`` comment before the callback name; it is skipped.
    """
    text = body.strip()
    if text.startswith(b"/**/"):
        text = text[4:].lstrip()
    start = text.find(b"(")
    if start <= 0 or not text.endswith((b")", b");")):
        return body
    if not _JSONP_NAME.fullmatch(text[:start]):
        return body
    return text[start + 1 : text.rfind(b")")]


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def judge(protocol: str, status: int, body: bytes) -> str | None:
    """None when the response is a success; otherwise the kind of error it is.

    Cheap on the common path: the body is parsed only when a failure marker appears in it.
    """
    if not 200 <= status < 300:
        return f"http_{status}"
    if protocol == "v2":
        if b'"error"' in body:
            document = _json_or_none(body)
            if isinstance(document, dict) and document.get("error"):
                return "model_error"
        return None
    if protocol == "v1":
        if b'"status"' in body:
            document = _json_or_none(body)
            if isinstance(document, dict):
                status_field = document.get("status")
                if isinstance(status_field, dict) and status_field.get("status") == 1:
                    return "seldon_failure"
        return None
    if protocol == "legacy":
        # seldon-server's error JSON (ErrorBean): {"error_id":..,"error_msg":..,"http_response":..}
        if b'"error' in body:
            document = _json_or_none(unwrap_jsonp(body))
            if isinstance(document, dict) and (
                "error_id" in document or "error_msg" in document or "error" in document
            ):
                return "seldon_failure"
        return None
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
