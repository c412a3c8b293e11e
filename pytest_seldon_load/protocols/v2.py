"""``v2``: the Open Inference Protocol (MLServer, Seldon Core v2, KServe, Triton).

``POST /v2/models/<model>/infer``. A 200 can still carry a failure: ``{"error": "..."}``.
When every feature is a number, rows travel as ONE input (``predict``), shape
``[batch, n_features]``, data flat and row-major, ``INT64`` if every feature is an integer
and ``FP64`` otherwise. One tensor has one datatype, so when strings or booleans appear each
feature travels as its own input named after it, shape ``[batch, 1]``, with its own datatype.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..replay import ReplayRequest
from .base import (
    JSON_HEADERS,
    Column,
    Formatter,
    PredictionOptions,
    SeldonProtocol,
    http_error,
)
from .templates import compact, group, rows, template

if TYPE_CHECKING:  # numpy is loaded by the generator that calls these
    import numpy as np

_MODEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]*$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]+$")
_NUMERIC_KINDS = ("float", "int")
_TYPES = {
    "float": ("FP64", "fp64"),
    "int": ("INT64", "json"),
    "bool": ("BOOL", "json"),
    "str": ("BYTES", "bytes"),
    "mixed": ("BYTES", "bytes"),
}


def v2_datatype(values: Sequence[Any]) -> str:
    """The OIP datatype that carries these values without loss."""
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def oip_rows_document(
    rows: Sequence[Sequence[Any]],
    *,
    input_name: str = "predict",
    datatype: str | None = None,
    outputs: Sequence[str] = (),
) -> dict[str, Any]:
    """An OIP inference document (REST body or ModelInfer message) for feature rows: one
    input of shape [rows, columns], data row-major."""
    flat = [value for row in rows for value in row]
    return _with_outputs(
        [
            {
                "name": input_name,
                "shape": [len(rows), len(rows[0]) if rows else 0],
                "datatype": datatype or v2_datatype(flat),
                "data": flat,
            }
        ],
        outputs,
    )


def _with_outputs(inputs: list[dict[str, Any]], outputs: Sequence[str]) -> dict[str, Any]:
    document: dict[str, Any] = {"inputs": inputs}
    if outputs:
        document["outputs"] = [{"name": name} for name in outputs]
    return document


def _post_infer(
    model: str, document: Mapping[str, Any], headers: Sequence[tuple[str, str]]
) -> ReplayRequest:
    return ReplayRequest(
        "POST",
        f"/v2/models/{model}/infer",
        (*tuple(headers), *JSON_HEADERS),
        compact(document).encode("utf-8"),
    )


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
    document = oip_rows_document(rows, input_name=input_name, datatype=datatype, outputs=outputs)
    return _post_infer(model, document, headers)


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
    return _post_infer(model, _with_outputs(inputs, outputs), headers)


def v2_layout(columns_or_kinds: Sequence[Any]) -> str:
    """``single`` (one numeric tensor) or ``per-feature`` (one input per feature)."""
    kinds = [getattr(c, "kind", c) for c in columns_or_kinds]
    return "single" if all(k in _NUMERIC_KINDS for k in kinds) else "per-feature"


class OpenInference(SeldonProtocol):
    """What REST and gRPC flavours of the Open Inference Protocol share: the options a
    prediction replay takes, the request layout, and the document each line carries."""

    accepts = frozenset({"batch", "model", "outputs", "seldon_model_header", "input_name"})

    def layout_note(self, columns: Sequence[Column]) -> str:
        return "" if v2_layout(columns) == "single" else "one input per feature"

    def prediction_formatter(
        self, columns: Sequence[Column], options: PredictionOptions
    ) -> Formatter:
        check_oip_options(options)
        return oip_formatter(
            columns, options, self.line_prefix(options), self.document_lead(options)
        )

    @abstractmethod
    def line_prefix(self, options: PredictionOptions) -> str:
        """A replay line up to its document: method, target and headers."""

    def document_lead(self, options: PredictionOptions) -> str:
        """What the document holds before its inputs (nothing, over REST)."""
        return ""


class V2(OpenInference):
    name = "v2"
    summary = "Open Inference Protocol, POST /v2/models/MODEL/infer (MLServer, Seldon Core v2)"

    def infer_path(self, model: str) -> str:
        return f"/v2/models/{model}/infer"

    def ready_path(self, model: str) -> str:
        return f"/v2/models/{model}/ready"

    def judge(self, status: int, body: bytes) -> str | None:
        if not 200 <= status < 300:
            return http_error(status)
        if b'"error"' in body:
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return None
            if isinstance(document, dict) and document.get("error"):
                return "model_error"
        return None

    def line_prefix(self, options: PredictionOptions) -> str:
        prefix = f"POST {options.infer_path or self.infer_path(options.model)} "
        if options.seldon_model_header:
            prefix += f"Seldon-Model:{options.seldon_model_header} "
        return prefix + "Content-Type:application/json "


def check_oip_options(options: PredictionOptions) -> None:
    """The model name, Seldon-Model route and outputs of an OIP prediction replay, checked."""
    model, header = options.model, options.seldon_model_header
    if not _MODEL.match(model):
        raise ValueError(f"model name {model!r} must be letters, digits, '.', '_' and '-'")
    if header is not None and not _HEADER_VALUE.match(header):
        raise ValueError(f"Seldon-Model header {header!r} must be printable ASCII with no spaces")
    for output in options.outputs:
        if not isinstance(output, str) or not output:
            raise ValueError(f"a requested output must be a non-empty name, got {output!r}")


def oip_formatter(
    columns: Sequence[Column], options: PredictionOptions, prefix: str, lead: str = ""
) -> Formatter:
    """Lines of `prefix` then an OIP inference request document; `lead` is written first
    inside the document (gRPC's ``"model_name":...,``). The layout is `v2_layout`'s."""
    batch = options.batch
    prefix += "{" + lead
    tail = "]}]"
    if options.outputs:
        tail += ',"outputs":' + compact([{"name": o} for o in options.outputs])
    tail += "}"
    if v2_layout(columns) == "single":
        integers = all(c.kind == "int" for c in columns)
        datatype, encoding = ("INT64", "json") if integers else ("FP64", "fp64")
        head = (
            f'{prefix}"inputs":[{{"name":{json.dumps(options.input_name)},'
            f'"shape":[{batch},{len(columns)}],"datatype":"{datatype}","data":['
        )

        def format_single(samples: list[np.ndarray]) -> list[str]:
            texts = [c.texts(s, encoding) for c, s in zip(columns, samples, strict=True)]
            return [head + g + tail for g in group(rows(texts, ","), batch, ",")]

        return format_single

    literals = [f'{prefix}"inputs":[']
    encodings = []
    for position, column in enumerate(columns):
        datatype, encoding = _TYPES[column.kind]
        encodings.append(encoding)
        literals[-1] += ("]}," if position else "") + (
            f'{{"name":{json.dumps(column.name)},"shape":[{batch},1],'
            f'"datatype":"{datatype}","data":['
        )
        literals.append("")
    literals[-1] += tail
    line = template(literals)

    def format_columns(samples: list[np.ndarray]) -> list[str]:
        texts = [
            group(c.texts(s, e), batch, ",")
            for c, s, e in zip(columns, samples, encodings, strict=True)
        ]
        return list(map(line.format, *texts))

    return format_columns
