"""Budget assertions: a blown latency, error or throughput budget fails the test, readably.

Every failure says what was measured against what budget, over how many requests at what
rate, with a small percentile table, so a red CI job explains itself. A run whose generator
fell behind its schedule is not judged at all: its latencies include the generator's own
delay, so failing it as "the server is slow" would be a lie. Pass ``allow_lag=True`` (or run
with ``--load-allow-lag``) to judge such a run anyway.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from typing import NoReturn, Protocol

from .durations import format_ms, parse_budget_ms, parse_duration_s
from .judgement import LAG, NO_LATENCIES, NO_REQUESTS, Judgement
from .result import LoadResult

TABLE_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


class BudgetExceeded(AssertionError):
    """The run measured worse than its budget."""


class InvalidMeasurement(AssertionError):
    """The run cannot be judged: the load generator did not hold its schedule, or no data."""


def _q_label(q: float) -> str:
    return f"p{q:g}"


def describe_run(result: LoadResult) -> str:
    """The context lines every failure message carries."""
    lines = [
        f"  run: {result.requests} requests sent of {result.scheduled} scheduled"
        + (f" ({result.unsent} never sent)" if result.unsent else "")
        + f" over {result.duration:g}s to {result.target or 'the target'};"
        f" target rate {result.target_rate:g}/s, achieved {result.achieved_rate:.1f}/s,"
        f" throughput {result.throughput:.1f} ok/s",
    ]
    if result.errors:
        kinds = ", ".join(
            f"{k} ×{n}" for k, n in sorted(result.error_kinds.items(), key=lambda kv: -kv[1])[:5]
        )
        lines.append(f"  errors: {result.error_rate:.2%} ({result.errors}: {kinds})")
    else:
        lines.append("  errors: none")
    health = result.health
    verdict = "kept up" if result.kept_up else "FELL BEHIND"
    lines.append(f"  generator: {verdict} ({health.describe()})")
    if result.interrupted:
        lines.append("  the run was interrupted: these are the numbers measured until then")
    lines.append(percentile_table(result))
    return "\n".join(lines)


def percentile_table(result: LoadResult) -> str:
    """Percentiles from the intended send time next to service time (actual send)."""
    latency_name = "latency" if result.corrected else "latency (uncorrected)"
    rows = [f"  {'':8}{latency_name:>12}{'service':>12}"]
    for q in TABLE_PERCENTILES:
        rows.append(
            f"  {_q_label(q):8}{format_ms(result.percentile(q)):>12}"
            f"{format_ms(result.service_percentile(q)):>12}"
        )
    service_max = (
        result.service.get_max_value() / 1000.0 if result.service.get_total_count() else math.nan
    )
    rows.append(f"  {'max':8}{format_ms(result.max):>12}{format_ms(service_max):>12}")
    return "\n".join(rows)


@dataclass(frozen=True)
class _Budget:
    """What a budget assertion judges: its kind, label, limit, quantile and window."""

    kind: str
    label: str
    limit: float
    quantile: float | None = None
    window_s: int | None = None

    def record(
        self, result: LoadResult, passed: bool, measured: float | None, invalid: str = ""
    ) -> None:
        # Judgement's fields in order: kind, label, passed, measured, limit, quantile, invalid
        judged = (self.kind, self.label, passed, measured, self.limit, self.quantile, invalid)
        result.judgements.append(Judgement(*judged, window_s=self.window_s))


GENERATOR_ERROR_KINDS = frozenset({"timeout", "unsent"})
"""Error kinds a lagging or saturated generator can cause itself (answers read too late,
requests never sent); every other kind is an answer, or a refusal, from the server."""


def _require_measured(result: LoadResult, budget: _Budget) -> None:
    __tracebackhide__ = True
    if not isinstance(result, LoadResult):
        raise TypeError(
            f"expected a LoadResult (what load_run returns), got {type(result).__name__}"
        )
    if result.requests == 0 and result.scheduled == 0:
        budget.record(result, False, None, NO_REQUESTS)
        raise InvalidMeasurement(
            f"cannot judge {budget.label}: the run measured no requests\n{describe_run(result)}"
        )


def _missed(
    result: LoadResult,
    budget: _Budget,
    measured: float,
    allow_lag: bool,
    message: str,
    *,
    beyond_lag: bool = False,
) -> NoReturn:
    """A missed budget is the server's, unless the generator fell behind its schedule.

    Generator lag only ever adds to latency (it is measured from the intended send time) and
    takes from throughput, so a budget met despite it is met; a budget missed while the
    generator lagged cannot be blamed on the server, and is not judged, unless it is missed
    `beyond_lag`: by more than the generator could have added.
    """
    __tracebackhide__ = True
    lagging = not result.kept_up and not (allow_lag or result.lag_accepted)
    if lagging and not beyond_lag:
        budget.record(result, False, measured, LAG)
        raise InvalidMeasurement(
            f"cannot judge {budget.label}: the measurement is invalid, the load generator fell "
            f"behind its own schedule ({result.health.describe()}). "
            f"The latencies include the generator's delay, so they do not show the server's "
            f"speed. {_lag_advice(result)}, or pass allow_lag=True / "
            f"--load-allow-lag to judge it anyway.\n{describe_run(result)}"
        )
    budget.record(result, False, measured)
    raise BudgetExceeded(f"{message}\n{describe_run(result)}")


def _lag_advice(result: LoadResult) -> str:
    if result.health.lag_from_steal:
        return (
            "The host took CPU time from this machine while it sent (CPU steal): run on a "
            "machine with dedicated cores, lower the rate"
        )
    return "Lower the rate, give the generator more CPU"


def assert_percentile_below(
    result: LoadResult,
    q: float,
    budget: float | str,
    *,
    allow_lag: bool = False,
    every: float | str | None = None,
) -> float:
    """Fail unless the q-th percentile latency (from intended send time) is within budget;
    with `every` ("10s"), within it in every window of that many seconds of the timeline.

    Returns the measured value in ms (with `every`, the worst window's).
    """
    __tracebackhide__ = True
    budget_ms = parse_budget_ms(budget, f"budget for {_q_label(q)}")
    window_s = None if every is None else window_seconds(every, f"every ({_q_label(q)})")
    label = f"{_q_label(q)} < {format_ms(budget_ms)}"
    if window_s is not None:
        label += f" in every {window_s}s"
    judged = _Budget("percentile", label, budget_ms, q, window_s)
    _require_measured(result, judged)
    measured, service, where = _percentile_judged(result, q, judged)
    if math.isnan(measured):
        judged.record(result, False, None, NO_LATENCIES)
        raise InvalidMeasurement(
            f"cannot judge {judged.label}: no latencies were recorded\n{describe_run(result)}"
        )
    if measured > budget_ms:
        # A late send adds at most the worst send lag to a latency, and nothing to its
        # service time (timed from the actual send): a budget broken by the service time
        # alone, or by more than the worst lag, is the server's. Only a saturated loop (it
        # reads answers late, which inflates both) escapes it.
        health = result.health
        by_service = service > budget_ms
        by_more_than_lag = measured - health.max_lag_ms > budget_ms
        beyond_lag = not health.saturated and (by_service or by_more_than_lag)
        how = "measured from the intended send time"
        if beyond_lag and not result.kept_up:
            if by_service:
                how += (
                    f"; the service time alone, {format_ms(service)}, is over it, and the "
                    f"generator's lag cannot inflate that"
                )
            else:
                how += (
                    f"; over it even without the generator's worst lag of "
                    f"{format_ms(health.max_lag_ms)}"
                )
        _missed(
            result,
            judged,
            round(measured, 3),
            allow_lag,
            f"{_q_label(q)} latency {format_ms(measured)}{where} is over its budget of "
            f"{format_ms(budget_ms)} ({how})",
            beyond_lag=beyond_lag,
        )
    judged.record(result, True, round(measured, 3))
    return measured


def window_seconds(every: float | str, what: str) -> int:
    """A budget window ("10s", 10): whole seconds, at least 1 (the timeline's unit)."""
    seconds = parse_duration_s(every, what)
    if seconds < 1 or abs(seconds - round(seconds)) > 1e-9:
        raise ValueError(f"{what}: a window is a whole number of seconds, got {every!r}")
    return round(seconds)


def _percentile_judged(result: LoadResult, q: float, judged: _Budget) -> tuple[float, float, str]:
    """The latency and service percentiles the budget judges, and where: the whole run's, or
    the worst window's (``" in seconds 20-29"``)."""
    __tracebackhide__ = True
    if judged.window_s is None:
        return result.percentile(q), result.service_percentile(q), ""
    if not result.windows:
        judged.record(result, False, None, NO_LATENCIES)
        raise InvalidMeasurement(
            f"cannot judge {judged.label}: the run has no per-second timeline (an Iago run "
            f"keeps only its summary)\n{describe_run(result)}"
        )
    from .timeline_windows import window_percentiles

    windows = window_percentiles(result, q, judged.window_s)
    if not windows:
        return math.nan, math.nan, ""
    worst = max(windows, key=lambda w: w.latency)
    return worst.latency, worst.service, f" in {worst.seconds}"


class PercentileAssertion(Protocol):
    """``assert_p99_below(result, budget, *, allow_lag=False, every=None) -> float`` and kin."""

    def __call__(
        self,
        result: LoadResult,
        budget: float | str,
        *,
        allow_lag: bool = ...,
        every: float | str | None = ...,
    ) -> float: ...


def _percentile_assertion(q: float, name: str) -> PercentileAssertion:
    """`assert_percentile_below` with q fixed, under the name users write."""

    def check(
        result: LoadResult,
        budget: float | str,
        *,
        allow_lag: bool = False,
        every: float | str | None = None,
    ) -> float:
        __tracebackhide__ = True
        return assert_percentile_below(result, q, budget, allow_lag=allow_lag, every=every)

    check.__name__ = check.__qualname__ = name
    check.__doc__ = (
        f"Fail unless the {_q_label(q)} latency (from intended send time) is within budget "
        f"(with `every`, in every window of that many seconds); returns it in ms."
    )
    return check


assert_p50_below = _percentile_assertion(50, "assert_p50_below")
assert_p95_below = _percentile_assertion(95, "assert_p95_below")
assert_p99_below = _percentile_assertion(99, "assert_p99_below")
assert_p999_below = _percentile_assertion(99.9, "assert_p999_below")


_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*$")


def parse_error_rate(value: float | str, what: str = "error rate budget") -> float:
    """0.001, "0.1%" → 0.001. A fraction in 0..1."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a fraction like 0.001 or '0.1%', got {value!r}")
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE.match(value)):
        rate = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    else:
        raise ValueError(f"{what}: expected a fraction like 0.001 or '0.1%', got {value!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{what}: must be between 0 and 1 (or 0% and 100%), got {value!r}")
    return rate


def assert_error_rate_below(
    result: LoadResult, max_rate: float | str, *, allow_lag: bool = False
) -> float:
    """Fail if the share of failed requests exceeds `max_rate` (0.001 or "0.1%").

    A budget of 0 means no error at all is allowed.
    """
    __tracebackhide__ = True
    limit = parse_error_rate(max_rate)
    judged = _Budget("error_rate", f"error rate ≤ {limit:.3%}", limit)
    _require_measured(result, judged)
    measured = result.error_rate
    if measured > limit:
        # A late generator can cause timeouts and unsent requests, never an error answer:
        # missed on those alone, the budget is the server's, lag or not.
        total = max(result.scheduled, result.requests)
        answered = result.errors - sum(
            n for kind, n in result.error_kinds.items() if kind in GENERATOR_ERROR_KINDS
        )
        beyond_lag = total > 0 and answered / total > limit
        _missed(
            result,
            judged,
            measured,
            allow_lag,
            f"error rate {measured:.3%} ({result.errors} of {total} requests) is over its "
            f"budget of {limit:.3%}",
            beyond_lag=beyond_lag,
        )
    judged.record(result, True, measured)
    return measured


def parse_throughput(value: float | str, what: str = "throughput budget") -> float:
    """200, "200/s", "200rps" → 200.0 successful requests per second."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rate = float(value)
    elif isinstance(value, str) and (
        match := re.match(r"^\s*([0-9]*\.?[0-9]+)\s*(?:/s|rps|req/s)?\s*$", value)
    ):
        rate = float(match.group(1))
    else:
        raise ValueError(f"{what}: expected requests per second like 200 or '200/s', got {value!r}")
    if not (rate >= 0 and math.isfinite(rate)):
        raise ValueError(f"{what}: must be a non-negative number, got {value!r}")
    return rate


def assert_throughput_at_least(
    result: LoadResult, min_rate: float | str, *, allow_lag: bool = False
) -> float:
    """Fail unless successful responses per second reached `min_rate`."""
    __tracebackhide__ = True
    limit = parse_throughput(min_rate)
    judged = _Budget("throughput", f"throughput ≥ {limit:g}/s", limit)
    _require_measured(result, judged)
    measured = result.throughput
    if measured < limit:
        _missed(
            result,
            judged,
            round(measured, 3),
            allow_lag,
            f"throughput {measured:.1f} ok/s is under its budget of {limit:g}/s",
        )
    judged.record(result, True, round(measured, 3))
    return measured


_PERCENTILE_KEY = re.compile(r"^p(?:\(([0-9.]+)\)|([0-9.]+))$")


def budget_checks(budgets: dict) -> list:
    """Marker budgets ({"p99": "50ms", "error_rate": 0.001, ...}) as checks to run later.

    Validated eagerly, so a typo fails at set-up naming the key, not after a long run.
    """
    if not isinstance(budgets, dict):
        raise ValueError(f"budgets must be a dict like {{'p99': '50ms'}}, got {budgets!r}")
    checks = []
    for key, value in budgets.items():
        name = str(key).strip()
        if name == "error_rate":
            parse_error_rate(value, f"budgets['{name}']")
            checks.append(lambda r, v=value, **kw: assert_error_rate_below(r, v, **kw))
        elif name == "throughput":
            parse_throughput(value, f"budgets['{name}']")
            checks.append(lambda r, v=value, **kw: assert_throughput_at_least(r, v, **kw))
        else:
            quantile, _, window = name.partition("@")
            q = _budget_percentile(quantile, name)
            parse_budget_ms(value, f"budgets['{name}']")
            every = window_seconds(window, f"budgets['{name}'] window") if window else None
            checks.append(
                lambda r, q=q, v=value, e=every, **kw: assert_percentile_below(
                    r, q, v, every=e, **kw
                )
            )
    return checks


def _budget_percentile(name: str, key: str = "") -> float:
    if name == "max":
        return 100.0
    match = _PERCENTILE_KEY.match(name)
    if match:
        digits = match.group(1) or match.group(2)
        # "p999" is p99.9 and "p9999" p99.99, as in Iago/Ostrich stats; "p99.9" also works.
        if "." not in digits and len(digits) > 2 and digits.startswith("99"):
            digits = digits[:2] + "." + digits[2:]
        try:
            q = float(digits)
        except ValueError:  # p77.7.7: the key's pattern allows more than one point
            q = math.nan
        if 0 < q <= 100:
            return q
    raise ValueError(
        f"budgets: unknown budget {key or name!r}; use p50, p90, p95, p99, p999 (or p(99.9), "
        f"p99.9), max, error_rate or throughput; a percentile in every window: p99@10s"
    )


def judge_budgets(result: LoadResult, budgets: dict, *, allow_lag: bool = False) -> list[Judgement]:
    """Judge `result` against marker-style budgets without raising: the judgements the budget
    assertions record (each also lands on `result.judgements`), in the order of `budgets`.

    The same checks as the marker and ``seldon-load run --threshold``, so a capacity stage, a
    test and the command line agree on what meets a budget.
    """
    judged: list[Judgement] = []
    for check in budget_checks(budgets):
        before = len(result.judgements)
        with contextlib.suppress(AssertionError):  # the verdict is in the judgement
            check(result, allow_lag=allow_lag)
        judged.extend(Judgement.from_dict(j) for j in result.judgements[before:])
    return judged
