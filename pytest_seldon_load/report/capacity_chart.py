"""A capacity search on the HTML page: p50 and p99 against the offered rate, one point a
stage, the latency budgets as lines, failed and unjudged stages marked, and the stage table.

Drawn with the page's own SVG `Chart`, so it reads like the run charts beside it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from ..capacity import Capacity
from ..durations import format_ms, parse_budget_ms
from ..redact import redact_text
from .html import Chart, Series, _ms_tick, _nice_top, nice_ticks


def _latency_budgets(capacity: Capacity) -> list[tuple[float, str, str]]:
    guides = []
    for key, value in capacity.budgets.items():
        if key in ("error_rate", "throughput"):
            continue
        try:
            limit = parse_budget_ms(value, key)
        except ValueError:
            continue
        guides.append((limit, "budget", f"{key} budget {format_ms(limit)}"))
    return guides


def capacity_chart(capacity: Capacity) -> Chart:
    """Rate (x) against p50 and p99 (y) of every stage, in the order of rate."""
    stages = sorted(capacity.stages, key=lambda s: s.rate)
    xs = [s.rate for s in stages]
    guides = _latency_budgets(capacity)
    highest = max(
        [v for s in stages for v in (s.p50, s.p99) if math.isfinite(v)]
        + [g[0] for g in guides]
        + [1.0]
    )
    top = _nice_top(highest)
    x_high = max(xs) if xs else 1.0
    markers = [
        (
            s.rate,
            min(s.p99, top * 1.2) if math.isfinite(s.p99) else 0.0,
            "budget",
            f"{s.rate:g}/s {s.verdict}: {'; '.join(s.reasons)}",
        )
        for s in stages
        if s.verdict != "pass"
    ]
    return Chart(
        title=f"capacity: {capacity.rate:g}/s" if capacity.rate is not None else "capacity",
        kind="capacity",
        x_low=0.0,
        x_high=x_high,
        y_high=top,
        x_ticks=[(x, f"{x:g}") for x in nice_ticks(0.0, x_high, 5)],
        y_text=_ms_tick,
        x_label="offered rate (requests per second)",
        y_label="latency",
        point_labels=[f"{x:g}/s" for x in xs],
        point_xs=xs,
        series=[
            Series("p99", "p99", xs, [s.p99 for s in stages], format_ms),
            Series("p50", "p50", xs, [s.p50 for s in stages], format_ms),
        ],
        guides=guides,
        markers=markers,
    )


def _stage_rows(capacity: Capacity) -> str:
    rows = []
    for stage in sorted(capacity.stages, key=lambda s: s.rate):
        css = {"pass": "good", "FAIL": "bad"}.get(stage.verdict, "warn")
        word = stage.verdict if stage.verdict != "invalid" else "invalid: not a verdict"
        rows.append(
            f"<tr><td>{stage.rate:g}</td><td>{html.escape(format_ms(stage.p50))}</td>"
            f"<td>{html.escape(format_ms(stage.p99))}</td><td>{stage.error_rate:.2%}</td>"
            f'<td class="{css}" title="{_esc("; ".join(stage.reasons))}">{_esc(word)}</td></tr>'
        )
    return "".join(rows)


def _esc(value: object) -> str:
    return html.escape(redact_text(str(value)))


def capacity_section(index: int, data: Mapping[str, Any]) -> str:
    """One search's section: its sentence, the chart and the stage table."""
    capacity = Capacity.from_dict(data)
    name = capacity.label or str(data.get("nodeid", "")) or f"search {index}"
    return (
        f'<section class="run capacity" id="capacity-{index}">'
        f"<h2>capacity search: {_esc(name)}</h2><p>{_esc(capacity.describe())}</p>"
        f'<div class="charts">{capacity_chart(capacity).render()}'
        '<table class="summary"><thead><tr><th>rate/s</th><th>p50</th><th>p99</th>'
        f"<th>errors</th><th>verdict</th></tr></thead><tbody>{_stage_rows(capacity)}</tbody>"
        "</table></div></section>"
    )
