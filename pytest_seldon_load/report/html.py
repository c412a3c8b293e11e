"""One self-contained HTML page of a session's load runs: where the time went, second by second.

Per run: latency over time (p50 and p99 of each second, from the intended send time and as
service time), the percentile spectrum on HdrHistogram's 1/(1-q) axis (so p99.9 gets as much
room as p50), throughput and errors over time, budget lines, and the baseline drawn under the
run when comparing. Charts are inline SVG drawn here, plus a few lines of script for a hover
read-out: no CDN, nothing fetched, it opens the same offline, from CI artifacts or mail.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..baseline import RUN_FIELDS, describe_commit
from ..durations import format_ms
from ..judgement import Judgement
from ..redact import redact_text
from ..result import LoadResult, Window
from .github import comparisons, judgements
from .run_details import errors_html, failure_html, lag_text, settings_html
from .timeline import Tail, split_timeline, whole_seconds

WIDTH, HEIGHT = 460, 270
LEFT, RIGHT, TOP, BOTTOM = 62, 26, 30, 42
SPECTRUM_POINTS = 120
SPECTRUM_NINES = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)

# --- numbers on axes --------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _ms_tick(value: float) -> str:
    """Axis labels of round values, without trailing zeros: 250ms, 1.25s, 500us."""
    if value == 0:
        return "0"
    if value >= 1000:
        return f"{value / 1000:g}s"
    if value >= 1:
        return f"{value:g}ms"
    return f"{value * 1000:g}us"


def _nice_top(value: float) -> float:
    """A round upper bound a little above `value`."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    ticks = nice_ticks(0.0, value * 1.08, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else value
    return ticks[-1] if ticks[-1] >= value * 1.02 else ticks[-1] + step


# --- one SVG chart ----------------------------------------------------------------------


@dataclass
class Series:
    """A named line; its values become the hover read-out."""

    name: str
    css: str
    xs: list[float]
    ys: list[float]
    text: Callable[[float], str]
    dashed: bool = False


@dataclass
class Chart:
    """An SVG line chart with axes, guide lines and a data read-out for the page's script."""

    title: str
    kind: str
    y_text: Callable[[float], str]
    y_label: str
    x_label: str = ""
    x_low: float = 0.0
    x_high: float = 1.0
    y_high: float = 1.0
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    point_labels: list[str] = field(default_factory=list)
    point_xs: list[float] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    bars: list[Series] = field(default_factory=list)
    guides: list[tuple[float, str, str]] = field(default_factory=list)
    markers: list[tuple[float, float, str, str]] = field(default_factory=list)
    note: str = ""
    """A line under the legend (what a marker means)."""

    def px(self, x: float) -> float:
        span = self.x_high - self.x_low or 1.0
        return LEFT + (x - self.x_low) / span * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        top = self.y_high or 1.0
        return HEIGHT - BOTTOM - max(0.0, min(y, top * 1.2)) / top * (HEIGHT - TOP - BOTTOM)

    def _path(self, series: Series) -> str:
        parts, pen_down = [], False
        for x, y in zip(series.xs, series.ys, strict=True):
            if y is None or not math.isfinite(y):
                pen_down = False
                continue
            parts.append(f"{'L' if pen_down else 'M'}{self.px(x):.1f},{self.py(y):.1f}")
            pen_down = True
        dash = ' stroke-dasharray="5 3"' if series.dashed else ""
        name = html.escape(series.name)
        return (
            f'<path class="line {series.css}" d="{" ".join(parts)}"{dash}>'
            f"<title>{name}</title></path>"
        )

    def _bars(self, series: Series) -> str:
        span = self.x_high - self.x_low or 1.0
        width = max(1.0, 0.6 * (WIDTH - LEFT - RIGHT) / max(1.0, span))
        bottom = self.py(0.0)
        rects = []
        for x, y in zip(series.xs, series.ys, strict=True):
            if y and math.isfinite(y) and y > 0:
                # Inside the plot area whatever the value: a bar at the first or last second
                # does not cross the axis, one above the scale stops at the top.
                top = max(float(TOP), self.py(y))
                left = max(float(LEFT), self.px(x) - width / 2)
                right = min(float(WIDTH - RIGHT), self.px(x) + width / 2)
                rects.append(
                    f'<rect class="bar {series.css}" x="{left:.1f}" '
                    f'y="{top:.1f}" width="{max(1.0, right - left):.1f}" '
                    f'height="{max(1.0, bottom - top):.1f}">'
                    f"<title>{html.escape(series.name)}: "
                    f"{html.escape(series.text(y))}</title></rect>"
                )
        return "".join(rects)

    def readout(self) -> dict[str, Any]:
        """For the page's script: pixel x of each point, its label, each series' values."""
        columns = []
        for series in [*self.series, *self.bars]:
            by_x = dict(zip(series.xs, series.ys, strict=True))
            values = []
            for x in self.point_xs:
                y = by_x.get(x)
                values.append("-" if y is None or not math.isfinite(y) else series.text(y))
            columns.append({"name": series.name, "css": series.css, "values": values})
        return {
            "px": [round(self.px(x), 1) for x in self.point_xs],
            "labels": self.point_labels,
            "series": columns,
        }

    def render(self) -> str:
        plot_bottom, plot_right = HEIGHT - BOTTOM, WIDTH - RIGHT
        out = [
            f'<svg class="chart {self.kind}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{html.escape(self.title)}" '
            f"data-readout='{html.escape(json.dumps(self.readout()), quote=True)}'>",
            f'<text class="title" x="{LEFT}" y="18">{html.escape(self.title)}</text>',
        ]
        for y in nice_ticks(0.0, self.y_high, 5):
            py = self.py(y)
            out.append(
                f'<line class="grid" x1="{LEFT}" y1="{py:.1f}" x2="{plot_right}" y2="{py:.1f}"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">'
                f"{html.escape(self.y_text(y))}</text>"
            )
        for x, label in self.x_ticks:
            px = self.px(x)
            out.append(
                f'<line class="grid" x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{plot_bottom}"/>'
                f'<text class="tick" x="{px:.1f}" y="{plot_bottom + 16}" text-anchor="middle">'
                f"{html.escape(label)}</text>"
            )
        out.append(
            f'<text class="axis" x="{(LEFT + plot_right) / 2}" y="{HEIGHT - 6}" '
            f'text-anchor="middle">{html.escape(self.x_label)}</text>'
            f'<text class="axis" x="10" y="{(TOP + plot_bottom) / 2}" text-anchor="middle" '
            f'transform="rotate(-90 10 {(TOP + plot_bottom) / 2})">'
            f"{html.escape(self.y_label)}</text>"
        )
        out.extend(self._bars(series) for series in self.bars)
        for value, css, label in self.guides:
            py = self.py(value)
            out.append(
                f'<line class="guide {css}" x1="{LEFT}" y1="{py:.1f}" x2="{plot_right}" '
                f'y2="{py:.1f}"><title>{html.escape(label)}</title></line>'
                f'<text class="guide-label {css}" x="{plot_right - 4}" y="{py - 4:.1f}" '
                f'text-anchor="end">{html.escape(label)}</text>'
            )
        out.extend(self._path(series) for series in self.series)
        for x, y, css, label in self.markers:
            out.append(
                f'<circle class="marker {css}" cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="4">'
                f"<title>{html.escape(label)}</title></circle>"
            )
        out.append(
            f'<line class="cursor" x1="0" y1="{TOP}" x2="0" y2="{plot_bottom}" '
            f'visibility="hidden"/>'
            f'<rect class="hover" x="{LEFT}" y="{TOP}" width="{plot_right - LEFT}" '
            f'height="{plot_bottom - TOP}"/>'
        )
        legend = [*self.series, *self.bars]
        out.append("</svg>")
        keys = "".join(
            f'<span class="key {s.css}{" dashed" if s.dashed else ""}">{html.escape(s.name)}</span>'
            for s in legend
        )
        note = f'<span class="chart-note">{html.escape(self.note)}</span>' if self.note else ""
        return (
            f'<figure class="plot">{"".join(out)}<figcaption>{keys}{note}'
            f'<span class="readout"></span></figcaption></figure>'
        )


# --- what a run's charts show -------------------------------------------------------------


_BUDGET_KINDS = ("percentile", "error_rate", "throughput")


def budgets_of(run: Mapping[str, Any]) -> list[Judgement]:
    """The budgets the run was judged against (a latency budget names its quantile)."""
    return [
        judgement
        for judgement in judgements(run)
        if judgement.kind in _BUDGET_KINDS
        and judgement.limit is not None
        and math.isfinite(judgement.limit)
        and (judgement.kind != "percentile" or judgement.quantile is not None)
    ]


def _every(budget: Judgement) -> str:
    """`` in every 10s`` for a budget held window by window; nothing for the whole run's."""
    return f" in every {budget.window_s}s" if budget.window_s else ""


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _timeline(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The whole seconds of the run (`timeline.split_timeline`)."""
    return split_timeline(run).seconds


def _time_range(xs: Sequence[float], series: Sequence[Series], tail: Tail | None) -> float:
    """The last second drawn (the tail's, if any), half a second of room after it so a bar
    there stays inside the plot."""
    last = max([*xs, *(s.xs[-1] for s in series if s.xs), tail.start if tail else 0.0, 0.5])
    return last + 0.5


def _whole_windows(baseline: LoadResult | None) -> list[Window]:
    """The baseline's whole seconds: its overlay ends where the run's line does, without
    its own partial last second."""
    if baseline is None:
        return []
    whole = whole_seconds(baseline.duration)
    return [w for w in baseline.windows if not whole or w.second < whole]


TIME_X_LOW = -0.5
"""Half a second of room before the first second, for its error bar."""
TAIL_NOTE = "○ answers after the last whole second, shown apart (not a full second)"


def _over_time(chart: Chart, xs: Sequence[float], tail: Tail | None, least_top: float) -> Chart:
    """`chart` with a time axis: the measured seconds (and the tail's, if any), and room above
    its highest line, bar, guide and marker (at least `least_top`)."""
    drawn = [*chart.series, *chart.bars]
    top = max(
        [
            *(y for s in drawn for y in s.ys if math.isfinite(y)),
            *(g[0] for g in chart.guides),
            *(m[1] for m in chart.markers),
            least_top,
        ]
    )
    x_high = _time_range(xs, chart.series, tail)
    all_xs = sorted({x for s in drawn for x in s.xs})
    return replace(
        chart,
        x_low=TIME_X_LOW,
        x_high=x_high,
        y_high=_nice_top(top),
        x_ticks=[(x, f"{x:g}s") for x in nice_ticks(0.0, x_high, 6)],
        x_label="seconds into the measured period",
        point_labels=[f"{x:g}s" for x in all_xs],
        point_xs=all_xs,
        note=TAIL_NOTE if chart.markers else "",
    )


def latency_chart(run: Mapping[str, Any], baseline: LoadResult | None) -> Chart:
    timeline = _timeline(run)
    xs = [float(w["second"]) for w in timeline]

    def line(key: str, css: str, dashed: bool) -> Series:
        values = [_number(w.get(key)) for w in timeline]
        return Series(key.replace("_", " "), css, xs, values, format_ms, dashed)

    # latency solid, service time (from the actual send) dashed, in the quantile's colour
    series = [
        line("p99", "p99", False),
        line("p50", "p50", False),
        line("service_p99", "p99", True),
        line("service_p50", "p50", True),
    ]
    base_windows = _whole_windows(baseline)
    if base_windows:
        base_xs = [float(w.second) for w in base_windows]
        base_p99s, base_p50s = [w.p99 for w in base_windows], [w.p50 for w in base_windows]
        series[:0] = [
            Series("baseline p99", "baseline", base_xs, base_p99s, format_ms),
            Series("baseline p50", "baseline", base_xs, base_p50s, format_ms, dashed=True),
        ]
    guides = [
        (b.limit, "budget", f"p{b.quantile:g}{_every(b)} budget {format_ms(b.limit)}")
        for b in budgets_of(run)
        if b.kind == "percentile" and b.limit is not None and (b.quantile or 0) >= 50
    ]
    tail = split_timeline(run).tail
    markers = []
    if tail is not None and math.isfinite(tail.p99):
        markers.append(
            (
                tail.start,
                tail.p99,
                "tail",
                f"after the last whole second: p99 {format_ms(tail.p99)} of {tail.answers} answers",
            )
        )
    chart = Chart(
        title="latency per second (from intended send time)",
        kind="latency",
        y_text=_ms_tick,
        y_label="latency",
        series=series,
        guides=guides,
        markers=markers,
    )
    return _over_time(chart, xs, tail, least_top=0.0)


def _spectrum_x(q: float) -> float:
    """HdrHistogram's percentile axis: log10(1 / (1 - q)); p90 → 1, p99 → 2, p99.9 → 3."""
    return math.log10(1.0 / (1.0 - min(q, 99.99999) / 100.0))


def _spectrum(histogram, count: int) -> tuple[list[float], list[float]]:
    if count == 0:
        return [], []
    # Out to the next "nines" past 1/count: beyond it every percentile is the maximum.
    top = float(max(1, math.ceil(math.log10(count) - 1e-9)))
    qs = sorted(
        {
            round(100.0 * (1.0 - 10 ** (-top * i / SPECTRUM_POINTS)), 6)
            for i in range(SPECTRUM_POINTS + 1)
        }
    )
    values = histogram.get_percentile_to_value_dict(qs)
    return [_spectrum_x(q) for q in qs], [values[q] / 1000.0 for q in qs]


def spectrum_chart(run: Mapping[str, Any], baseline: LoadResult | None) -> Chart:
    result = LoadResult.from_dict({k: v for k, v in run.items() if k not in RUN_FIELDS})
    series = []
    for name, css, histogram, dashed in (
        ("latency", "p99", result.latency, False),
        ("service time", "p50", result.service, True),
    ):
        xs, ys = _spectrum(histogram, histogram.get_total_count())
        series.append(Series(name, css, xs, ys, format_ms, dashed=dashed))
    if baseline is not None:
        xs, ys = _spectrum(baseline.latency, baseline.latency.get_total_count())
        series.insert(0, Series("baseline latency", "baseline", xs, ys, format_ms))
    x_high = max([1.0, *(x for s in series for x in s.xs)])
    ticks = [(_spectrum_x(q), f"{q:g}%") for q in SPECTRUM_NINES if _spectrum_x(q) <= x_high + 1e-9]
    markers = [
        (_spectrum_x(b.quantile), b.limit, "budget", f"budget: {b.label}")
        for b in budgets_of(run)
        if b.kind == "percentile"
        and b.quantile is not None
        and b.limit is not None
        and _spectrum_x(b.quantile) <= x_high + 1e-9
    ]
    top = max(
        [*(y for s in series for y in s.ys if math.isfinite(y)), *(m[1] for m in markers), 0.0]
    )
    all_xs = sorted({round(x, 6) for s in series for x in s.xs})
    for s in series:
        s.xs = [round(x, 6) for x in s.xs]
    return Chart(
        title="percentile spectrum (whole run)",
        kind="spectrum",
        x_low=0.0,
        x_high=x_high,
        y_high=_nice_top(top),
        x_ticks=ticks,
        y_text=_ms_tick,
        x_label="percentile (log scale of 1/(1-q))",
        y_label="latency",
        point_labels=[f"p{100.0 * (1.0 - 10**-x):.4g}" for x in all_xs],
        point_xs=all_xs,
        series=series,
        markers=markers,
    )


def throughput_chart(run: Mapping[str, Any], baseline: LoadResult | None) -> Chart:
    timeline = _timeline(run)
    xs = [float(w["second"]) for w in timeline]

    def per_second(value: float) -> str:
        return f"{value:.0f}/s"

    series = [
        Series(
            "sent", "sent", xs, [float(w.get("sent", 0)) for w in timeline], per_second, dashed=True
        ),
        Series("ok", "ok", xs, [float(w.get("ok", 0)) for w in timeline], per_second),
    ]
    base_windows = _whole_windows(baseline)
    if base_windows:
        series.insert(
            0,
            Series(
                "baseline ok",
                "baseline",
                [float(w.second) for w in base_windows],
                [float(w.ok) for w in base_windows],
                per_second,
            ),
        )
    bars = [
        Series("errors", "errors", xs, [float(w.get("errors", 0)) for w in timeline], per_second)
    ]
    target = float(run.get("target_rate", 0) or 0)
    guides = [(target, "target", f"target {target:g}/s")] if target > 0 else []
    guides += [
        (b.limit, "budget", f"throughput budget {b.limit:g}/s")
        for b in budgets_of(run)
        if b.kind == "throughput" and b.limit is not None
    ]
    tail = split_timeline(run).tail
    markers = []
    if tail is not None and tail.answers:
        markers.append(
            (
                tail.start,
                float(tail.answers),
                "tail",
                f"after the last whole second: {tail.ok} ok, {tail.errors} errors "
                f"(a count, not a rate)",
            )
        )
    chart = Chart(
        title="throughput and errors per second",
        kind="throughput",
        y_text=lambda v: f"{v:g}",
        y_label="requests per second",
        series=series,
        bars=bars,
        guides=guides,
        markers=markers,
    )
    return _over_time(chart, xs, tail, least_top=1.0)


# --- the page ---------------------------------------------------------------------------


def _anchor(index: int) -> str:
    return f"run-{index}"


def _verdict_css(word: str) -> str:
    return {"pass": "good", "FAIL": "bad", "test failed": "bad"}.get(word, "warn")


def _esc(value: object) -> str:
    return html.escape(redact_text(str(value)))


def _summary_row(index: int, run: Mapping[str, Any]) -> str:
    verdict = str(run.get("verdict", ""))
    return (
        f'<tr><td><a href="#{_anchor(index)}">'
        f"{_esc(run.get('key') or run.get('nodeid', '?'))}</a></td>"
        f"<td>{float(run.get('target_rate', 0)):g} / {float(run.get('achieved_rate', 0)):.1f}</td>"
        f"<td>{int(run.get('requests', 0))}</td>"
        f"<td>{_esc(format_ms(_number(run.get('p50'))))}</td>"
        f"<td>{_esc(format_ms(_number(run.get('p99'))))}</td>"
        f"<td>{float(run.get('error_rate', 0)):.2%}</td>"
        f'<td class="{_verdict_css(verdict)}">{_esc(verdict)}</td></tr>'
    )


def _judgement_items(run: Mapping[str, Any]) -> str:
    items = []
    for judgement in judgements(run):
        css = "good" if judgement.passed else ("invalid" if judgement.invalid else "bad")
        items.append(f'<li class="{css}">{_esc(judgement.text())}</li>')
    return f'<ul class="judgements">{"".join(items)}</ul>' if items else ""


def _numbers(run: Mapping[str, Any]) -> str:
    cells = [
        (
            "target / achieved",
            f"{float(run.get('target_rate', 0)):g} / {float(run.get('achieved_rate', 0)):.1f} /s",
        ),
        ("requests", str(run.get("requests", 0))),
        ("errors", f"{int(run.get('errors', 0))} ({float(run.get('error_rate', 0)):.2%})"),
        *(
            (name, format_ms(_number(run.get(name))))
            for name in ("p50", "p90", "p99", "p999", "max")
        ),
        ("generator", "kept up" if run.get("kept_up", True) else "FELL BEHIND"),
        ("lag", lag_text(run)),
        *_steal_cell(run),
    ]
    return "".join(f"<div><dt>{_esc(k)}</dt><dd>{_esc(v)}</dd></div>" for k, v in cells)


def _steal_cell(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Host CPU steal over the run, where the system counts it (Linux)."""
    fraction = run.get("steal_fraction")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool):
        return []
    return [("host CPU steal", f"{fraction:.1%}")]


def _run_section(index: int, run: Mapping[str, Any], baseline: LoadResult | None) -> str:
    verdict = str(run.get("verdict", ""))
    charts = [
        latency_chart(run, baseline),
        spectrum_chart(run, baseline),
        throughput_chart(run, baseline),
    ]
    note = '<p class="note">grey lines: the baseline run</p>' if baseline is not None else ""
    return (
        f'<section class="run" id="{_anchor(index)}">'
        f'<h2><span class="badge {_verdict_css(verdict)}">{_esc(verdict)}</span> '
        f"{_esc(run.get('key') or run.get('nodeid', '?'))}</h2>"
        f'<dl class="numbers">{_numbers(run)}</dl>{settings_html(run)}'
        f"{failure_html(run)}{_judgement_items(run)}{note}"
        f'<div class="charts">{"".join(chart.render() for chart in charts)}</div>'
        f"{_tail_note(run)}{errors_html(run)}</section>"
    )


def _tail_note(run: Mapping[str, Any]) -> str:
    tail = split_timeline(run).tail
    if tail is None or not (tail.answers or tail.sent):
        return ""
    return (
        f'<p class="note">after the last whole second ({tail.start:g}s): {tail.ok} ok and '
        f"{tail.errors} errors came back, {tail.sent} sent; counted in the run's totals, "
        f"drawn apart (○) in the charts</p>"
    )


def render_report(
    runs: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, LoadResult] | None = None,
    *,
    title: str = "seldon-load report",
    created: str = "",
    machine: Mapping[str, Any] | None = None,
    commit: Mapping[str, Any] | None = None,
    capacities: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The page for `runs` (session entries with histograms); `baselines` by run key;
    `capacities`, the session's capacity searches (`Capacity.to_dict()`), drawn after them."""
    baselines = baselines or {}
    about = []
    if created:
        about.append(f"created {created}")
    if machine:
        about.append(
            f"on {machine.get('node', '?')} ({machine.get('processor', '?')}, "
            f"{machine.get('cpu_count', '?')} CPUs, Python {machine.get('python', '?')})"
        )
    if commit:
        about.append(f"code {describe_commit(commit)}")
    compared = sum(1 for run in runs if comparisons(run))
    if compared:
        about.append(f"{compared} runs compared with a baseline")
    sections = "".join(
        _run_section(index, run, baselines.get(str(run.get("key", ""))))
        for index, run in enumerate(runs, 1)
    )
    table = (
        '<table class="summary"><thead><tr><th>test</th><th>rate target / achieved</th>'
        "<th>requests</th><th>p50</th><th>p99</th><th>errors</th><th>verdict</th></tr></thead>"
        f"<tbody>{''.join(_summary_row(i, run) for i, run in enumerate(runs, 1))}</tbody></table>"
        if runs
        else ("" if capacities else "<p>No load runs in this session.</p>")
    )
    if capacities:
        from .capacity_chart import capacity_section  # only a session that searched needs it

        sections += "".join(capacity_section(i, c) for i, c in enumerate(capacities, 1))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{_esc(title)}</h1><p>{_esc(' · '.join(about))}</p></header>"
        f"<main>{table}{sections}</main><script>{SCRIPT}</script></body></html>\n"
    )


def write_report(path: str | os.PathLike[str], page: str) -> Path:
    target = Path(path)
    atomic_write_text(target, page)
    return target


STYLE = """
:root { --p99: #d9480f; --p50: #1864ab; --baseline: #868e96; --ok: #2b8a3e; --sent: #5c7cfa;
        --errors: #e03131; --budget: #c2255c; --target: #495057; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #212529; background: #f8f9fa; }
header { padding: 12px 24px; background: #212529; color: #f8f9fa; }
header h1 { margin: 0; font-size: 20px; } header p { margin: 4px 0 0; color: #ced4da; }
main { padding: 12px 24px; }
table.summary { border-collapse: collapse; background: #fff; margin-bottom: 16px; }
table.summary th, table.summary td { padding: 4px 10px; border-bottom: 1px solid #dee2e6;
        text-align: right; }
table.summary th:first-child, table.summary td:first-child { text-align: left; }
section.run { background: #fff; border: 1px solid #dee2e6; border-radius: 6px; padding: 8px 16px;
        margin-bottom: 16px; }
section.run h2 { font-size: 16px; margin: 6px 0; word-break: break-all; }
.badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; color: #fff; }
.badge.good { background: var(--ok); } .badge.bad { background: var(--errors); }
.badge.warn { background: #f08c00; }
td.good { color: var(--ok); } td.bad { color: var(--errors); font-weight: bold; }
td.warn { color: #f08c00; }
dl.numbers { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 4px 0; }
dl.numbers div { display: flex; gap: 4px; } dl.numbers dt { color: #868e96; }
dl.numbers dd { margin: 0; font-variant-numeric: tabular-nums; }
ul.judgements { margin: 4px 0; padding-left: 18px; } li.good { color: #2b8a3e; }
li.bad { color: var(--errors); font-weight: bold; } li.invalid { color: #f08c00; }
p.note { color: var(--baseline); margin: 2px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure.plot { margin: 0; flex: 1 1 420px; max-width: 560px; }
svg.chart { width: 100%; height: auto; background: #fff; }
svg .title { font-size: 12px; font-weight: 600; fill: #343a40; }
svg .tick, svg .axis { font-size: 10px; fill: #868e96; }
svg .grid { stroke: #f1f3f5; }
svg .line { fill: none; stroke-width: 1.6; }
svg .line.p99 { stroke: var(--p99); } svg .line.p50 { stroke: var(--p50); }
svg .line.baseline { stroke: var(--baseline); stroke-width: 2.4; opacity: .55; }
svg .line.ok { stroke: var(--ok); } svg .line.sent { stroke: var(--sent); }
svg .bar.errors { fill: var(--errors); opacity: .8; }
svg .guide { stroke-dasharray: 2 3; stroke-width: 1.2; }
svg .guide.budget { stroke: var(--budget); } svg .guide.target { stroke: var(--target); }
svg .guide-label { font-size: 10px; } svg .guide-label.budget { fill: var(--budget); }
svg .guide-label.target { fill: var(--target); }
svg .marker.budget { fill: var(--budget); }
svg .marker.tail { fill: #fff; stroke: var(--target); stroke-width: 1.6; }
.chart-note { color: var(--target); }
dl.settings { display: flex; flex-wrap: wrap; gap: 2px 14px; margin: 2px 0 6px; font-size: 12px; }
dl.settings div { display: flex; gap: 4px; } dl.settings dt { color: #868e96; }
dl.settings dd { margin: 0; word-break: break-all; }
details.failure { margin: 6px 0; border-left: 3px solid var(--errors); padding-left: 8px; }
details.failure summary { color: var(--errors); font-weight: 600; cursor: pointer; }
pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0; font-size: 12px;
        background: #f8f9fa; padding: 4px 6px; max-height: 18em; overflow: auto; }
div.errors h3 { font-size: 14px; margin: 10px 0 4px; }
div.errors table { border-collapse: collapse; margin: 0 0 8px; }
div.errors th, div.errors td { padding: 3px 8px; border-bottom: 1px solid #dee2e6;
        text-align: left; vertical-align: top; }
table.status-codes tr.bad td:first-child { color: var(--errors); font-weight: 600; }
table.error-kinds td:last-child { max-width: 640px; }
div.sample span { font-size: 11px; color: #495057; }
svg .cursor { stroke: #adb5bd; } svg .hover { fill: transparent; }
figcaption { font-size: 11px; color: #495057; display: flex; flex-wrap: wrap; gap: 4px 12px; }
.key::before { content: ""; display: inline-block; width: 14px; height: 3px; margin-right: 4px;
        vertical-align: middle; background: currentColor; }
.key.dashed::before { background: repeating-linear-gradient(90deg, currentColor 0 4px,
        transparent 4px 6px); }
.key.p99 { color: var(--p99); } .key.p50 { color: var(--p50); }
.key.baseline { color: var(--baseline); } .key.ok { color: var(--ok); }
.key.sent { color: var(--sent); } .key.errors { color: var(--errors); }
.readout { color: #212529; font-variant-numeric: tabular-nums; margin-left: auto; }
section.capacity table.summary { align-self: flex-start; }
"""

SCRIPT = """
(function () {
  "use strict";
  var charts = document.querySelectorAll("svg.chart[data-readout]");
  charts.forEach(function (svg) {
    var data = JSON.parse(svg.getAttribute("data-readout"));
    var cursor = svg.querySelector(".cursor");
    var out = svg.parentNode.querySelector(".readout");
    var hover = svg.querySelector(".hover");
    function nearest(x) {
      var best = -1, distance = Infinity;
      for (var i = 0; i < data.px.length; i++) {
        var d = Math.abs(data.px[i] - x);
        if (d < distance) { distance = d; best = i; }
      }
      return best;
    }
    hover.addEventListener("mousemove", function (event) {
      var point = svg.createSVGPoint();
      point.x = event.clientX; point.y = event.clientY;
      var local = point.matrixTransform(svg.getScreenCTM().inverse());
      var i = nearest(local.x);
      if (i < 0) { return; }
      cursor.setAttribute("x1", data.px[i]); cursor.setAttribute("x2", data.px[i]);
      cursor.setAttribute("visibility", "visible");
      out.textContent = data.labels[i] + ": " + data.series.map(function (s) {
        return s.name + " " + s.values[i];
      }).join(", ");
    });
    hover.addEventListener("mouseleave", function () {
      cursor.setAttribute("visibility", "hidden"); out.textContent = "";
    });
  });
  document.documentElement.setAttribute("data-charts", String(charts.length));
})();
"""
