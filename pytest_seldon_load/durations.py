"""Parse the quantities users write: budgets ("50ms", "0.2s", 750), durations ("20s") and
plain numbers (rates, counts, seeds).

One parser for each kind, so "1.5s" means the same thing in a budget, a marker and an option,
and a rate of "abc", NaN or 0 is refused with the same words in a marker, a fixture argument
and a command-line option, naming what was wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from collections.abc import Callable

_UNITS_IN_MS = {
    "ns": 0.000_001,
    "us": 0.001,
    "µs": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([a-zµ]*)\s*$")
# Go's and k6's compound form: every part has a unit ("1h2m3.5s", "1m30s").
_COMPOUND = re.compile(rf"^\s*(?:{_NUMBER}[a-zµ]+)+\s*$")
_PART = re.compile(rf"({_NUMBER})([a-zµ]+)")
_UNIT_NAMES = "ns, us, ms, s, m, h"


def _parse(value: float | int | str | None, default_unit: str, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{_prefix(what)}expected a number or a string like '50ms', got {value!r}")
    if isinstance(value, (int, float)):
        total = float(value) * _UNITS_IN_MS[default_unit]
    elif isinstance(value, str):
        total = _parse_text(value, default_unit, what)
    else:
        raise ValueError(f"{_prefix(what)}expected a number or a string like '50ms', got {value!r}")
    if not math.isfinite(total) or total < 0:
        raise ValueError(f"{_prefix(what)}must be a finite, non-negative quantity, got {value!r}")
    return total


def _parse_text(value: str, default_unit: str, what: str) -> float:
    """Milliseconds in `value`: one number with an optional unit, or unit-tagged parts."""
    match = _QUANTITY.match(value)
    if match:
        parts = [(match.group(1), match.group(2) or default_unit)]
    elif _COMPOUND.match(value):
        parts = _PART.findall(value.strip())
    else:
        raise ValueError(
            f"{_prefix(what)}cannot read {value!r}; write a number with a unit, "
            f"like '750us', '50ms', '0.2s', '2m' or '1m30s'"
        )
    total = 0.0
    for number, unit in parts:
        if unit not in _UNITS_IN_MS:
            raise ValueError(
                f"{_prefix(what)}unknown unit {unit!r} in {value!r}; use one of {_UNIT_NAMES}"
            )
        total += float(number) * _UNITS_IN_MS[unit]
    return total


def parse_budget_ms(value: float | int | str, what: str = "budget") -> float:
    """A latency budget in milliseconds; bare numbers are milliseconds."""
    ms = _parse(value, "ms", what)
    if ms == 0:
        raise ValueError(f"{_prefix(what)}a latency budget of zero can never be met ({value!r})")
    return ms


def parse_duration_s(value: float | int | str, what: str = "duration") -> float:
    """A duration in seconds; bare numbers are seconds (as in k6 and Vegeta)."""
    return _parse(value, "s", what) / 1000.0


def duration_option(*, allow_zero: bool = False) -> Callable[[str], float]:
    """An argparse `type` for a duration option: seconds ("90", "1m30s", "500ms"), or a usage
    error (argparse, or the pytest option helper, names the option)."""

    def parse(text: str) -> float:
        try:
            value = parse_duration_s(text, "")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if value == 0 and not allow_zero:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value

    parse.__name__ = "duration"
    return parse


def parse_number(value: object, what: str, *, allow_zero: bool = False) -> float:
    """A finite number, positive (or >= 0 with `allow_zero`); numeric strings are read too.
    Errors start with `what` (an argument's name) unless it is empty."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    least_ok = number is not None and (number > 0 or (number == 0 and allow_zero))
    if number is None or not math.isfinite(number) or not least_ok:
        rule = "a number >= 0" if allow_zero else "a positive number"
        raise ValueError(f"{_prefix(what)}must be {rule}, got {value!r}")
    return number


def parse_count(value: object, what: str, *, least: int = 1) -> int:
    """A whole number >= `least` (64, 64.0 or "64"; not 6.4, True or "many")."""
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            count = int(value)
    if count is None:
        raise ValueError(f"{_prefix(what)}must be a whole number, got {value!r}")
    if count < least:
        raise ValueError(f"{_prefix(what)}must be at least {least}, got {count}")
    return count


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def number_option(
    *, allow_zero: bool = False, whole: bool = False, at_most: float | None = None
) -> Callable[[str], float]:
    """An argparse `type` for a numeric option: positive (or >= 0 with `allow_zero`), a whole
    number with `whole`, at most `at_most`; anything else is a usage error (argparse names the
    option)."""

    def parse(text: str) -> float:
        try:
            if whole:
                value: float = parse_count(text, "", least=0 if allow_zero else 1)
            else:
                value = parse_number(text, "", allow_zero=allow_zero)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be at most {at_most:g}, got {text!r}")
        return value

    parse.__name__ = "whole number" if whole else "number"
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
