"""Capacity search: the highest open-loop rate a deployment serves within its budgets.

Seldon's docs find saturation with stepped open-loop tests; this automates them. Stages run
at rising rates (`start`, then times `growth`, or plus `step`) until one breaks a budget,
then the gap between the last good and the first bad rate is halved until it is within
`resolution`. Every stage is judged by the budget checks a load test uses
(`assertions.judge_budgets`), so "meets p99 < 50ms at 400/s" means here what it means there.

A stage the load generator could not hold (it fell behind its schedule and its latencies
hold its own delay) is no verdict on the server. It is run once more (a stall of a shared
machine is often brief); lagging again, it ends the search, which says so: the capacity is
then only known to be at least the last good rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .assertions import BudgetExceeded, InvalidMeasurement, budget_checks, judge_budgets
from .durations import format_ms, parse_duration_s, parse_number
from .endpoint import SeldonEndpoint
from .engines import ENGINES, EngineContext, EngineRegistry
from .interrupts import RunInterrupted
from .judgement import Judgement
from .plan import EngineSettings, PlanError, RunPlan
from .replay import ReplayFile
from .result import LoadResult

__all__ = [
    "Capacity",
    "CapacitySearch",
    "Stage",
    "assert_capacity_at_least",
    "find_capacity",
    "judge_capacity",
]

PASS, FAIL, INVALID = "pass", "FAIL", "invalid"

DEFAULT_ERROR_RATE = 0.01
"""Error share a stage may have when `budgets` names no ``error_rate``: a server that answers
fast because it refuses most requests has not served that rate."""

STOPPED = {
    "budget": "a budget broke and the gap was refined to the resolution",
    "max_rate": "every stage up to max_rate met its budgets",
    "start": "the starting rate already broke a budget",
    "invalid": "a stage could not be judged (the load generator fell behind its schedule)",
    "stages": "the stage limit was reached before the gap was within the resolution",
    "interrupted": "the search was interrupted (Ctrl-C or SIGTERM)",
}
"""Why a search ends, by the key `Capacity.stopped` holds."""


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Stage:
    """One rate of the search and its verdict: pass, FAIL (a budget broke, the server's) or
    invalid (not a verdict: `reasons` says why). Latencies in ms, from the intended send."""

    rate: float
    p50: float
    p99: float
    requests: int
    errors: int
    verdict: str
    reasons: tuple[str, ...] = ()
    kept_up: bool = True
    result: LoadResult | None = field(default=None, compare=False, repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @classmethod
    def judged(
        cls, rate: float, result: LoadResult, budgets: Mapping[str, Any], *, allow_lag: bool
    ) -> Stage:
        """The stage a run makes, judged by the shared budget checks."""
        judgements = judge_budgets(result, dict(budgets), allow_lag=allow_lag)
        return cls.from_judgements(rate, result, judgements)

    @classmethod
    def from_judgements(cls, rate: float, result: LoadResult, judgements: list[Judgement]) -> Stage:
        failed = [j for j in judgements if not j.passed]
        if any(j.server_fault for j in failed):
            verdict = FAIL
            failed = [j for j in failed if j.server_fault]
        elif failed:
            verdict = INVALID
        else:
            verdict = PASS
        reasons = tuple(j.text() for j in failed)
        if verdict == INVALID and not result.kept_up:
            reasons += (f"the load generator fell behind: {result.health.describe()}",)
        return cls(
            rate=rate,
            p50=result.p50,
            p99=result.p99,
            requests=max(result.scheduled, result.requests),
            errors=result.errors,
            verdict=verdict,
            reasons=reasons,
            kept_up=result.kept_up,
            result=result,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "p50": None if math.isnan(self.p50) else round(self.p50, 4),
            "p99": None if math.isnan(self.p99) else round(self.p99, 4),
            "requests": self.requests,
            "errors": self.errors,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "kept_up": self.kept_up,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "stage") -> Stage:
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        try:
            verdict = data["verdict"]
            if verdict not in (PASS, FAIL, INVALID):
                raise ValueError(f"verdict {verdict!r} is not pass, FAIL or invalid")
            reasons = data.get("reasons", [])
            if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
                raise ValueError("reasons: expected a list of text")
            return cls(
                rate=float(data["rate"]),
                p50=_float(data.get("p50")),
                p99=_float(data.get("p99")),
                requests=int(data.get("requests", 0)),
                errors=int(data.get("errors", 0)),
                verdict=verdict,
                reasons=tuple(reasons),
                kept_up=bool(data.get("kept_up", True)),
            )
        except KeyError as exc:
            raise ValueError(f"{where}: the field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


@dataclass
class Capacity:
    """What a capacity search found: `rate`, the highest rate that met every budget (None if
    not even the start did); `first_bad`, the lowest that broke one (None if none did);
    `stopped`, why the search ended (a key of `STOPPED`); and every stage in the order run."""

    budgets: dict[str, Any]
    stages: list[Stage] = field(default_factory=list)
    rate: float | None = None
    first_bad: float | None = None
    stopped: str = ""
    max_rate: float = math.inf
    resolution: float = 0.1
    label: str = ""

    @property
    def invalid_stage(self) -> Stage | None:
        """The stage that ended the search without a verdict, if one did."""
        if self.stopped == "invalid" and self.stages and self.stages[-1].verdict == INVALID:
            return self.stages[-1]
        return None

    @property
    def rerun(self) -> int:
        """Stages that could not be judged and were run again."""
        unjudged = sum(1 for s in self.stages if s.verdict == INVALID)
        return unjudged - (1 if self.invalid_stage is not None else 0)

    @property
    def breaking_stage(self) -> Stage | None:
        """The failed stage at `first_bad`: what broke there."""
        return next(
            (s for s in self.stages if s.verdict == FAIL and s.rate == self.first_bad), None
        )

    def describe(self) -> str:
        """One sentence: the capacity and what bounds it."""
        good = f"{self.rate:g}/s" if self.rate is not None else "none"
        text = f"capacity {good} within {_budget_text(self.budgets)}"
        broken = self.breaking_stage
        if broken is not None:
            text += f"; broken at {broken.rate:g}/s ({'; '.join(broken.reasons)})"
        if self.stopped == "max_rate":
            text += f"; max_rate {self.max_rate:g}/s reached, the capacity may be higher"
        invalid = self.invalid_stage
        if invalid is not None:
            text += (
                f"; the stage at {invalid.rate:g}/s is not a verdict on the server "
                f"({'; '.join(invalid.reasons)}), so the capacity is at least {good}"
            )
        elif self.stopped in ("stages", "interrupted"):
            text += f"; {STOPPED[self.stopped]}"
        if self.rerun:
            text += f"; {self.rerun} stage(s) the generator could not hold were run again"
        return text

    def table(self) -> list[str]:
        """The stages as a text table, by rate, for the terminal and failure messages."""
        header = ("rate/s", "p50", "p99", "errors", "verdict")
        rows = [
            (
                f"{s.rate:g}",
                format_ms(s.p50),
                format_ms(s.p99),
                f"{s.error_rate:.2%}",
                s.verdict if s.verdict != INVALID else "invalid: not a verdict",
            )
            for s in sorted(self.stages, key=lambda s: s.rate)
        ]
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
        return [
            "  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in (header, *rows)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "budgets": {str(k): str(v) for k, v in self.budgets.items()},
            "rate": self.rate,
            "first_bad": self.first_bad,
            "stopped": self.stopped,
            "max_rate": None if math.isinf(self.max_rate) else self.max_rate,
            "resolution": self.resolution,
            "text": self.describe(),
            "stages": [s.to_dict() for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Capacity:
        if not isinstance(data, Mapping):
            raise ValueError(f"capacity: expected an object, got {type(data).__name__}")
        stages = data.get("stages", [])
        budgets = data.get("budgets", {})
        if not isinstance(stages, list) or not isinstance(budgets, Mapping):
            raise ValueError("capacity: 'stages' must be a list and 'budgets' an object")
        max_rate = data.get("max_rate")
        return cls(
            budgets=dict(budgets),
            stages=[Stage.from_dict(s, f"capacity.stages[{i}]") for i, s in enumerate(stages)],
            rate=None if data.get("rate") is None else float(data["rate"]),
            first_bad=None if data.get("first_bad") is None else float(data["first_bad"]),
            stopped=str(data.get("stopped", "")),
            max_rate=math.inf if max_rate is None else float(max_rate),
            resolution=float(data.get("resolution", 0.1)),
            label=str(data.get("label", "")),
        )


def _budget_text(budgets: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in budgets.items()) or "no budgets"


class CapacitySearch:
    """The stepping and refining, apart from running stages: ask `next_rate()`, run it, give
    the judged stage to `record()`, until `next_rate()` is None; then `capacity()`."""

    def __init__(
        self,
        budgets: Mapping[str, Any],
        *,
        start: float,
        max_rate: float,
        growth: float = 2.0,
        step: float | None = None,
        resolution: float = 0.1,
        max_stages: int = 12,
        lag_retries: int = 1,
        label: str = "",
    ) -> None:
        self.start = parse_number(start, "start")
        self.max_rate = parse_number(max_rate, "max_rate")
        if self.max_rate < self.start:
            raise PlanError("max_rate", f"must be at least start ({start!r}), got {max_rate!r}")
        self.growth = parse_number(growth, "growth")
        if self.growth <= 1:
            raise PlanError("growth", f"must be above 1 (2 doubles the rate), got {growth!r}")
        self.step = None if step is None else parse_number(step, "step")
        self.resolution = parse_number(resolution, "resolution")
        if not 0 < self.resolution < 1:
            raise PlanError("resolution", f"must be a fraction in 0..1, got {resolution!r}")
        if isinstance(max_stages, bool) or not isinstance(max_stages, int) or max_stages < 1:
            raise PlanError("max_stages", f"must be a whole number above 0, got {max_stages!r}")
        self.max_stages = max_stages
        if isinstance(lag_retries, bool) or not isinstance(lag_retries, int) or lag_retries < 0:
            raise PlanError("lag_retries", f"must be a whole number >= 0, got {lag_retries!r}")
        self.lag_retries = lag_retries
        self._retries_left = lag_retries
        self._again: float | None = None
        self.found = Capacity(
            budgets=dict(budgets), max_rate=self.max_rate, resolution=self.resolution, label=label
        )

    def next_rate(self) -> float | None:
        """The rate of the next stage, or None when the search is over."""
        found = self.found
        if found.stopped:
            return None
        if len(found.stages) >= self.max_stages:
            found.stopped = "stages"
            return None
        if not found.stages:
            return self.start
        if self._again is not None:
            return self._again
        if found.first_bad is None:
            assert found.rate is not None
            grown = found.rate + self.step if self.step else found.rate * self.growth
            return min(self.max_rate, grown)
        assert found.rate is not None
        if found.first_bad - found.rate <= self.resolution * found.rate:
            found.stopped = "budget"
            return None
        middle = (found.rate + found.first_bad) / 2
        rounded = _round_rate(middle)
        return rounded if found.rate < rounded < found.first_bad else middle

    def record(self, stage: Stage) -> None:
        found = self.found
        found.stages.append(stage)
        self._again = None
        if stage.verdict == INVALID:
            # Not a verdict: a stall of the machine is often brief, so the rate is run again
            # (at most `lag_retries` times in a row) before the search gives up on it.
            if self._retries_left > 0:
                self._retries_left -= 1
                self._again = stage.rate
            else:
                found.stopped = "invalid"
            return
        self._retries_left = self.lag_retries
        if stage.verdict == FAIL:
            found.first_bad = stage.rate
            if found.rate is None:
                found.stopped = "start"
        else:
            found.rate = stage.rate if found.rate is None else max(found.rate, stage.rate)
            if found.first_bad is None and stage.rate >= self.max_rate:
                found.stopped = "max_rate"

    def capacity(self) -> Capacity:
        return self.found

    def run(self, measure: Callable[[float], Stage]) -> Capacity:
        """Measure each rate the search asks for until it is over."""
        while (rate := self.next_rate()) is not None:
            self.record(measure(rate))
        return self.found


def _round_rate(rate: float) -> float:
    """Rates as people write them: three significant digits at most."""
    digits = max(0, 2 - math.floor(math.log10(rate))) if rate > 0 else 0
    return round(rate, digits)


def find_capacity(
    endpoint: SeldonEndpoint,
    replay: ReplayFile,
    budgets: Mapping[str, Any] | None = None,
    *,
    start: float | str,
    max_rate: float | str,
    stage: float | str = "10s",
    warmup: float | str | None = None,
    growth: float = 2.0,
    step: float | str | None = None,
    resolution: float = 0.1,
    max_stages: int = 12,
    lag_retries: int = 1,
    allow_lag: bool = False,
    arrival: str = "constant",
    seed: int | None = None,
    settings: EngineSettings | None = None,
    engine: str = "embedded",
    registry: EngineRegistry | None = None,
    context: EngineContext | None = None,
    label: str = "",
    on_stage: Callable[[Stage], None] | None = None,
) -> Capacity:
    """Step the open-loop rate up from `start` until a budget breaks (or `max_rate` passes),
    then halve the gap to the first bad rate until it is within `resolution` (a fraction of
    the last good rate); each stage sends for `warmup` (default a fifth of `stage`, not
    counted) and then for `stage`. `budgets` are a load marker's (default ``{"p99": "50ms"}``);
    without an ``error_rate`` budget, more than 1% errors breaks a stage. A stage the
    generator could not hold is run again up to `lag_retries` times, then ends the search
    without a verdict (`allow_lag=True` judges such stages anyway). The stages run on
    `engine` from `registry` (the built-in engines by default). `on_stage(stage)` is called
    after each one. Ctrl-C stops the search: `RunInterrupted` is raised with the stages so
    far in its `capacity` attribute.
    """
    judged_budgets: dict[str, Any] = dict(budgets) if budgets is not None else {"p99": "50ms"}
    judged_budgets.setdefault("error_rate", DEFAULT_ERROR_RATE)
    budget_checks(judged_budgets)  # a typo fails now, naming the key, not after the first stage
    stage_s = parse_duration_s(stage, "stage")
    if stage_s <= 0:
        raise PlanError("stage", f"must be positive, got {stage!r}")
    warmup_s = stage_s / 5 if warmup is None else parse_duration_s(warmup, "warmup")
    search = CapacitySearch(
        judged_budgets,
        start=start,  # type: ignore[arg-type]  # read by parse_number, strings included
        max_rate=max_rate,  # type: ignore[arg-type]
        growth=growth,
        step=step,  # type: ignore[arg-type]
        resolution=resolution,
        max_stages=max_stages,
        lag_retries=lag_retries,
        label=label,
    )
    base = RunPlan(
        rate=search.start,
        duration=stage_s,
        warmup=warmup_s,
        arrival=arrival,
        seed=seed,
        settings=settings or EngineSettings(),
    )
    runner = (registry or ENGINES).create(engine, context)

    def measure(rate: float) -> Stage:
        plan = replace(base, rate=rate, label=f"{label or 'capacity'} @ {rate:g}/s")
        judged = Stage.judged(
            rate, runner.run(endpoint, replay, plan), judged_budgets, allow_lag=allow_lag
        )
        if on_stage is not None:
            on_stage(judged)
        return judged

    try:
        return search.run(measure)
    except KeyboardInterrupt as stop:
        # in a stage, or between two (before the engine could catch it): the stages so far
        # are kept either way
        interrupted = stop if isinstance(stop, RunInterrupted) else None
        if interrupted is None:
            interrupted = RunInterrupted(base.stopped_before_start(endpoint))
        search.capacity().stopped = "interrupted"
        interrupted.capacity = search.capacity()  # type: ignore[attr-defined]
        raise interrupted from None


@dataclass(frozen=True)
class CapacityVerdict:
    """`judge_capacity`'s answer: passed, or why not; `invalid` when the search cannot say."""

    passed: bool
    invalid: bool
    text: str


def judge_capacity(capacity: Capacity, minimum: float | str) -> CapacityVerdict:
    """Did the search show at least `minimum` req/s within the budgets? The one rule behind
    `assert_capacity_at_least` and the reports."""
    need = parse_number(minimum, "minimum capacity")
    found = capacity.rate
    if found is not None and found >= need:
        return CapacityVerdict(True, False, f"capacity {found:g}/s ≥ {need:g}/s")
    invalid = capacity.invalid_stage
    if invalid is not None:
        return CapacityVerdict(
            False,
            True,
            f"cannot judge capacity ≥ {need:g}/s: every budget held up to "
            f"{found if found is not None else 0:g}/s, then the stage at {invalid.rate:g}/s "
            f"could not be judged ({'; '.join(invalid.reasons)}). A lagged stage is not a "
            f"verdict on the server: give the generator more CPU, split the load over "
            f"processes, or pass allow_lag=True to judge it anyway",
        )
    if capacity.first_bad is None:
        return CapacityVerdict(
            False,
            True,
            f"cannot judge capacity ≥ {need:g}/s: the search stopped at "
            f"{found if found is not None else 0:g}/s ({STOPPED.get(capacity.stopped, '?')}); "
            f"raise max_rate or max_stages to reach {need:g}/s",
        )
    broken = capacity.breaking_stage
    why = f" ({'; '.join(broken.reasons)})" if broken is not None else ""
    if found is None:
        return CapacityVerdict(
            False,
            False,
            f"capacity is under {need:g}/s: even the starting rate {capacity.first_bad:g}/s "
            f"broke a budget{why}",
        )
    return CapacityVerdict(
        False,
        False,
        f"capacity {found:g}/s is under the required {need:g}/s: a budget broke at "
        f"{capacity.first_bad:g}/s{why}",
    )


def assert_capacity_at_least(capacity: Capacity, minimum: float | str) -> float:
    """Fail unless `capacity` reached `minimum` req/s within its budgets; returns the capacity.

    BudgetExceeded when the server broke a budget below it, InvalidMeasurement when the
    search could not tell (a stage the generator could not hold, or max_rate too low).
    """
    __tracebackhide__ = True
    if not isinstance(capacity, Capacity):
        raise TypeError(
            f"expected a Capacity (what find_capacity returns), got {type(capacity).__name__}"
        )
    verdict = judge_capacity(capacity, minimum)
    if verdict.passed:
        assert capacity.rate is not None
        return capacity.rate
    message = f"{verdict.text}\n  stages:\n" + "\n".join(f"    {t}" for t in capacity.table())
    if verdict.invalid:
        raise InvalidMeasurement(message)
    raise BudgetExceeded(message)
