"""What a load run measured: HDR histograms, counts, a per-second timeline, and generator health.

Latencies are recorded in whole microseconds into HdrHistograms (1 µs .. 1 h, 3 significant
digits) and reported in milliseconds. Everything in a result merges exactly (histograms add,
counts add, per-second windows add), so a schedule split over processes gives the same numbers
as one process would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from .judgement import Judgement

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
SCHEMA = "pytest-seldon-load/result/1"


def new_histogram() -> HdrHistogram:
    """The one histogram shape used everywhere, so any two of them can be added."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _clamp_us(seconds: float) -> int:
    us = int(seconds * 1_000_000 + 0.5)
    if us < LOWEST_US:
        return LOWEST_US
    return min(us, HIGHEST_US)


def _percentile_ms(histogram: HdrHistogram, q: float) -> float:
    if histogram.get_total_count() == 0:
        return math.nan
    return histogram.get_value_at_percentile(q) / 1000.0


def _decode(encoded: str) -> HdrHistogram:
    histogram = new_histogram()
    if encoded:
        histogram.decode_and_add(encoded)
    return histogram


def _encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii") if histogram.get_total_count() else ""


class Window:
    """One second of the run, by the clock of the measured period (0 = end of warm-up).

    `sent` counts sends in the second; `ok`/`errors` and the latency histograms count
    completions in it, so a stall shows where its requests finally came back. A closed window
    keeps its histograms encoded (a few hundred bytes, not 190 kB), so an hour-long run fits.
    """

    __slots__ = (
        "_latency",
        "_latency_hdr",
        "_service",
        "_service_hdr",
        "errors",
        "ok",
        "second",
        "sent",
    )

    def __init__(
        self,
        second: int,
        sent: int = 0,
        ok: int = 0,
        errors: int = 0,
        latency_hdr: str = "",
        service_hdr: str = "",
    ) -> None:
        self.second = second
        self.sent = sent
        self.ok = ok
        self.errors = errors
        self._latency_hdr = latency_hdr
        self._service_hdr = service_hdr
        self._latency: HdrHistogram | None = None
        self._service: HdrHistogram | None = None

    @property
    def latency(self) -> HdrHistogram:
        """The live histogram (decoded again if the window was compacted)."""
        if self._latency is None:
            self._latency = _decode(self._latency_hdr)
        return self._latency

    @property
    def service(self) -> HdrHistogram:
        if self._service is None:
            self._service = _decode(self._service_hdr)
        return self._service

    def compact(self) -> None:
        """Encode the histograms and drop the live ones."""
        if self._latency is not None:
            self._latency_hdr = _encode(self._latency)
            self._latency = None
        if self._service is not None:
            self._service_hdr = _encode(self._service)
            self._service = None

    @property
    def p50(self) -> float:
        return _percentile_ms(self.latency, 50)

    @property
    def p99(self) -> float:
        return _percentile_ms(self.latency, 99)

    @property
    def service_p50(self) -> float:
        return _percentile_ms(self.service, 50)

    @property
    def service_p99(self) -> float:
        return _percentile_ms(self.service, 99)

    def add(self, other: Window) -> None:
        self.sent += other.sent
        self.ok += other.ok
        self.errors += other.errors
        self.latency.add(other.latency)
        self.service.add(other.service)

    def to_dict(self) -> dict[str, Any]:
        latency, service = self.latency, self.service
        return {
            "second": self.second,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "p50": _json_float(_percentile_ms(latency, 50)),
            "p99": _json_float(_percentile_ms(latency, 99)),
            "service_p50": _json_float(_percentile_ms(service, 50)),
            "service_p99": _json_float(_percentile_ms(service, 99)),
            "latency_hdr": _encode(latency),
            "service_hdr": _encode(service),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        return cls(
            second=int(data["second"]),
            sent=int(data["sent"]),
            ok=int(data["ok"]),
            errors=int(data["errors"]),
            latency_hdr=str(data.get("latency_hdr", "")),
            service_hdr=str(data.get("service_hdr", "")),
        )


def _json_float(value: float) -> float | None:
    return None if value != value else round(value, 4)


LAG_THRESHOLD_MS = 5.0
"""A send that leaves more than this after it could have is late."""
LATE_FRACTION_ALLOWED = 0.01
"""A run with more late sends than this share did not keep up."""
BUSY_FRACTION_ALLOWED = 0.9
"""An engine thread busier than this share of the sending period did not keep up."""


@dataclass
class GeneratorHealth:
    """Did the load generator hold its own schedule? If not, its lag is inside the latencies."""

    late_sends: int = 0
    max_lag_ms: float = 0.0
    lag_threshold_ms: float = LAG_THRESHOLD_MS
    late_fraction_allowed: float = LATE_FRACTION_ALLOWED
    sends_checked: int = 0
    busy_fraction: float = 0.0
    """Share of the sending period the engine's thread spent on a CPU. A saturated event loop
    reads answers late, which fills the pool and passes for a slow server: above
    `busy_fraction_allowed` the run did not keep up, however punctual its sends look."""
    busy_fraction_allowed: float = BUSY_FRACTION_ALLOWED

    @property
    def late_fraction(self) -> float:
        return self.late_sends / self.sends_checked if self.sends_checked else 0.0

    @property
    def saturated(self) -> bool:
        return self.busy_fraction > self.busy_fraction_allowed

    @property
    def kept_up(self) -> bool:
        return self.late_fraction <= self.late_fraction_allowed and not self.saturated

    def describe(self) -> str:
        """How punctual the generator was, in words for failure messages."""
        text = (
            f"{self.late_sends} of {self.sends_checked} sends more than "
            f"{self.lag_threshold_ms:g}ms late, worst {self.max_lag_ms:.1f}ms"
        )
        if self.busy_fraction:
            text += f"; engine thread busy {self.busy_fraction:.0%} of the time"
        return text

    def add(self, other: GeneratorHealth) -> None:
        self.late_sends += other.late_sends
        self.sends_checked += other.sends_checked
        self.max_lag_ms = max(self.max_lag_ms, other.max_lag_ms)
        self.busy_fraction = max(self.busy_fraction, other.busy_fraction)


@dataclass
class LoadResult:
    """One load run. Latencies in ms, measured from the INTENDED send time unless named service.

    `scheduled` is every request the schedule asked for in the measured period; `requests`
    those actually sent; `unsent` those the run could not send before its deadline (they count
    as errors and enter the latency histogram with the time they had waited by then, a lower
    bound, so a stall cannot hide by stopping the sends).
    """

    target_rate: float
    duration: float
    scheduled: int = 0
    requests: int = 0
    ok: int = 0
    errors: int = 0
    unsent: int = 0
    retries: int = 0
    """Requests sent a second time after meeting a connection the server had closed while
    idle (not errors: the first attempt never reached the application)."""
    status_codes: dict[int, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    latency: HdrHistogram = field(default_factory=new_histogram, repr=False)
    service: HdrHistogram = field(default_factory=new_histogram, repr=False)
    windows: list[Window] = field(default_factory=list, repr=False)
    health: GeneratorHealth = field(default_factory=GeneratorHealth)
    engine: str = "embedded"
    corrected: bool = True
    interrupted: bool = False
    label: str = ""
    target: str = ""
    arrival: str = ""
    seed: int | None = None
    processes: int = 1
    started_at: float = 0.0
    lag_accepted: bool = False
    judgements: list[Judgement] = field(default_factory=list)

    # --- the numbers users assert on -------------------------------------------------
    @property
    def error_rate(self) -> float:
        denominator = max(self.scheduled, self.requests)
        return self.errors / denominator if denominator else 0.0

    @property
    def achieved_rate(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def throughput(self) -> float:
        return self.ok / self.duration if self.duration > 0 else 0.0

    @property
    def kept_up(self) -> bool:
        return self.health.kept_up

    def percentile(self, q: float) -> float:
        """Latency at percentile q (in percent: 99.9), in ms, from the intended send time."""
        _check_percentile(q)
        return _percentile_ms(self.latency, q)

    def service_percentile(self, q: float) -> float:
        """Latency at percentile q in ms, from the actual send (what the server alone took)."""
        _check_percentile(q)
        return _percentile_ms(self.service, q)

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p95(self) -> float:
        return self.percentile(95)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def p999(self) -> float:
        return self.percentile(99.9)

    @property
    def max(self) -> float:
        count = self.latency.get_total_count()
        return self.latency.get_max_value() / 1000.0 if count else math.nan

    @property
    def mean(self) -> float:
        count = self.latency.get_total_count()
        return self.latency.get_mean_value() / 1000.0 if count else math.nan

    @property
    def timeline(self) -> list[dict[str, Any]]:
        """Per second: sent, ok, errors, p50, p99 (and service p50/p99), in ms."""
        return [
            {k: v for k, v in w.to_dict().items() if not k.endswith("_hdr")} for w in self.windows
        ]

    # --- merging and persistence -----------------------------------------------------
    @classmethod
    def merge(cls, parts: Iterable[LoadResult]) -> LoadResult:
        """Add results of one schedule split across processes: exact, not averaged."""
        parts = list(parts)
        if not parts:
            raise ValueError("merge needs at least one result")
        first = parts[0]
        merged = cls(
            target_rate=sum(p.target_rate for p in parts),
            duration=max(p.duration for p in parts),
            health=GeneratorHealth(
                lag_threshold_ms=first.health.lag_threshold_ms,
                late_fraction_allowed=first.health.late_fraction_allowed,
                busy_fraction_allowed=first.health.busy_fraction_allowed,
            ),
            engine=first.engine,
            corrected=all(p.corrected for p in parts),
            label=first.label,
            target=first.target,
            arrival=first.arrival,
            seed=first.seed,
            processes=sum(p.processes for p in parts),
            started_at=min(p.started_at for p in parts),
        )
        windows: dict[int, Window] = {}
        for part in parts:
            merged.scheduled += part.scheduled
            merged.requests += part.requests
            merged.ok += part.ok
            merged.errors += part.errors
            merged.unsent += part.unsent
            merged.retries += part.retries
            merged.interrupted = merged.interrupted or part.interrupted
            for code, n in part.status_codes.items():
                merged.status_codes[code] = merged.status_codes.get(code, 0) + n
            for kind, n in part.error_kinds.items():
                merged.error_kinds[kind] = merged.error_kinds.get(kind, 0) + n
            merged.latency.add(part.latency)
            merged.service.add(part.service)
            merged.health.add(part.health)
            for window in part.windows:
                windows.setdefault(window.second, Window(window.second)).add(window)
        merged.windows = [windows[s] for s in sorted(windows)]
        return merged

    def summary(self) -> dict[str, Any]:
        """The headline numbers, small enough to travel in a report or between xdist workers."""
        return {
            "label": self.label,
            "target": self.target,
            "engine": self.engine,
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 3),
            "throughput": round(self.throughput, 3),
            "duration": self.duration,
            "scheduled": self.scheduled,
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "unsent": self.unsent,
            "error_rate": self.error_rate,
            "p50": _json_float(self.p50),
            "p90": _json_float(self.p90),
            "p95": _json_float(self.p95),
            "p99": _json_float(self.p99),
            "p999": _json_float(self.p999),
            "max": _json_float(self.max),
            "kept_up": self.kept_up,
            "corrected": self.corrected,
            "interrupted": self.interrupted,
            "lag_accepted": self.lag_accepted,
            "late_sends": self.health.late_sends,
            "max_lag_ms": round(self.health.max_lag_ms, 3),
            "busy_fraction": round(self.health.busy_fraction, 3),
            "judgements": [Judgement.from_dict(j).to_dict() for j in self.judgements],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            **self.summary(),
            "retries": self.retries,
            "status_codes": {str(k): v for k, v in sorted(self.status_codes.items())},
            "error_kinds": dict(sorted(self.error_kinds.items())),
            "health": {
                "late_sends": self.health.late_sends,
                "sends_checked": self.health.sends_checked,
                "max_lag_ms": self.health.max_lag_ms,
                "lag_threshold_ms": self.health.lag_threshold_ms,
                "late_fraction_allowed": self.health.late_fraction_allowed,
                "busy_fraction": self.health.busy_fraction,
                "busy_fraction_allowed": self.health.busy_fraction_allowed,
            },
            "arrival": self.arrival,
            "seed": self.seed,
            "processes": self.processes,
            "started_at": self.started_at,
            "latency_hdr": _encode(self.latency),
            "service_hdr": _encode(self.service),
            "timeline": [w.to_dict() for w in self.windows],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        """A result from its `to_dict` form; anything else is a ValueError saying what."""
        if not isinstance(data, dict):
            raise ValueError(
                f"not a load result: expected a JSON object, got {type(data).__name__}"
            )
        if cls is LoadResult and data.get("kind") == "summary-only":
            # An Iago run: percentiles without histograms, read back as what it was.
            from .iago.stats import SummaryLoadResult

            return SummaryLoadResult.from_dict(data)
        try:
            return cls._from_checked_dict(data)
        except ValueError:
            raise
        except KeyError as exc:
            raise ValueError(f"not a load result: the field {exc.args[0]!r} is missing") from None
        except Exception as exc:  # a corrupt histogram, a field of the wrong type
            raise ValueError(f"not a load result: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_checked_dict(cls, data: dict[str, Any]) -> LoadResult:
        if data.get("schema") != SCHEMA:
            raise ValueError(
                f"not a load result: schema is {data.get('schema')!r}, expected {SCHEMA!r}"
            )
        health = data.get("health", {})
        return cls(
            target_rate=float(data["target_rate"]),
            duration=float(data["duration"]),
            scheduled=int(data["scheduled"]),
            requests=int(data["requests"]),
            ok=int(data["ok"]),
            errors=int(data["errors"]),
            unsent=int(data.get("unsent", 0)),
            retries=int(data.get("retries", 0)),
            status_codes={int(k): int(v) for k, v in data.get("status_codes", {}).items()},
            error_kinds={str(k): int(v) for k, v in data.get("error_kinds", {}).items()},
            latency=_decode(data.get("latency_hdr", "")),
            service=_decode(data.get("service_hdr", "")),
            windows=[Window.from_dict(w) for w in data.get("timeline", [])],
            health=GeneratorHealth(
                late_sends=int(health.get("late_sends", 0)),
                sends_checked=int(health.get("sends_checked", 0)),
                max_lag_ms=float(health.get("max_lag_ms", 0.0)),
                lag_threshold_ms=float(health.get("lag_threshold_ms", LAG_THRESHOLD_MS)),
                late_fraction_allowed=float(
                    health.get("late_fraction_allowed", LATE_FRACTION_ALLOWED)
                ),
                busy_fraction=float(health.get("busy_fraction", 0.0)),
                busy_fraction_allowed=float(
                    health.get("busy_fraction_allowed", BUSY_FRACTION_ALLOWED)
                ),
            ),
            engine=str(data.get("engine", "embedded")),
            corrected=bool(data.get("corrected", True)),
            interrupted=bool(data.get("interrupted", False)),
            label=str(data.get("label", "")),
            target=str(data.get("target", "")),
            arrival=str(data.get("arrival", "")),
            seed=data.get("seed"),
            processes=int(data.get("processes", 1)),
            started_at=float(data.get("started_at", 0.0)),
            lag_accepted=bool(data.get("lag_accepted", False)),
            judgements=[Judgement.from_dict(j) for j in data.get("judgements") or []],
        )

    @classmethod
    def from_json(cls, text: str) -> LoadResult:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a load result: invalid JSON ({exc})") from None
        return cls.from_dict(data)


def _check_percentile(q: float) -> None:
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in 0..100 (99.9 for p99.9), got {q!r}")


class Recorder:
    """Collects one run's outcomes as they happen; cheap per request, exact to merge.

    Times are seconds on the engine's monotonic clock, relative to the start of the schedule.
    Requests intended before `warmup` are sent but not counted.
    """

    def __init__(self, warmup: float) -> None:
        self.warmup = warmup
        self.latency = new_histogram()
        self.service = new_histogram()
        self.status_codes: dict[int, int] = {}
        self.error_kinds: dict[str, int] = {}
        self.requests = 0
        self.ok = 0
        self.errors = 0
        self.unsent = 0
        self.health = GeneratorHealth()
        self._windows: dict[int, Window] = {}
        self._newest_completion_second = -1

    def _window(self, at: float) -> Window:
        second = int(at - self.warmup) if at >= self.warmup else -1
        window = self._windows.get(second)
        if window is None:
            window = self._windows[second] = Window(second)
        return window

    def _completion_window(self, done: float) -> Window:
        """Completions come in clock order, so a new second closes the ones two behind it."""
        window = self._window(done)
        if window.second > self._newest_completion_second:
            for second in range(max(self._newest_completion_second - 1, -1), window.second - 1):
                closed = self._windows.get(second)
                if closed is not None:
                    closed.compact()
            self._newest_completion_second = window.second
        return window

    def sent(self, intended: float, actual: float, lag: float) -> None:
        """A send left `lag` seconds after the generator was free to send it."""
        if intended < self.warmup:
            return
        self.requests += 1
        self._window(actual).sent += 1
        health = self.health
        health.sends_checked += 1
        lag_ms = lag * 1000.0
        if lag_ms > health.lag_threshold_ms:
            health.late_sends += 1
        if lag_ms > health.max_lag_ms:
            health.max_lag_ms = lag_ms

    def completed(
        self,
        intended: float,
        sent: float,
        done: float,
        status: int | None,
        error_kind: str | None,
    ) -> None:
        if intended < self.warmup:
            return
        # A send may leave up to half a millisecond early (timer rounding): latency then
        # counts from the actual send, so it is never below the service time.
        latency_us = _clamp_us(done - (intended if intended < sent else sent))
        service_us = _clamp_us(done - sent)
        self.latency.record_value(latency_us)
        self.service.record_value(service_us)
        window = self._completion_window(done)
        window.latency.record_value(latency_us)
        window.service.record_value(service_us)
        if status is not None:
            self.status_codes[status] = self.status_codes.get(status, 0) + 1
        if error_kind is None:
            self.ok += 1
            window.ok += 1
        else:
            self.errors += 1
            window.errors += 1
            self.error_kinds[error_kind] = self.error_kinds.get(error_kind, 0) + 1

    def withdrawn(self, intended: float) -> None:
        """A sent request whose answer was never awaited (the run was interrupted)."""
        if intended >= self.warmup:
            self.requests -= 1

    def never_sent(self, intended: float, deadline: float) -> None:
        """A scheduled request the run had no chance to send before its deadline."""
        if intended < self.warmup:
            return
        self.unsent += 1
        self.errors += 1
        self.error_kinds["unsent"] = self.error_kinds.get("unsent", 0) + 1
        self.latency.record_value(_clamp_us(deadline - intended))

    def result(
        self, *, target_rate: float, duration: float, scheduled: int, **info: Any
    ) -> LoadResult:
        windows = [w for s, w in sorted(self._windows.items()) if s >= 0]
        for window in windows:
            window.compact()
        return LoadResult(
            target_rate=target_rate,
            duration=duration,
            scheduled=scheduled,
            requests=self.requests,
            ok=self.ok,
            errors=self.errors,
            unsent=self.unsent,
            status_codes=dict(self.status_codes),
            error_kinds=dict(self.error_kinds),
            latency=self.latency,
            service=self.service,
            windows=windows,
            health=self.health,
            **info,
        )
