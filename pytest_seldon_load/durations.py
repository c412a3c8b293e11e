"""Parse the time quantities users write: budgets ("50ms", "0.2s", 750) and durations ("20s").

One parser for both, so "1.5s" means the same thing in a budget, a marker and an option.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

_UNITS_IN_MS = {
    "us": 0.001,
    "µs": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*$")


def _parse(value: float | int | str | None, default_unit: str, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what}: expected a number or a string like '50ms', got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), default_unit
    elif isinstance(value, str):
        match = _QUANTITY.match(value)
        if not match:
            raise ValueError(
                f"{what}: cannot read {value!r}; write a number with a unit, "
                f"like '750us', '50ms', '0.2s' or '2m'"
            )
        number, unit = float(match.group(1)), match.group(2) or default_unit
        if unit not in _UNITS_IN_MS:
            raise ValueError(
                f"{what}: unknown unit {match.group(2)!r} in {value!r}; use one of us, ms, s, m, h"
            )
    else:
        raise ValueError(f"{what}: expected a number or a string like '50ms', got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what}: must be a finite, non-negative quantity, got {value!r}")
    return number * _UNITS_IN_MS[unit]


def parse_budget_ms(value: float | int | str, what: str = "budget") -> float:
    """A latency budget in milliseconds; bare numbers are milliseconds."""
    ms = _parse(value, "ms", what)
    if ms == 0:
        raise ValueError(f"{what}: a latency budget of zero can never be met ({value!r})")
    return ms


def parse_duration_s(value: float | int | str, what: str = "duration") -> float:
    """A duration in seconds; bare numbers are seconds (as in k6 and Vegeta)."""
    return _parse(value, "s", what) / 1000.0


def duration_option(option: str, *, allow_zero: bool = False) -> Callable[[str], float]:
    """An argparse `type` for a duration option: seconds, or a usage error naming `option`."""

    def parse(text: str) -> float:
        try:
            value = parse_duration_s(text, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value < 0 or (value == 0 and not allow_zero):
            rule = "must not be negative" if allow_zero else "must be positive"
            raise argparse.ArgumentTypeError(f"{option} {rule}, got {text!r}")
        return value

    parse.__name__ = "duration"
    return parse


def format_ms(ms: float) -> str:
    """A latency in the unit a human reads fastest."""
    if ms != ms:  # NaN: no data
        return "n/a"
    if ms < 1:
        return f"{ms * 1000:.0f}us"
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.1f}ms"
    return f"{ms / 1000:.2f}s"
