"""A verdict on one run, as data: what was judged, against what limit, what was measured.

Budget assertions and baseline comparisons record one `Judgement` each on the result; every
report (terminal, JSON, JUnit, HTML, GitHub step summary) reads its fields, never its label.
A failed judgement is either the server's (`invalid` empty) or one the measurement cannot
blame on the server (`invalid` says why: the generator lagged, the run measured nothing).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .durations import format_ms, parse_budget_ms

KINDS = ("percentile", "error_rate", "throughput", "regression")
"""percentile: latency at `quantile` (ms) below `limit` (ms); error_rate: the share of failed
requests at most `limit` (a fraction); throughput: successful requests per second at least
`limit`; regression: no significant worsening against a baseline beyond a tolerance."""

LEGACY_KIND = "budget"
"""A judgement read from a file written before judgements had kinds: only its label is known."""

LAG = "generator lag"
NO_REQUESTS = "no requests"
NO_LATENCIES = "no latencies"
NOT_COMPARABLE = "not comparable"
UNDERPOWERED = "too little data"


@dataclass(frozen=True)
class Judgement:
    """One judgement of a run. `measured` and `limit` are in the unit of the kind (ms,
    fraction, requests/s; for a regression, the relative change, or the difference for an
    error rate, against the tolerance's amount)."""

    kind: str
    label: str
    passed: bool
    measured: float | None = None
    limit: float | None = None
    quantile: float | None = None
    invalid: str = ""
    """Why a failed judgement is not the server's fault (generator lag, no requests...);
    empty for a pass, and for a failure that is the server's."""
    comparison: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    """A regression judgement's evidence: `Comparison.to_dict()`."""
    window_s: int | None = None
    """A percentile budget held in every window of this many seconds (`measured` is the worst
    window's); None for the whole run."""

    @property
    def server_fault(self) -> bool:
        return not self.passed and not self.invalid

    @property
    def verdict(self) -> str:
        """pass, FAIL (the server's) or invalid (not the server's)."""
        if self.passed:
            return "pass"
        return "invalid" if self.invalid else "FAIL"

    def measured_text(self) -> str:
        """The measured value in the unit of its limit."""
        if self.invalid and self.measured is None:
            return f"invalid: {self.invalid}"
        value = self.measured
        if value is None or not math.isfinite(value):
            return "n/a"
        if self.kind == "percentile":
            return format_ms(value)
        if self.kind == "error_rate":
            return f"{value:.3%}"
        if self.kind == "throughput":
            return f"{value:.1f}/s"
        return f"{value:g}"

    def text(self) -> str:
        """One line for a report: the comparison's headline, or label and measured value."""
        if self.comparison and self.comparison.get("text"):
            text = str(self.comparison["text"])
        else:
            text = f"{self.label}: measured {self.measured_text()}"
        if self.invalid and not self.passed and "invalid" not in text:
            text += f" (invalid: {self.invalid})"
        return text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "label": self.label,
            "passed": self.passed,
            "measured": _json_number(self.measured),
            "limit": _json_number(self.limit),
            "quantile": self.quantile,
            "invalid": self.invalid,
        }
        if self.comparison is not None:
            data["comparison"] = dict(self.comparison)
        if self.window_s is not None:
            data["window_s"] = self.window_s
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Judgement:
        """A judgement from its `to_dict` form (or an older file's); ValueError naming the
        field otherwise."""
        if isinstance(data, Judgement):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"a judgement must be an object, got {type(data).__name__}")
        if "kind" not in data:
            return _legacy(data)
        kind = data["kind"]
        if kind not in (*KINDS, LEGACY_KIND):
            raise ValueError(f"judgement 'kind': unknown kind {kind!r}")
        comparison = data.get("comparison")
        if comparison is not None and not isinstance(comparison, Mapping):
            raise ValueError("judgement 'comparison' must be an object")
        return cls(
            kind=kind,
            label=_text(data, "label"),
            passed=_flag(data, "passed"),
            measured=_number(data, "measured"),
            limit=_number(data, "limit"),
            quantile=_number(data, "quantile"),
            invalid=_text(data, "invalid"),
            comparison=dict(comparison) if comparison is not None else None,
            window_s=_window(data),
        )


def _window(data: Mapping[str, Any]) -> int | None:
    value = data.get("window_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"judgement 'window_s' must be a whole number of seconds, got {value!r}")
    return value


_LEGACY_LABELS = (
    (re.compile(r"^p([0-9.]+) < (.+)$"), "percentile"),
    (re.compile(r"^error rate ≤ ([0-9.]+)%$"), "error_rate"),
    (re.compile(r"^throughput ≥ ([0-9.]+)/s$"), "throughput"),
)


def _legacy_budget(label: str) -> tuple[str, float | None, float | None]:
    """Kind, limit and quantile of an earlier version's budget label, as far as it says."""
    for pattern, kind in _LEGACY_LABELS:
        match = pattern.match(label)
        if not match:
            continue
        try:
            if kind == "percentile":
                return kind, parse_budget_ms(match.group(2)), float(match.group(1))
            if kind == "error_rate":
                return kind, float(match.group(1)) / 100.0, None
            return kind, float(match.group(1)), None
        except ValueError:
            break
    return LEGACY_KIND, None, None


def _legacy(data: Mapping[str, Any]) -> Judgement:
    """The dict form of earlier versions: {"budget", "passed", "measured"[, "comparison"]},
    with "invalid: ..." in `measured` for a failure that was not the server's."""
    measured = data.get("measured")
    invalid = ""
    if isinstance(measured, str):
        invalid = measured.removeprefix("invalid").lstrip(": ") or "invalid"
        measured = None
    comparison = data.get("comparison")
    if comparison is not None and not isinstance(comparison, Mapping):
        raise ValueError("judgement 'comparison' must be an object")
    passed = _flag(data, "passed")
    label = _text(data, "budget")
    kind, limit, quantile = ("regression", None, None) if comparison else _legacy_budget(label)
    return Judgement(
        kind=kind,
        label=label,
        passed=passed,
        measured=_number({"measured": measured}, "measured"),
        limit=limit,
        quantile=quantile,
        invalid="" if passed else invalid,
        comparison=dict(comparison) if comparison is not None else None,
    )


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"judgement {name!r} must be text, got {type(value).__name__}")
    return value


def _flag(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise ValueError(f"judgement {name!r} must be true or false, got {value!r}")
    return value


def _number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"judgement {name!r} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"judgement {name!r} is out of range") from None


def _json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
