"""What one load run is: its schedule (`RunPlan`) and how its requests go out (`EngineSettings`).

Every way of starting a run (`run_load`, the `load_run` fixture and its marker, ``seldon-load
run``, any engine) spells a run's parameters here and nowhere else, so a rate of "abc", a
NaN ramp or a zero timeout is refused in one place, by one rule, with an error naming the
argument. Values are read as users write them ("20s", "100", 64.0) and kept normalised
(seconds, floats, ints), so engines read plain numbers once per run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .durations import parse_count, parse_duration_s, parse_number
from .http_pool import MAX_ANSWER_BYTES
from .pacer import arrival_kind
from .proxy import HttpProxy
from .redact import redact_url
from .result import (
    BUSY_FRACTION_ALLOWED,
    LAG_THRESHOLD_MS,
    LATE_FRACTION_ALLOWED,
    LoadResult,
)
from .tls import TlsSettings

if TYPE_CHECKING:
    from .endpoint import SeldonEndpoint


class PlanError(ValueError):
    """A run parameter that cannot be used; `argument` names it (``rate``, ``ramp_from``...)."""

    def __init__(self, argument: str, message: str) -> None:
        named = message if message.startswith(f"{argument}:") else f"{argument}: {message}"
        super().__init__(named)
        self.argument = argument


def _check(argument: str, read: Callable[[Any], Any], value: Any) -> Any:
    try:
        return read(value)
    except (TypeError, ValueError) as exc:
        raise PlanError(argument, str(exc)) from None


def _duration(argument: str, *, allow_zero: bool) -> Callable[[Any], float]:
    def read(value: Any) -> float:
        seconds = parse_duration_s(value, argument)
        if seconds == 0 and not allow_zero:
            raise ValueError(f"{argument}: must be positive, got {value!r}")
        return seconds

    return read


def _fraction(argument: str) -> Callable[[Any], float]:
    def read(value: Any) -> float:
        number = parse_number(value, argument, allow_zero=True)
        if number > 1:
            raise ValueError(f"{argument}: must be between 0 and 1, got {value!r}")
        return number

    return read


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


def _instance_of(kind: type, how: str) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"must be a {kind.__name__} ({how}), got {value!r}")
        return value

    return read


def _normalise(instance: object, rules: Mapping[str, Callable[[Any], Any]]) -> None:
    """Read each field through its rule and store the normalised value (frozen or not)."""
    for name, read in rules.items():
        object.__setattr__(instance, name, _check(name, read, getattr(instance, name)))


@dataclass(frozen=True)
class EngineSettings:
    """How the engine sends: pool size, in-flight bound, timeout and punctuality rules."""

    connections: int = 64
    max_in_flight: int | None = None
    timeout: float = 10.0
    lag_threshold_ms: float = LAG_THRESHOLD_MS
    late_fraction_allowed: float = LATE_FRACTION_ALLOWED
    busy_fraction_allowed: float = BUSY_FRACTION_ALLOWED
    part: int = 0
    parts: int = 1
    max_answer_bytes: int = MAX_ANSWER_BYTES
    """An answer larger than this (head and body) is an error, `answer_too_large`."""
    tls: TlsSettings | None = None
    """CA bundle, client certificate, or verification off, for https targets."""
    proxy: HttpProxy | None = None
    """An explicit HTTP proxy (environment proxies are never used)."""

    def __post_init__(self) -> None:
        _normalise(
            self,
            {
                "connections": lambda v: parse_count(v, "connections"),
                "max_in_flight": _optional(lambda v: parse_count(v, "max_in_flight")),
                "timeout": _duration("timeout", allow_zero=False),
                "lag_threshold_ms": lambda v: parse_number(v, "lag_threshold_ms", allow_zero=True),
                "late_fraction_allowed": _fraction("late_fraction_allowed"),
                "busy_fraction_allowed": _fraction("busy_fraction_allowed"),
                "part": lambda v: parse_count(v, "part", least=0),
                "parts": lambda v: parse_count(v, "parts"),
                "max_answer_bytes": lambda v: parse_count(v, "max_answer_bytes"),
                "tls": _instance_of(TlsSettings, "TlsSettings(ca_bundle=...)"),
                "proxy": _instance_of(HttpProxy, 'HttpProxy("http://host:port")'),
            },
        )
        if not self.part < self.parts:
            raise PlanError("part", f"must be in 0..{self.parts - 1}, got {self.part}")

    def connection_options(self) -> dict[str, Any]:
        """What every transport takes from the settings, by its keyword: pool size, per-request
        timeout, answer size limit and TLS trust."""
        return {
            "connections": self.connections,
            "timeout": self.timeout,
            "max_answer_bytes": self.max_answer_bytes,
            "tls": self.tls,
        }

    @property
    def in_flight_bound(self) -> int:
        return self.max_in_flight or self.connections


def _label(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"label: must be a string, got {value!r}")
    return value


def _settings(value: Any) -> EngineSettings:
    if value is None:
        return EngineSettings()
    if not isinstance(value, EngineSettings):
        raise ValueError(f"settings: must be an EngineSettings, got {value!r}")
    return value


@dataclass(frozen=True)
class RunPlan:
    """One run's parameters: `rate` req/s for `warmup` + `duration` seconds (the warm-up is
    sent, not counted), the arrival process and its ramp, the schedule's seed (None: a fresh
    one, shown in the result), how requests are sent, and a label for reports.

    Engines read it once per run. A plan is immutable: `scaled` and `dataclasses.replace`
    make validated copies. New run-wide parameters are new fields here.
    """

    rate: float
    duration: float
    warmup: float = 0.0
    arrival: str = "constant"
    seed: int | None = None
    ramp: float | None = None
    ramp_from: float | None = None
    processes: int = 1
    """Worker processes the schedule is split over, each with its own event loop and pool
    (`processes.run_in_processes`); their results merge exactly into one."""
    settings: EngineSettings = field(default_factory=EngineSettings)
    label: str = ""

    def __post_init__(self) -> None:
        _normalise(
            self,
            {
                "rate": lambda v: parse_number(v, "rate"),
                "duration": _duration("duration", allow_zero=False),
                "warmup": _duration("warmup", allow_zero=True),
                "arrival": arrival_kind,
                "seed": _optional(lambda v: parse_count(v, "seed", least=0)),
                "ramp": _optional(_duration("ramp", allow_zero=True)),
                "ramp_from": _optional(lambda v: parse_number(v, "ramp_from", allow_zero=True)),
                "processes": lambda v: parse_count(v, "processes"),
                "settings": _settings,
                "label": _label,
            },
        )
        if not math.isfinite(self.warmup + self.duration):
            raise PlanError("duration", "warmup + duration is too long")

    @property
    def total(self) -> float:
        """Seconds of sending: warm-up and measured period."""
        return self.warmup + self.duration

    def stopped_before_start(
        self, endpoint: SeldonEndpoint, engine: str = "embedded"
    ) -> LoadResult:
        """The result of this run stopped before anything was measured: empty, interrupted,
        and named, so a saved result or report says so rather than nothing."""
        return LoadResult(
            target_rate=self.rate / self.settings.parts,  # a part's share, as a run reports it
            duration=0.0,
            interrupted=True,
            engine=engine,
            processes=self.processes,
            label=self.label,
            target=redact_url(endpoint.base_url),
            seed=self.seed,
            arrival=self.arrival,
            protocol=endpoint.protocol,
            warmup=self.warmup,
            connections=self.settings.connections,
        )

    def scaled(self, *, time: float = 1.0, rate: float = 1.0) -> RunPlan:
        """The plan with its durations (duration, warm-up, ramp) times `time` and its rate
        times `rate` (``--load-scale`` and ``--load-rate-scale``)."""
        return replace(
            self,
            rate=self.rate * rate,
            duration=self.duration * time,
            warmup=self.warmup * time,
            ramp=None if self.ramp is None else self.ramp * time,
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RunPlan:
        """A plan from the flat option names users write (`RUN_OPTIONS`: ``rate``,
        ``duration``, ..., ``connections``, ``timeout``); None or absent means the default."""
        unknown = sorted(set(options) - RUN_OPTIONS)
        if unknown:
            raise PlanError(
                unknown[0],
                f"unknown run option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(RUN_OPTIONS))}",
            )
        given = {name: value for name, value in options.items() if value is not None}
        for required in ("rate", "duration"):
            if required not in given:
                raise PlanError(required, "missing: a run needs a rate and a duration")
        settings = EngineSettings(**{k: v for k, v in given.items() if k in SETTINGS_OPTIONS})
        return cls(
            settings=settings,
            **{k: v for k, v in given.items() if k not in SETTINGS_OPTIONS},
        )


SETTINGS_OPTIONS = frozenset(
    {
        "connections",
        "max_in_flight",
        "timeout",
        "lag_threshold_ms",
        "max_answer_bytes",
        "tls",
        "proxy",
    }
)
"""The `EngineSettings` fields a test or the command line sets by name."""
RUN_OPTIONS = (frozenset(f.name for f in fields(RunPlan)) - {"settings"}) | SETTINGS_OPTIONS
"""Every option name `RunPlan.from_options` reads (the `load_run` vocabulary)."""
