"""An Iago-compatible admin port for the embedded engine: Ostrich's paths, shape and names.

Seldon's workflow read a load's latency from Iago's admin port (9994): ``/stats.json`` for
dashboards and scripts, ``/graph/`` for a human. Serving the same paths from a live
embedded run means those dashboards, the "get analytics" step and the ``iago`` engine's
scraper work unchanged, with latency corrected for coordinated omission (from the intended
send time; labels say so).

Served on the run's own event loop through the engine's companion seam, from the live
Recorder: only what the run really measured. Counts cover the measured period (after
warm-up), as the result does.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from hdrh.histogram import HdrHistogram

from . import hdr
from .redact import redact_url

if TYPE_CHECKING:
    from .engine import ActiveRun

LATENCY = "client/request_latency_ms"
SERVICE = "client/service_latency_ms"
PERCENTILES = (
    (50.0, "p50"),
    (90.0, "p90"),
    (95.0, "p95"),
    (99.0, "p99"),
    (99.9, "p999"),
    (99.99, "p9999"),
)
MAX_PERIODS = 8
"""Distinct ``?period=`` values followed at once (each keeps one snapshot)."""
MAX_PERIOD_S = 3600
SERIES_LIMIT = 3600
"""Seconds of per-second history kept for the graphs."""
SHUTDOWN_PATHS = ("/shutdown.json", "/quitquitquit", "/abortabortabort")


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000.0, 3)


def metric_summary(histogram: HdrHistogram) -> dict[str, float]:
    """Ostrich's metric shape from an HDR histogram of µs: percentile keys only when count > 0."""
    count = histogram.get_total_count()
    if not count:
        return {"count": 0}
    mean = hdr.mean_us(histogram)
    values = histogram.get_percentile_to_value_dict([q for q, _ in PERCENTILES])
    summary: dict[str, float] = {
        "count": count,
        "sum": _ms(mean * count),
        "average": _ms(mean),
        "minimum": _ms(histogram.get_min_value()),
        "maximum": _ms(histogram.get_max_value()),
    }
    for q, key in PERCENTILES:
        summary[key] = _ms(values[q])
    return summary


@dataclass
class Snapshot:
    """Counters and copies of the histograms at one moment."""

    at: float
    counters: dict[str, float]
    latency: HdrHistogram = field(repr=False)
    service: HdrHistogram = field(repr=False)


def counters_of(run: ActiveRun) -> dict[str, float]:
    """Ostrich/Finagle/Parrot counter names, filled from the run's own counts.

    `client/success` and `client/failures` follow the run's judgement (a 5xx, or a V1 body
    with status FAILURE, is a failure), so `client/failures/<kind>` carries our error kinds.
    """
    recorder = run.recorder
    unsent = recorder.unsent
    counters: dict[str, float] = {
        "client/requests": recorder.ok + recorder.errors - unsent,
        "client/success": recorder.ok,
        "client/failures": recorder.errors - unsent,
        "requests_sent": recorder.requests,
    }
    for kind, count in sorted(recorder.error_kinds.items()):
        if kind != "unsent":
            counters[f"client/failures/{kind}"] = count
    for code, count in sorted(recorder.status_codes.items()):
        counters[str(code)] = count
    counters["seldon_load/unsent"] = unsent
    counters["seldon_load/late_sends"] = recorder.health.late_sends
    counters["seldon_load/sends_checked"] = recorder.health.sends_checked
    return counters


def _difference(later: dict[str, float], earlier: dict[str, float]) -> dict[str, float]:
    return {k: v - earlier.get(k, 0) for k, v in later.items()}


class AdminPort:
    """The admin server; pass it as ``run_load(..., companion=AdminPort(9994))``.

    `on_listening(url)` is called once the port listens (port 0 picks a free one).
    `shutdown_requested` tells a caller that the run ended through ``/shutdown.json``.
    """

    def __init__(
        self,
        port: int = 9994,
        host: str = "127.0.0.1",
        *,
        on_listening: Callable[[str], None] | None = None,
        tick: float = 1.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"--admin-port must be in 0..65535, got {port}")
        self.port = port
        self.host = host
        self.on_listening = on_listening
        self.tick = tick
        self.shutdown_requested = False
        self.url = ""
        hdr.slot_middles_us()  # now, not on the run's loop
        self._run: ActiveRun | None = None
        self._start: Snapshot | None = None
        self._previous: Snapshot | None = None
        self._series: list[dict[str, float]] = []
        self._periods: dict[int, dict[str, Any]] = {}

    def __call__(self, run: ActiveRun) -> contextlib.AbstractAsyncContextManager:
        return self._serving(run)

    # --- live numbers ------------------------------------------------------------
    def _elapsed(self) -> float:
        run = self._run
        assert run is not None
        return max(0.0, time.perf_counter() - run.start) if run.start else 0.0

    def snapshot(self) -> Snapshot:
        run = self._run
        assert run is not None
        return Snapshot(
            time.monotonic(),
            counters_of(run),
            hdr.copy(run.recorder.latency),
            hdr.copy(run.recorder.service),
        )

    def _gauges(self) -> dict[str, float]:
        run = self._run
        assert run is not None
        elapsed = self._elapsed()
        return {
            "client/pending": run.in_flight,
            "seldon_load/in_flight_bound": run.settings.in_flight_bound,
            "seldon_load/max_lag_ms": round(run.recorder.health.max_lag_ms, 3),
            "seldon_load/busy_fraction": round(run.busy_fraction(), 3),
            "seldon_load/elapsed_s": round(elapsed, 3),
            "seldon_load/scheduled_rate": round(
                run.pacer.profile.rate_at(elapsed) / run.settings.parts, 3
            ),
        }

    def _labels(self) -> dict[str, str]:
        run = self._run
        assert run is not None
        elapsed = self._elapsed()
        state = (
            "stopping" if run.interrupted else ("warm-up" if elapsed < run.warmup else "running")
        )
        return {
            "seldon_load/engine": "embedded",
            "seldon_load/latency": "corrected",
            "seldon_load/target": redact_url(run.endpoint.base_url),
            "seldon_load/arrival": run.pacer.describe(),
            "seldon_load/state": state,
        }

    def stats(self, period: int | None = None) -> dict[str, Any]:
        """The ``/stats.json`` document: cumulative, or the last complete `period` seconds."""
        run = self._run
        assert run is not None
        labels = self._labels()
        if period is None:
            counters = counters_of(run)
            latency, service = run.recorder.latency, run.recorder.service
        else:
            counters, latency, service, complete = self._period(period)
            labels["seldon_load/period_s"] = str(period)
            labels["seldon_load/period_complete"] = "true" if complete else "false"
        return {
            "counters": counters,
            "gauges": self._gauges(),
            "labels": labels,
            "metrics": {LATENCY: metric_summary(latency), SERVICE: metric_summary(service)},
        }

    def _period(self, period: int) -> tuple[dict[str, float], HdrHistogram, HdrHistogram, bool]:
        """Ostrich's latched listener, made on the first request for a period: the stats of
        its last complete period; until one has completed, everything since the start."""
        if period not in self._periods:
            if len(self._periods) >= MAX_PERIODS:
                raise ValueError(f"at most {MAX_PERIODS} distinct periods are followed")
            self._periods[period] = {"boundary": self.snapshot(), "complete": None}
        self._latch(self.snapshot())
        complete = self._periods[period]["complete"]
        if complete is not None:
            return (*complete, True)
        now, start = self.snapshot(), self._start
        assert start is not None
        return (
            _difference(now.counters, start.counters),
            hdr.difference(now.latency, start.latency),
            hdr.difference(now.service, start.service),
            False,
        )

    def _latch(self, now: Snapshot) -> None:
        for period, listener in self._periods.items():
            boundary: Snapshot = listener["boundary"]
            if now.at - boundary.at >= period:
                listener["complete"] = (
                    _difference(now.counters, boundary.counters),
                    hdr.difference(now.latency, boundary.latency),
                    hdr.difference(now.service, boundary.service),
                )
                listener["boundary"] = now

    def _record_second(self) -> None:
        now = self.snapshot()
        previous = self._previous or self._start
        assert previous is not None
        latency = hdr.difference(now.latency, previous.latency)
        service = hdr.difference(now.service, previous.service)
        counts = _difference(now.counters, previous.counters)
        values = metric_summary(latency)
        service_values = metric_summary(service)
        self._series.append(
            {
                "time": round(self._elapsed(), 3),
                "requests": counts.get("client/requests", 0),
                "success": counts.get("client/success", 0),
                "failures": counts.get("client/failures", 0),
                "p50": values.get("p50", float("nan")),
                "p90": values.get("p90", float("nan")),
                "p99": values.get("p99", float("nan")),
                "maximum": values.get("maximum", float("nan")),
                "service_p50": service_values.get("p50", float("nan")),
                "service_p99": service_values.get("p99", float("nan")),
            }
        )
        del self._series[:-SERIES_LIMIT]
        self._previous = now
        self._latch(now)

    async def _ticker(self) -> None:
        run = self._run
        assert run is not None
        lifetime = run.pacer.duration + run.settings.timeout + 60.0
        for _ in range(int(lifetime / self.tick) + 1):
            await asyncio.sleep(self.tick)
            self._record_second()

    # --- HTTP --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _serving(self, run: ActiveRun) -> AsyncIterator[AdminPort]:
        self._run = run
        self._start = self._previous = self.snapshot()
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/stats.json", self._stats_json)
        app.router.add_get("/stats.txt", self._stats_txt)
        app.router.add_get("/stats", self._stats_txt)
        app.router.add_get("/ping.json", self._ping)
        app.router.add_get("/graph/", self._graph)
        app.router.add_get("/graph", self._graph)
        app.router.add_get("/graph_data/{key:.*}", self._graph_data)
        for path in SHUTDOWN_PATHS:
            app.router.add_route("*", path, self._shutdown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            await runner.cleanup()
            raise OSError(
                exc.errno,
                f"--admin-port {self.port}: cannot listen on {self.host}:{self.port} "
                f"({exc.strerror})",
            ) from None
        await web.SockSite(runner, sock).start()
        shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.url = f"http://{shown_host}:{sock.getsockname()[1]}"
        if self.on_listening is not None:
            self.on_listening(self.url)
        ticker = asyncio.ensure_future(self._ticker())
        try:
            yield self
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await runner.cleanup()

    async def _stats_json(self, request: web.Request) -> web.Response:
        try:
            period = self._period_argument(request)
            document = self.stats(period)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(document, dumps=lambda d: json.dumps(d, allow_nan=False))

    def _period_argument(self, request: web.Request) -> int | None:
        raw = request.query.get("period")
        if raw is None:
            return None
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PERIOD_S:
            raise ValueError(f"period must be a whole number of seconds in 1..{MAX_PERIOD_S}")
        return int(raw)

    async def _stats_txt(self, request: web.Request) -> web.Response:
        try:
            document = self.stats(self._period_argument(request))
        except ValueError as exc:
            return web.Response(text=f"error: {exc}\n", status=400)
        return web.Response(text=stats_text(document))

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({"response": "pong"})

    async def _shutdown(self, request: web.Request) -> web.Response:
        run = self._run
        assert run is not None
        self.shutdown_requested = True
        asyncio.get_running_loop().call_later(0.05, run.stop)
        return web.json_response({"response": "ok"})

    async def _index(self, request: web.Request) -> web.Response:
        links = [
            "/stats.json",
            "/stats.json?period=60",
            "/stats.txt",
            f"/graph/?g=metric:{LATENCY}",
            f"/graph/?g=metric:{SERVICE}",
            "/graph/?g=counter:client/requests",
            "/ping.json",
            "/shutdown.json",
        ]
        items = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a></li>' for u in links)
        return web.Response(
            text=f"<!doctype html><title>seldon-load admin</title><h1>seldon-load admin</h1>"
            f"<ul>{items}</ul>",
            content_type="text/html",
        )

    async def _graph_data(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        columns = GRAPH_COLUMNS.get(key)
        if columns is None:
            return web.json_response(
                {"error": f"unknown graph {key!r}", "graphs": sorted(GRAPH_COLUMNS)}, status=404
            )
        rows = [
            [point["time"], *(_json_number(point[c]) for c in columns)] for point in self._series
        ]
        return web.json_response({"name": key, "columns": ["time", *columns], "rows": rows})

    async def _graph(self, request: web.Request) -> web.Response:
        key = request.query.get("g", f"metric:{LATENCY}")
        columns = GRAPH_COLUMNS.get(key)
        if columns is None:
            return web.Response(
                text=f"unknown graph {key!r}; known: {', '.join(sorted(GRAPH_COLUMNS))}\n",
                status=404,
            )
        page = graph_page(key, columns, self._series, self._labels())
        return web.Response(text=page, content_type="text/html")


GRAPH_COLUMNS: dict[str, tuple[str, ...]] = {
    f"metric:{LATENCY}": ("p50", "p90", "p99", "maximum"),
    f"metric:{SERVICE}": ("service_p50", "service_p99"),
    "counter:client/requests": ("requests",),
    "counter:client/success": ("success",),
    "counter:client/failures": ("failures",),
}
"""Graphs by Ostrich's ``g=`` key: latency per second (ms), or counts per second."""


def _json_number(value: float) -> float | None:
    return None if value != value else value


def stats_text(document: dict[str, Any]) -> str:
    """Ostrich's ``/stats.txt`` layout."""
    lines = ["counters:"]
    lines += [f"  {k}: {_plain(v)}" for k, v in sorted(document["counters"].items())]
    lines.append("gauges:")
    lines += [f"  {k}: {_plain(v)}" for k, v in sorted(document["gauges"].items())]
    lines.append("labels:")
    lines += [f"  {k}: {v}" for k, v in sorted(document["labels"].items())]
    lines.append("metrics:")
    for name, values in sorted(document["metrics"].items()):
        inner = ", ".join(f"{k}={_plain(v)}" for k, v in sorted(values.items()))
        lines.append(f"  {name}: ({inner})")
    return "\n".join(lines) + "\n"


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


_COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#7f7f7f")


def graph_page(
    key: str, columns: tuple[str, ...], series: list[dict[str, float]], labels: dict[str, str]
) -> str:
    """A self-contained page (inline SVG, no script, no CDN) of `columns` over time."""
    width, height, left, bottom, top, right = 860, 340, 64, 36, 16, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for p in series if any(p[c] == p[c] for c in columns)]
    unit = "ms" if key.startswith("metric:") else "per second"
    values = [p[c] for p in points for c in columns if p[c] == p[c]]
    y_max = max(values) * 1.1 if values and max(values) > 0 else 1.0
    t_max = max((p["time"] for p in points), default=1.0) or 1.0

    def x(t: float) -> float:
        return left + plot_w * t / t_max

    def y(v: float) -> float:
        return top + plot_h * (1 - v / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(key)}">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for i in range(6):
        value = y_max * i / 5
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{value:.3g}</text>'
        )
    for i in range(6):
        t = t_max * i / 5
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{t:.0f}s</text>'
        )
    for colour, column in zip(_COLOURS, columns, strict=False):
        line = " ".join(
            f"{x(p['time']):.1f},{y(p[column]):.1f}" for p in points if p[column] == p[column]
        )
        if line:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>'
            )
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{colour}">&#9632; {html.escape(column)}</span>'
        for colour, column in zip(_COLOURS, columns, strict=False)
    )
    others = " · ".join(
        f'<a href="/graph/?g={html.escape(k)}">{html.escape(k)}</a>' for k in GRAPH_COLUMNS
    )
    described = html.escape(", ".join(f"{k}={v}" for k, v in sorted(labels.items())))
    latest = points[-1] if points else None
    latest_text = (
        " · ".join(f"{c} {latest[c]:.3g}" for c in columns if latest[c] == latest[c])
        if latest
        else "no data yet"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="5">'
        f"<title>{html.escape(key)}</title></head>"
        '<body style="font-family:sans-serif">'
        f"<h2>{html.escape(key)} ({unit}, per second)</h2>"
        f"<p>{legend}</p>{''.join(parts)}"
        f"<p>latest second: {html.escape(latest_text)}</p>"
        f"<p>latency is measured from the intended send time (corrected for coordinated "
        f"omission)</p><p><small>{described}</small></p><p>{others}</p></body></html>"
    )
