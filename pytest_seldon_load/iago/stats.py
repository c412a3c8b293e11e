"""Ostrich stats (Iago's admin port, ``/stats.json``) read, and turned into a LoadResult.

An Iago run leaves no histogram, only Ostrich's summary: counters, gauges, labels, and per
metric a count, sum, average, minimum, maximum and six percentiles with about ±5% bucket
error. `SummaryLoadResult` carries that summary where a LoadResult carries histograms, and
says so: it cannot be merged or re-binned, and its latency is measured from the actual send
(Iago does not correct for coordinated omission) unless the pod ran seldon-load's engine,
whose labels say its latency is corrected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..result import LoadResult

LATENCY_METRIC = "client/request_latency_ms"
SERVICE_METRIC = "client/service_latency_ms"
PERCENTILE_KEYS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99", 99.9: "p999", 99.99: "p9999"}
ENGINE_LABEL = "seldon_load/engine"
LATENCY_LABEL = "seldon_load/latency"
KIND = "summary-only"


def _json_float(value: float) -> float | None:
    return None if value != value else round(float(value), 4)


class StatsError(ValueError):
    """A stats document that is not Ostrich's shape; the message names the field and source."""


@dataclass(frozen=True)
class OstrichStats:
    """One ``/stats.json`` document: counters, gauges, labels, metrics."""

    counters: dict[str, float]
    gauges: dict[str, float]
    labels: dict[str, str]
    metrics: dict[str, dict[str, float]]

    @classmethod
    def parse(cls, document: Any, source: str = "stats.json") -> OstrichStats:
        if not isinstance(document, Mapping):
            raise StatsError(f"{source}: expected a JSON object, got {type(document).__name__}")

        def section(name: str) -> Mapping[str, Any]:
            value = document.get(name, {})
            if not isinstance(value, Mapping):
                raise StatsError(f"{source}: {name!r} must be an object")
            return value

        def number(where: str, value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise StatsError(f"{source}: {where} must be a number, got {value!r}")
            return float(value)

        counters = {k: number(f"counters[{k!r}]", v) for k, v in section("counters").items()}
        gauges = {k: number(f"gauges[{k!r}]", v) for k, v in section("gauges").items()}
        labels = {str(k): str(v) for k, v in section("labels").items()}
        metrics: dict[str, dict[str, float]] = {}
        for name, values in section("metrics").items():
            if not isinstance(values, Mapping):
                raise StatsError(f"{source}: metrics[{name!r}] must be an object")
            metrics[name] = {k: number(f"metrics[{name!r}][{k!r}]", v) for k, v in values.items()}
        return cls(counters, gauges, labels, metrics)

    def counter(self, name: str) -> float:
        return self.counters.get(name, 0.0)

    @property
    def by_seldon_load(self) -> bool:
        """Whether the admin port is seldon-load's engine (Iago-compatible, judged errors)."""
        return ENGINE_LABEL in self.labels

    @property
    def corrected(self) -> bool:
        return self.labels.get(LATENCY_LABEL) == "corrected"

    def status_codes(self) -> dict[int, int]:
        """Parrot's per-status counters ("200", "503", ...)."""
        return {
            int(name): int(value)
            for name, value in self.counters.items()
            if name.isdigit() and 100 <= int(name) <= 599
        }

    def error_kinds(self) -> dict[str, int]:
        """Failures by kind: Finagle's client/failures/<exception>, plus HTTP error statuses
        (Iago counts any response as a success; we do not count a 5xx as one)."""
        kinds: dict[str, int] = {}
        prefix = "client/failures/"
        for name, value in self.counters.items():
            if name.startswith(prefix) and "/" not in name[len(prefix) :] and value:
                kinds[name[len(prefix) :]] = int(value)
        if not self.by_seldon_load:
            for code, count in self.status_codes().items():
                if code >= 400 and count:
                    kinds[f"http_{code}"] = kinds.get(f"http_{code}", 0) + count
        unsent = int(self.counter("seldon_load/unsent"))
        if unsent:
            kinds["unsent"] = unsent
        return kinds

    @property
    def requests(self) -> int:
        return int(self.counters.get("client/requests", self.counter("requests_sent")))

    @property
    def errors(self) -> int:
        failures = int(self.counter("client/failures"))
        if self.by_seldon_load:
            return failures + int(self.counter("seldon_load/unsent"))
        http_errors = sum(n for code, n in self.status_codes().items() if code >= 400)
        return failures + http_errors

    def latency_summary(self, metric: str = LATENCY_METRIC) -> dict[str, float]:
        return dict(self.metrics.get(metric, {}))


def _delta(later: Mapping[Any, int], earlier: Mapping[Any, int]) -> dict[Any, int]:
    keys = set(later) | set(earlier)
    changed = {k: later.get(k, 0) - earlier.get(k, 0) for k in keys}
    return {k: v for k, v in sorted(changed.items(), key=lambda kv: str(kv[0])) if v}


def summary_percentiles(summary: Mapping[str, float]) -> dict[float, float]:
    """Ostrich's metric as {percent: ms}: 0 is the minimum, 100 the maximum."""
    if not summary.get("count"):
        return {}
    table = {q: summary[key] for q, key in PERCENTILE_KEYS.items() if key in summary}
    if "minimum" in summary:
        table[0.0] = summary["minimum"]
    if "maximum" in summary:
        table[100.0] = summary["maximum"]
    return dict(sorted(table.items()))


def percentile_at_or_above(table: Mapping[float, float], q: float) -> float:
    """The value at the smallest reported percentile at or above q: exact for reported ones
    (p50, p90, p95, p99, p99.9, p99.99), an upper bound for others, so a budget never passes
    on an interpolation."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100 (99.9 for p99.9), got {q!r}")
    for known in sorted(table):
        if known >= q - 1e-9:
            return float(table[known])
    return math.nan


@dataclass
class SummaryLoadResult(LoadResult):
    """A LoadResult known only by its percentile summary (an Iago run): histograms are empty.

    `latency_summary` is the Ostrich metric (count, sum, average, minimum, maximum, p50..p9999)
    in ms; percentile(q) reads it (see `percentile_at_or_above`). Iago times each request from
    its actual send, so service_percentile(q) is the same number. `notes` say how the numbers
    were made; `polls` is the timeline, one entry per stats poll.
    """

    latency_summary: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def percentile(self, q: float) -> float:
        return percentile_at_or_above(summary_percentiles(self.latency_summary), q)

    def service_percentile(self, q: float) -> float:
        return self.percentile(q)

    @property
    def max(self) -> float:
        return (
            float(self.latency_summary.get("maximum", math.nan))
            if self.latency_summary.get("count")
            else math.nan
        )

    @property
    def mean(self) -> float:
        return (
            float(self.latency_summary.get("average", math.nan))
            if self.latency_summary.get("count")
            else math.nan
        )

    @property
    def timeline(self) -> list[dict[str, Any]]:
        return [dict(poll) for poll in self.polls]

    @classmethod
    def merge(cls, parts: Any) -> LoadResult:
        raise ValueError(
            "summary-only results (Iago runs) cannot be merged: percentiles do not add"
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["kind"] = KIND
        data["latency_summary"] = {k: _json_float(v) for k, v in self.latency_summary.items()}
        data["notes"] = list(self.notes)
        data["timeline"] = self.timeline
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SummaryLoadResult:
        if not isinstance(data, dict):
            raise ValueError(
                f"not a load result: expected a JSON object, got {type(data).__name__}"
            )
        if data.get("kind") != KIND:
            raise ValueError(f"not a load result: kind is not {KIND!r}")
        base = {k: v for k, v in data.items() if k != "timeline"}
        result = super().from_dict(base)
        assert isinstance(result, SummaryLoadResult)
        summary = data.get("latency_summary", {})
        notes = data.get("notes", [])
        polls = data.get("timeline", [])
        if not isinstance(summary, dict) or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            for v in summary.values()
        ):
            raise ValueError("not a load result: latency_summary: expected an object of numbers")
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ValueError("not a load result: notes: expected a list of text")
        if not isinstance(polls, list) or not all(isinstance(p, dict) for p in polls):
            raise ValueError("not a load result: timeline: expected a list of objects")
        result.latency_summary = {
            str(k): _finite(v, f"latency_summary.{k}") for k, v in summary.items() if v is not None
        }
        result.notes = list(notes)
        result.polls = [dict(p) for p in polls]
        return result


def _finite(value: float, where: str) -> float:
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"not a load result: {where}: out of range")
    return number


def result_from_stats(
    final: OstrichStats,
    *,
    baseline: OstrichStats | None,
    duration: float,
    target_rate: float,
    polls: list[dict[str, Any]],
    warmup: float,
    interrupted: bool = False,
    **info: Any,
) -> SummaryLoadResult:
    """The run's result: counters as `final` minus `baseline` (the end of the warm-up), the
    latency summary as `final` reports it (Ostrich's histograms are cumulative)."""
    empty = OstrichStats({}, {}, {}, {})
    start = baseline or empty
    requests = final.requests - start.requests
    errors = max(0, final.errors - start.errors)
    ours = final.by_seldon_load
    corrected = ours and final.corrected
    notes = [
        "summary-only: percentiles from the pod's Ostrich stats (/stats.json), no histogram; "
        "percentiles other than p50, p90, p95, p99, p99.9 and p99.99 read as the next one up",
    ]
    if corrected:
        notes.append(
            "latency measured from the intended send time (seldon-load engine in the "
            "pod), HDR histogram with 3 significant digits"
        )
    else:
        notes.append(
            "latency measured from the actual send: NOT corrected for coordinated "
            "omission (a stalled generator hides server stalls)"
        )
        notes.append("Ostrich buckets: each percentile carries about ±5% error")
        notes.append(
            "Iago does not report its schedule or its lag: scheduled = sent, and "
            "whether it kept up is unknown"
        )
    if warmup > 0:
        notes.append(
            f"counts cover the {duration:g}s after a {warmup:g}s warm-up; percentiles "
            "cover the whole run, warm-up included (Ostrich's are cumulative)"
        )
    result = SummaryLoadResult(
        target_rate=target_rate,
        duration=duration,
        warmup=warmup,
        scheduled=requests,
        requests=requests,
        ok=max(0, requests - errors),
        errors=errors,
        unsent=int(final.counter("seldon_load/unsent") - start.counter("seldon_load/unsent")),
        status_codes=_delta(final.status_codes(), start.status_codes()),
        error_kinds=_delta(final.error_kinds(), start.error_kinds()),
        engine="iago",
        corrected=corrected,
        interrupted=interrupted,
        latency_summary=final.latency_summary(),
        notes=notes,
        polls=polls,
        **info,
    )
    if ours:
        health = result.health
        health.late_sends = int(
            final.counter("seldon_load/late_sends") - start.counter("seldon_load/late_sends")
        )
        health.sends_checked = int(
            final.counter("seldon_load/sends_checked") - start.counter("seldon_load/sends_checked")
        )
        health.max_lag_ms = final.gauges.get("seldon_load/max_lag_ms", 0.0)
        health.busy_fraction = final.gauges.get("seldon_load/busy_fraction", 0.0)
    return result


def poll_entry(second: float, now: OstrichStats, before: OstrichStats) -> dict[str, Any]:
    """One timeline entry: counts since the previous poll, percentiles so far (cumulative)."""
    summary = summary_percentiles(now.latency_summary())
    return {
        "second": round(second, 3),
        "sent": now.requests - before.requests,
        "ok": max(0, (now.requests - now.errors) - (before.requests - before.errors)),
        "errors": max(0, now.errors - before.errors),
        "p50": _json_float(summary.get(50.0, math.nan)),
        "p99": _json_float(summary.get(99.0, math.nan)),
        "cumulative": True,
        "pending": now.gauges.get("client/pending"),
    }
