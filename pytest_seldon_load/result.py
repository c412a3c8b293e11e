"""What a load run measured: HDR histograms, counts, a per-second timeline, and generator health.

Latencies are recorded in whole microseconds into HdrHistograms (1 µs .. 1 h, 3 significant
digits) and reported in milliseconds. Everything in a result merges exactly (histograms add,
counts add, per-second windows add), so a schedule split over processes gives the same numbers
as one process would.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from . import hdr
from .error_samples import ErrorSamples
from .hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, Packed, new_histogram
from .host_steal import STEAL_EXPLAINS_LAG, STEAL_WORTH_MENTIONING, describe_steal
from .judgement import Judgement

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "SCHEMA",
    "SIGNIFICANT_DIGITS",
    "GeneratorHealth",
    "LoadResult",
    "Recorder",
    "Window",
    "new_histogram",
]

SCHEMA = "pytest-seldon-load/result/1"


def _clamp_us(seconds: float) -> int:
    us = int(seconds * 1_000_000 + 0.5)
    if us < LOWEST_US:
        return LOWEST_US
    return min(us, HIGHEST_US)


def _percentile_ms(histogram: HdrHistogram, q: float) -> float:
    return hdr.percentile_ms(histogram, q)


class Window:
    """One second of the run, by the clock of the measured period (0 = end of warm-up).

    `sent` counts sends in the second; `ok`/`errors` and the latency histograms count
    completions in it, so a stall shows where its requests finally came back. A closed window
    keeps its histograms packed (about 1 kB a second at 1,000 req/s, not 380 kB), so an hour,
    or a day, of per-second windows fits; its statistics read the packed form directly.
    """

    __slots__ = (
        "_latency",
        "_latency_packed",
        "_service",
        "_service_packed",
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
        self._latency_packed = Packed.decode(latency_hdr, "latency_hdr")
        self._service_packed = Packed.decode(service_hdr, "service_hdr")
        self._latency: HdrHistogram | None = None
        self._service: HdrHistogram | None = None

    @classmethod
    def packed(
        cls, second: int, sent: int, ok: int, errors: int, latency: Packed, service: Packed
    ) -> Window:
        """A closed window from its packed histograms."""
        window = cls(second, sent, ok, errors)
        window._latency_packed, window._service_packed = latency, service
        return window

    def open(self, latency: HdrHistogram, service: HdrHistogram) -> None:
        """Record into these (empty) live histograms from now on."""
        self._latency = self._latency_packed.histogram(latency)
        self._service = self._service_packed.histogram(service)

    @property
    def is_open(self) -> bool:
        return self._latency is not None and self._service is not None

    @property
    def latency(self) -> HdrHistogram:
        """The live histogram (unpacked again if the window was compacted)."""
        if self._latency is None:
            self._latency = self._latency_packed.histogram()
        return self._latency

    @property
    def service(self) -> HdrHistogram:
        if self._service is None:
            self._service = self._service_packed.histogram()
        return self._service

    def _packed(self) -> tuple[Packed, Packed]:
        return _repacked(self._latency_packed, self._latency), _repacked(
            self._service_packed, self._service
        )

    def latency_counts(self) -> np.ndarray:
        """The latency slot counts as floats (hdr.slot_counts), without a live histogram."""
        if self._latency is not None:
            return hdr.slot_counts(self._latency)
        return self._latency_packed.counts().astype(np.float64)

    def compact(self) -> list[HdrHistogram]:
        """Pack the histograms and let go of the live ones; returns those, emptied, for reuse."""
        released = []
        self._latency_packed, self._service_packed = self._packed()
        for live in (self._latency, self._service):
            if live is not None:
                released.append(hdr.clear(live))
        self._latency = self._service = None
        return released

    @property
    def size(self) -> int:
        """Bytes of packed histograms kept."""
        return len(self._latency_packed) + len(self._service_packed)

    def _percentile(self, which: str, q: float) -> float:
        live = self._latency if which == "latency" else self._service
        if live is not None:
            return _percentile_ms(live, q)
        packed = self._latency_packed if which == "latency" else self._service_packed
        return packed.percentile_ms(q)

    @property
    def p50(self) -> float:
        return self._percentile("latency", 50)

    @property
    def p99(self) -> float:
        return self._percentile("latency", 99)

    @property
    def service_p50(self) -> float:
        return self._percentile("service", 50)

    @property
    def service_p99(self) -> float:
        return self._percentile("service", 99)

    def add(self, other: Window) -> None:
        """Add another process's window for the same second: counts and histograms add."""
        self.sent += other.sent
        self.ok += other.ok
        self.errors += other.errors
        if self._latency is not None or self._service is not None:
            hdr.add(self.latency, other.latency)
            hdr.add(self.service, other.service)
            return
        mine, theirs = self._packed(), other._packed()
        self._latency_packed = mine[0] + theirs[0]
        self._service_packed = mine[1] + theirs[1]

    def statistics(self) -> dict[str, Any]:
        """What the timeline shows of the second (no histograms)."""
        latency, service = self._packed()
        p50, p99 = latency.percentiles_ms((50, 99))
        service_p50, service_p99 = service.percentiles_ms((50, 99))
        return {
            "second": self.second,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "p50": _json_float(p50),
            "p99": _json_float(p99),
            "service_p50": _json_float(service_p50),
            "service_p99": _json_float(service_p99),
        }

    def to_dict(self, scratch: HdrHistogram | None = None) -> dict[str, Any]:
        latency, service = self._packed()
        return {
            **self.statistics(),
            "latency_hdr": latency.encode(scratch),
            "service_hdr": service.encode(scratch),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "timeline") -> Window:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        return cls.packed(
            second=_read_int(data, "second", where, required=True, negative=True),
            sent=_read_int(data, "sent", where, required=True),
            ok=_read_int(data, "ok", where, required=True),
            errors=_read_int(data, "errors", where, required=True),
            latency=Packed.decode(_read_str(data, "latency_hdr", where), f"{where}.latency_hdr"),
            service=Packed.decode(_read_str(data, "service_hdr", where), f"{where}.service_hdr"),
        )


def _repacked(packed: Packed, live: HdrHistogram | None) -> Packed:
    """The packed form of a window's histogram; a live one unchanged since it was unpacked
    (counts only grow, so an equal total means equal counts) is not packed again."""
    if live is None or live.get_total_count() == packed.total:
        return packed
    return Packed.of(live)


def _json_float(value: float) -> float | None:
    return None if value != value else round(value, 4)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


LAG_THRESHOLD_MS = 5.0
"""A send that leaves more than this after it could have is late."""
LATE_FRACTION_ALLOWED = 0.01
"""A run with more late sends than this share did not keep up."""
BUSY_FRACTION_ALLOWED = 0.9
"""An engine thread busier than this share of the sending period did not keep up."""


START_SPREAD_WORTH_MENTIONING_S = 1.0
"""Parts of a merged result that began this far apart are named in `describe`."""


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
    steal_fraction: float | None = None
    """Share of the machine's CPU time its host took over the sending period (Linux CPU
    steal, see `host_steal`); None where the system does not count it."""
    busiest_process: int = 0
    """Of a merged result: which part (process or pod, from 0) had `busy_fraction`."""
    start_spread_s: float = 0.0
    """Of a merged result: how far apart in time its parts began (load pods scheduled apart).
    Each part's seconds count from its own start, so the server saw the full rate only while
    all of them ran."""

    @property
    def late_fraction(self) -> float:
        return self.late_sends / self.sends_checked if self.sends_checked else 0.0

    @property
    def saturated(self) -> bool:
        return self.busy_fraction > self.busy_fraction_allowed

    @property
    def kept_up(self) -> bool:
        return self.late_fraction <= self.late_fraction_allowed and not self.saturated

    @property
    def lag_from_steal(self) -> bool:
        """The generator lagged while the host took a noticeable share of the CPU: the lag is
        (at least partly) the host's, not the generator's own work."""
        return (
            not self.kept_up
            and self.steal_fraction is not None
            and self.steal_fraction >= STEAL_EXPLAINS_LAG
        )

    def describe(self) -> str:
        """How punctual the generator was, in words for failure messages."""
        text = (
            f"{self.late_sends} of {self.sends_checked} sends more than "
            f"{self.lag_threshold_ms:g}ms late, worst {self.max_lag_ms:.1f}ms"
        )
        if self.busy_fraction:
            text += f"; engine thread busy {self.busy_fraction:.0%} of the time"
        if self.lag_from_steal:
            assert self.steal_fraction is not None
            text += f"; lag explained by host CPU steal: {describe_steal(self.steal_fraction)}"
        elif (self.steal_fraction or 0.0) >= STEAL_WORTH_MENTIONING:
            assert self.steal_fraction is not None
            text += f"; {describe_steal(self.steal_fraction)}"
        if self.start_spread_s >= START_SPREAD_WORTH_MENTIONING_S:
            text += (
                f"; its parts began {self.start_spread_s:.1f}s apart (the server had the full "
                f"rate only while all ran)"
            )
        return text

    def add(self, other: GeneratorHealth) -> None:
        self.late_sends += other.late_sends
        self.sends_checked += other.sends_checked
        self.max_lag_ms = max(self.max_lag_ms, other.max_lag_ms)
        self.busy_fraction = max(self.busy_fraction, other.busy_fraction)
        if other.steal_fraction is not None:
            self.steal_fraction = max(self.steal_fraction or 0.0, other.steal_fraction)


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
    aborted: str = ""
    """Why a rule stopped the run early (``--abort-on-error-rate``); empty if none did."""
    label: str = ""
    target: str = ""
    arrival: str = ""
    seed: int | None = None
    processes: int = 1
    started_at: float = 0.0
    """Wall-clock time (Unix seconds) the schedule started, warm-up included; 0 if unknown."""
    lag_accepted: bool = False
    judgements: list[Judgement] = field(default_factory=list)
    protocol: str = ""
    """The protocol spoken to the target (v2, v1, legacy, grpc...); empty if unknown."""
    warmup: float = 0.0
    """Seconds of warm-up before the measured period (sent, not counted)."""
    connections: int = 0
    """Connections (the in-flight bound) the run used, all processes together; 0 if unknown."""
    error_samples: ErrorSamples = field(default_factory=ErrorSamples, repr=False)
    """A few masked answers of each error kind (`error_samples`), for reports."""

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
        return hdr.mean_us(self.latency) / 1000.0 if count else math.nan

    @property
    def timeline(self) -> list[dict[str, Any]]:
        """Per second: sent, ok, errors, p50, p99 (and service p50/p99), in ms."""
        return [w.statistics() for w in self.windows]

    # --- merging and persistence -----------------------------------------------------
    @classmethod
    def merge(cls, parts: Iterable[LoadResult]) -> LoadResult:
        """Add results of one schedule split across processes: exact, not averaged
        (`merge.merge_results`)."""
        from .merge import merge_results

        return merge_results(parts)

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
            "aborted": self.aborted,
            "lag_accepted": self.lag_accepted,
            "late_sends": self.health.late_sends,
            "max_lag_ms": round(self.health.max_lag_ms, 3),
            "busy_fraction": round(self.health.busy_fraction, 3),
            "steal_fraction": _rounded(self.health.steal_fraction),
            "judgements": [Judgement.from_dict(j).to_dict() for j in self.judgements],
        }

    def to_dict(self) -> dict[str, Any]:
        scratch = new_histogram() if self.windows else None
        return {
            "schema": SCHEMA,
            **self.summary(),
            "retries": self.retries,
            "status_codes": {str(k): v for k, v in sorted(self.status_codes.items())},
            "error_kinds": dict(sorted(self.error_kinds.items())),
            "error_samples": self.error_samples.to_dict(),
            "health": {
                "late_sends": self.health.late_sends,
                "sends_checked": self.health.sends_checked,
                "max_lag_ms": self.health.max_lag_ms,
                "lag_threshold_ms": self.health.lag_threshold_ms,
                "late_fraction_allowed": self.health.late_fraction_allowed,
                "busy_fraction": self.health.busy_fraction,
                "busy_fraction_allowed": self.health.busy_fraction_allowed,
                "steal_fraction": self.health.steal_fraction,
                "busiest_process": self.health.busiest_process,
                "start_spread_s": self.health.start_spread_s,
            },
            "arrival": self.arrival,
            "seed": self.seed,
            "processes": self.processes,
            "started_at": self.started_at,
            "protocol": self.protocol,
            "warmup": self.warmup,
            "connections": self.connections,
            "latency_hdr": hdr.encode(self.latency),
            "service_hdr": hdr.encode(self.service),
            "timeline": [w.to_dict(scratch) for w in self.windows] if self.windows else [],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> LoadResult:
        """A result from its `to_dict` form; anything else is a ValueError naming the field."""
        if not isinstance(data, dict):
            raise ValueError(
                f"not a load result: expected a JSON object, got {type(data).__name__}"
            )
        kind = data.get("kind")
        if cls is LoadResult and kind is not None:
            return _kind_reader(kind).from_dict(data)
        try:
            return cls._from_checked_dict(data)
        except ValueError as exc:
            raise ValueError(f"not a load result: {exc}") from None

    @classmethod
    def _from_checked_dict(cls, data: dict[str, Any]) -> LoadResult:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema is {_shown(data.get('schema'))}, expected {SCHEMA!r}")
        health = _read_object(data, "health")
        timeline = data.get("timeline", [])
        if not isinstance(timeline, list):
            raise ValueError(f"timeline: expected a list, got {type(timeline).__name__}")
        return cls(
            target_rate=_read_float(data, "target_rate", required=True),
            duration=_read_float(data, "duration", required=True),
            scheduled=_read_int(data, "scheduled", required=True),
            requests=_read_int(data, "requests", required=True),
            ok=_read_int(data, "ok", required=True),
            errors=_read_int(data, "errors", required=True),
            unsent=_read_int(data, "unsent"),
            retries=_read_int(data, "retries"),
            status_codes={
                _parse_int(k, "status_codes"): _read_int(codes, k, "status_codes")
                for codes in [_read_object(data, "status_codes")]
                for k in codes
            },
            error_kinds={
                str(k): _read_int(kinds, k, "error_kinds")
                for kinds in [_read_object(data, "error_kinds")]
                for k in kinds
            },
            latency=hdr.decode(_read_str(data, "latency_hdr"), "latency_hdr"),
            service=hdr.decode(_read_str(data, "service_hdr"), "service_hdr"),
            windows=[Window.from_dict(w, f"timeline[{i}]") for i, w in enumerate(timeline)],
            health=GeneratorHealth(
                late_sends=_read_int(health, "late_sends", "health"),
                sends_checked=_read_int(health, "sends_checked", "health"),
                max_lag_ms=_read_float(health, "max_lag_ms", "health"),
                lag_threshold_ms=_read_float(
                    health, "lag_threshold_ms", "health", default=LAG_THRESHOLD_MS
                ),
                late_fraction_allowed=_read_float(
                    health, "late_fraction_allowed", "health", default=LATE_FRACTION_ALLOWED
                ),
                busy_fraction=_read_float(health, "busy_fraction", "health"),
                busy_fraction_allowed=_read_float(
                    health, "busy_fraction_allowed", "health", default=BUSY_FRACTION_ALLOWED
                ),
                steal_fraction=_read_fraction(health, "steal_fraction", "health"),
                busiest_process=_read_int(health, "busiest_process", "health"),
                start_spread_s=_read_float(health, "start_spread_s", "health", default=0.0),
            ),
            engine=_read_str(data, "engine", default="embedded"),
            corrected=_read_bool(data, "corrected", default=True),
            interrupted=_read_bool(data, "interrupted"),
            aborted=_read_str(data, "aborted"),
            label=_read_str(data, "label"),
            target=_read_str(data, "target"),
            arrival=_read_str(data, "arrival"),
            seed=_read_int(data, "seed", default=None, negative=True),
            processes=_read_int(data, "processes", default=1),
            started_at=_read_float(data, "started_at"),
            lag_accepted=_read_bool(data, "lag_accepted"),
            judgements=[Judgement.from_dict(j) for j in _read_judgements(data)],
            protocol=_read_str(data, "protocol"),
            warmup=_read_float(data, "warmup"),
            connections=_read_int(data, "connections"),
            error_samples=ErrorSamples.from_dict(data.get("error_samples")),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> LoadResult:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a load result: invalid JSON ({exc})") from None
        except RecursionError:
            raise ValueError("not a load result: JSON nested too deeply") from None
        except ValueError as exc:  # a number too long to read, say
            raise ValueError(f"not a load result: unreadable JSON ({exc})") from None
        return cls.from_dict(data)


RESULT_KINDS: dict[str, str] = {"summary-only": "pytest_seldon_load.iago.stats:SummaryLoadResult"}
"""Results of another kind (``"kind"`` in their JSON) and the class that reads them, imported
only when such a result is read: one line per kind, no import of its module here."""


def _kind_reader(kind: Any) -> type[LoadResult]:
    path = RESULT_KINDS.get(kind) if isinstance(kind, str) else None
    if path is None:
        raise ValueError(
            f"not a load result: kind is {_shown(kind)}; known kinds: {', '.join(RESULT_KINDS)}"
        )
    module, _, name = path.partition(":")
    reader = getattr(importlib.import_module(module), name)
    assert issubclass(reader, LoadResult)
    return reader


# --- reading fields: each error names the field ------------------------------------------

_MISSING = object()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _get(data: dict[str, Any], key: str, where: str, required: bool, default: Any) -> Any:
    value = data.get(key, _MISSING)
    if value is _MISSING or (value is None and not required):
        if required:
            raise ValueError(f"the field {_field(where, key)!r} is missing")
        return default
    return value


def _read_int(
    data: dict[str, Any],
    key: str,
    where: str = "",
    *,
    required: bool = False,
    default: Any = 0,
    negative: bool = False,
) -> Any:
    value = _get(data, key, where, required, default)
    if value is default and not required:
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{_field(where, key)}: expected a whole number, got {_shown(value)}")
    if (value < 0 and not negative) or abs(value) >= 2**63:
        raise ValueError(f"{_field(where, key)}: out of range ({_shown(value)})")
    return value


def _read_float(
    data: dict[str, Any],
    key: str,
    where: str = "",
    *,
    required: bool = False,
    default: float = 0.0,
) -> float:
    value = _get(data, key, where, required, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{_field(where, key)}: expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{_field(where, key)}: out of range ({_shown(value)})")
    return number


def _read_fraction(data: dict[str, Any], key: str, where: str = "") -> float | None:
    """An optional share in 0..1: absent or null is None (older files, other systems)."""
    if data.get(key) is None:
        return None
    value = _read_float(data, key, where)
    if value > 1:
        raise ValueError(f"{_field(where, key)}: must be between 0 and 1, got {_shown(value)}")
    return value


def _read_str(data: dict[str, Any], key: str, where: str = "", *, default: str = "") -> str:
    value = _get(data, key, where, False, default)
    if not isinstance(value, str):
        raise ValueError(f"{_field(where, key)}: expected text, got {_shown(value)}")
    return value


def _read_bool(data: dict[str, Any], key: str, *, default: bool = False) -> bool:
    value = _get(data, key, "", False, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {_shown(value)}")
    return value


def _read_object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = _get(data, key, "", False, {})
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected an object, got {type(value).__name__}")
    return value


def _parse_int(text: str, where: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise ValueError(f"{where}: {_shown(text)} is not a status code")
    return int(text)


def _read_judgements(data: dict[str, Any]) -> list[dict[str, Any]]:
    value = _get(data, "judgements", "", False, [])
    if not isinstance(value, list) or not all(isinstance(j, dict) for j in value):
        raise ValueError("judgements: expected a list of objects")
    return list(value)


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
        self.error_samples = ErrorSamples()
        self.requests = 0
        self.ok = 0
        self.errors = 0
        self.unsent = 0
        self.health = GeneratorHealth()
        self._windows: dict[int, Window] = {}
        self._newest_completion_second = -1
        self._spare: list[HdrHistogram] = []
        """Live histograms of closed windows, emptied, for the next seconds: no allocation
        churn of 190 kB blocks every second (which fragments the heap and grows it)."""

    def _live_histogram(self) -> HdrHistogram:
        return self._spare.pop() if self._spare else new_histogram()

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
                    self._spare.extend(closed.compact())
            self._newest_completion_second = window.second
        if not window.is_open:
            window.open(self._live_histogram(), self._live_histogram())
        return window

    def sent(self, intended: float, actual: float, lag: float) -> None:
        """A send left `lag` seconds after the generator was free to send it."""
        if intended < self.warmup:
            return
        self.requests += 1
        # A send may leave a fraction of a millisecond early (timers round): it still counts
        # in the second it was scheduled for, so the first one is not lost before second 0.
        self._window(max(actual, intended)).sent += 1
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
        body: bytes = b"",
    ) -> None:
        """An answer (or a failure) at `done`; an error's `body` may be kept as a sample."""
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
            self.error_samples.offer(error_kind, status, body)

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
        self._spare.clear()
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
            error_samples=self.error_samples,
            latency=self.latency,
            service=self.service,
            windows=windows,
            health=self.health,
            **info,
        )
