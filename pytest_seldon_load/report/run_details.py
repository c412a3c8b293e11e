"""The text parts of a run's section in the HTML report: how it was set up, what failed.

A chart shows that something went wrong; these say with what settings, which answers the
server gave (status codes, error kinds and a sample body of each, masked) and what the test
said when it failed, so a report read days later, from a CI artifact, needs nothing else.
Every value shown goes through `redact_text`: a body can echo a token, a URL can carry a key.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..durations import format_ms
from ..redact import redact_text

if TYPE_CHECKING:
    from ..protocols.base import SeldonProtocol


def esc(value: object) -> str:
    """`value` as HTML text, secrets masked."""
    return html.escape(redact_text(str(value)))


def _seconds(value: Any) -> str:
    number = float(value or 0)
    return f"{number:g}s"


def started_text(started_at: Any) -> str:
    """A Unix time as UTC, to the second; "unknown" for a result that does not say."""
    try:
        stamp = float(started_at or 0)
    except (TypeError, ValueError):
        return "unknown"
    if stamp <= 0 or not math.isfinite(stamp):
        return "unknown"
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def settings(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) of each setting of the run; "unknown" where an older result is silent."""
    seed = run.get("seed")
    connections = int(run.get("connections", 0) or 0)
    return [
        ("target", str(run.get("target") or "unknown")),
        ("protocol", str(run.get("protocol") or "unknown")),
        ("arrival", str(run.get("arrival") or "unknown")),
        ("rate", f"{float(run.get('target_rate', 0) or 0):g}/s"),
        ("warm-up", _seconds(run.get("warmup"))),
        ("measured", _seconds(run.get("duration"))),
        ("connections", str(connections) if connections else "unknown"),
        ("seed", "random" if seed is None else str(seed)),
        ("engine", str(run.get("engine") or "unknown")),
        ("processes", str(run.get("processes", 1))),
        ("started", started_text(run.get("started_at"))),
    ]


def settings_html(run: Mapping[str, Any]) -> str:
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in settings(run))
    return f'<dl class="settings">{cells}</dl>'


def lag_text(run: Mapping[str, Any]) -> str:
    """Late sends and the worst lag: how far the generator strayed from its schedule."""
    late = int(run.get("late_sends", 0) or 0)
    worst = float(run.get("max_lag_ms", 0) or 0)
    return f"{late} late sends, worst {format_ms(worst)}"


def _share(count: int, total: int) -> str:
    return f"{count / total:.2%}" if total else "-"


def _protocol_of(run: Mapping[str, Any]) -> SeldonProtocol:
    """The run's protocol, for reading its status codes (older files name none: HTTP)."""
    from .. import protocols

    try:
        return protocols.get(str(run.get("protocol") or "v2"))
    except ValueError:
        return protocols.get("v2")


def errors_html(run: Mapping[str, Any]) -> str:
    """Status codes, error kinds and sample bodies; nothing for a run without errors whose
    answers were all successes."""
    codes = {int(k): int(v) for k, v in (run.get("status_codes") or {}).items()}
    kinds = {str(k): int(v) for k, v in (run.get("error_kinds") or {}).items()}
    protocol = _protocol_of(run)
    if not kinds and all(protocol.status_ok(code) for code in codes):
        return ""
    samples: Mapping[str, Any] = run.get("error_samples") or {}
    answered = sum(codes.values())
    total = max(int(run.get("scheduled", 0) or 0), int(run.get("requests", 0) or 0))
    code_rows = "".join(
        f'<tr class="{"ok" if protocol.status_ok(code) else "bad"}">'
        f"<td>{esc(protocol.status_text(code))}</td><td>{count}</td>"
        f"<td>{_share(count, answered)}</td></tr>"
        for code, count in sorted(codes.items())
    )
    kind_rows = "".join(
        f"<tr><td>{esc(kind)}</td><td>{count}</td><td>{_share(count, total)}</td>"
        f"<td>{_samples_html(samples.get(kind) or [])}</td></tr>"
        for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    parts = ['<div class="errors"><h3>errors</h3>']
    if code_rows:
        parts.append(
            '<table class="status-codes"><thead><tr><th>status</th><th>answers</th>'
            f"<th>share</th></tr></thead><tbody>{code_rows}</tbody></table>"
        )
    if kind_rows:
        parts.append(
            '<table class="error-kinds"><thead><tr><th>error kind</th><th>count</th>'
            f"<th>of requests</th><th>sample answers (masked, cut short)</th></tr></thead>"
            f"<tbody>{kind_rows}</tbody></table>"
        )
    parts.append("</div>")
    return "".join(parts)


def _samples_html(samples: list[Any]) -> str:
    shown = []
    for sample in samples:
        if not isinstance(sample, Mapping):
            continue
        status = sample.get("status")
        head = f"HTTP {status}" if status is not None else "no status"
        body = str(sample.get("body") or "")
        text = esc(body) if body else "<em>(empty body)</em>"
        shown.append(f'<div class="sample"><span>{esc(head)}</span><pre>{text}</pre></div>')
    return "".join(shown) or '<span class="none">no answer kept</span>'


def failure_html(run: Mapping[str, Any]) -> str:
    """What the test said when it failed (its exception, masked), if it failed."""
    text = str(run.get("failure") or "")
    if not text:
        return ""
    return (
        '<details class="failure" open><summary>the test failed</summary>'
        f"<pre>{esc(text)}</pre></details>"
    )
