"""``v1``: Seldon Core v1's ``POST /api/v1.0/predictions``.

Rows travel as ``{"data":{"names":[..],"ndarray":[[..]]}}`` or, numbers only, as the tensor
form ``{"data":{"names":[..],"tensor":{"shape":[..],"values":[..]}}}``. A 200 can still carry
a failure: ``{"status":{"status":1, ...}}`` (Seldon's FAILURE).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..replay import ReplayRequest
from .base import (
    JSON_HEADERS,
    Column,
    Formatter,
    PredictionOptions,
    SeldonProtocol,
    UnsupportedFeature,
    http_error,
)
from .templates import compact, group, rows

if TYPE_CHECKING:  # numpy is loaded by the generator that calls these
    import numpy as np

_PATH = "/api/v1.0/predictions"


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
    return ReplayRequest("POST", _PATH, JSON_HEADERS, compact({"data": data}).encode("utf-8"))


class V1(SeldonProtocol):
    name = "v1"
    summary = "Seldon Core v1, POST /api/v1.0/predictions"
    accepts = frozenset({"batch", "tensor"})

    def infer_path(self, model: str) -> str:
        return _PATH

    def ready_path(self, model: str) -> str:
        return "/health/ping"

    def judge(self, status: int, body: bytes) -> str | None:
        if not 200 <= status < 300:
            return http_error(status)
        if b'"status"' in body:
            try:
                document = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return None
            if isinstance(document, dict):
                status_field = document.get("status")
                if isinstance(status_field, dict) and status_field.get("status") == 1:
                    return "seldon_failure"
        return None

    def prediction_formatter(
        self, columns: Sequence[Column], options: PredictionOptions
    ) -> Formatter:
        batch = options.batch
        if options.tensor:
            for position, column in enumerate(columns, 1):
                if column.kind not in ("float", "int"):
                    raise UnsupportedFeature(
                        position,
                        column.name,
                        f"the v1 tensor form carries numbers only, and this feature holds "
                        f"{'booleans' if column.kind == 'bool' else 'strings'}; "
                        "use the ndarray form",
                    )
        names = compact([c.name for c in columns])
        prefix = f"POST {_PATH} Content-Type:application/json "
        if options.tensor:
            shape = f"[{batch},{len(columns)}]"
            head = f'{prefix}{{"data":{{"names":{names},"tensor":{{"shape":{shape},"values":['
            tail, row_separator, group_separator = "]}}}", ",", ","
        else:
            head = f'{prefix}{{"data":{{"names":{names},"ndarray":[['
            tail, row_separator, group_separator = "]]}}", ",", "],["

        def format_lines(samples: list[np.ndarray]) -> list[str]:
            texts = [c.texts(s, "json") for c, s in zip(columns, samples, strict=True)]
            groups = group(rows(texts, row_separator), batch, group_separator)
            return [head + g + tail for g in groups]

        return format_lines
