"""Pass/fail thresholds for ``seldon-load run`` (and capacity budgets), written as k6 writes them.

``p99<50ms``, ``p(99.9)<200ms``, ``max<1s``, ``error_rate<0.01``, ``throughput>100``, and a
percentile held in every window of the timeline, ``p99@10s<80ms``. Each
is judged by the same budget function a pytest load test uses (`assertions.budget_checks`),
so a threshold and a marker budget with the same numbers give the same verdict.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..assertions import InvalidMeasurement, budget_checks
from ..result import LoadResult

_THRESHOLD = re.compile(
    r"^\s*((?:[a-z_]+(?:\([0-9.]+\))?|p[0-9.]+)(?:@[0-9a-z.]+)?)\s*(<=|>=|<|>)\s*(\S.*?)\s*$"
)


@dataclass(frozen=True)
class Threshold:
    text: str
    check: Callable[..., object]
    budget: tuple[str, str]
    """As a marker's budgets write it: (``p99``, ``50ms``)."""


@dataclass(frozen=True)
class Verdict:
    threshold: Threshold
    passed: bool
    invalid: bool
    detail: str


def threshold(text: str) -> Threshold:
    """An argparse `type`: ``METRIC<VALUE`` (``>`` for throughput)."""
    match = _THRESHOLD.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"expected METRIC<VALUE such as p99<50ms, p(99.9)<200ms, error_rate<0.01 or "
            f"throughput>100, got {text!r}"
        )
    metric, operator, value = match.groups()
    lower_bound = metric == "throughput"
    if lower_bound != operator.startswith(">"):
        wanted = ">" if lower_bound else "<"
        raise argparse.ArgumentTypeError(
            f"{text!r}: {metric} is judged as a {'floor' if lower_bound else 'ceiling'}; "
            f"write {metric}{wanted}{value}"
        )
    try:
        [check] = budget_checks({metric: value})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return Threshold(text.strip(), check, (metric, value))


def judge(result: LoadResult, thresholds: list[Threshold], *, allow_lag: bool) -> list[Verdict]:
    """Every threshold's verdict; a measurement the generator's lag spoiled is not a pass."""
    verdicts = []
    for each in thresholds:
        try:
            each.check(result, allow_lag=allow_lag)
        except InvalidMeasurement as exc:
            verdicts.append(Verdict(each, False, True, _first_line(exc)))
        except AssertionError as exc:
            verdicts.append(Verdict(each, False, False, _first_line(exc)))
        else:
            verdicts.append(Verdict(each, True, False, ""))
    return verdicts


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
