"""``legacy``: the seldon-server JS API that the original Iago replays target.

Requests are GETs with everything in the query (``/js/predict?json=...&consumer_key=KEY``),
answers are JSONP (``j({...})``), and a failure comes back as a 200 carrying seldon-server's
error JSON (``{"error_id":..,"error_msg":..,"http_response":..}``). Lines are written byte
for byte as Seldon's ``create_prediction_replay.py`` and ``create_recommendation_replay.py``
wrote them; only the path and query reach the wire (the host is the target under test).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from .base import Column, Formatter, PredictionOptions, SeldonProtocol, http_error
from .templates import template

if TYPE_CHECKING:  # numpy is loaded by the generator that calls these
    import numpy as np

_JSONP_NAME = re.compile(rb"[A-Za-z0-9_$.]+")
_HOST = re.compile(r"^[A-Za-z0-9._~\-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](:[0-9]+)?$")


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


def clean_host(endpoint_host: str) -> str:
    """The host[:port] written into each URL (a scheme or a trailing slash is dropped)."""
    host = endpoint_host.strip()
    for scheme in ("http://", "https://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    host = host.rstrip("/")
    if not _HOST.match(host):
        raise ValueError(
            f"endpoint must be a host[:port] such as seldon-server, got {endpoint_host!r}"
        )
    return host


def recommendation_template(host: str, consumer_key: str, item_type: int) -> str:
    """One API call as two lines (a recommendation, then an action), as a str.format template
    with slots: user, item, user, item, click (``""`` or ``"&rlabs=1"``)."""
    return template(
        [
            f"http://{host}/js/recommendations?consumer_key={consumer_key}&user=",
            "&item=",
            f"&limit=10&jsonpCallback=j\nhttp://{host}/js/action/new?consumer_key={consumer_key}"
            "&user=",
            "&item=",
            f"&type={item_type}",
            "&jsonpCallback=j",
        ]
    )


class Legacy(SeldonProtocol):
    name = "legacy"
    summary = "seldon-server JS API, GET /js/predict (JSONP)"
    accepts = frozenset({"consumer_key", "endpoint_host"})
    needs = frozenset({"consumer_key"})

    def infer_path(self, model: str) -> str:
        return "/js/predict"

    def ready_path(self, model: str) -> str:
        return "/"

    def judge(self, status: int, body: bytes) -> str | None:
        if not 200 <= status < 300:
            return http_error(status)
        if b'"error' in body:
            try:
                document = json.loads(unwrap_jsonp(body))
            except (ValueError, UnicodeDecodeError):
                return None
            if isinstance(document, dict) and (
                "error_id" in document or "error_msg" in document or "error" in document
            ):
                return "seldon_failure"
        return None

    def prediction_formatter(
        self, columns: Sequence[Column], options: PredictionOptions
    ) -> Formatter:
        host = clean_host(options.endpoint_host)
        literals = [f"http://{host}/js/predict?json=%7B"]
        for position, column in enumerate(columns):
            if position:
                literals[-1] += "%2C+"
            literals[-1] += quote_plus(json.dumps(column.name)) + "%3A+"
            literals.append("")
        literals[-1] += f"%7D&consumer_key={options.consumer_key}&jsonpCallback=j"
        line = template(literals)

        def format_lines(samples: list[np.ndarray]) -> list[str]:
            texts = [c.texts(s, "url") for c, s in zip(columns, samples, strict=True)]
            return list(map(line.format, *texts))

        return format_lines
