"""The per-second timeline a report draws: whole seconds of the measured period only.

A window counts the answers that came back in its second. Answers still in flight when the
measured period ends come back after it, into a second the schedule sent nothing in (or only
part of a second, when the duration is not whole): drawn as one more point, it would show a
throughput drop the server never had. So the charts draw the whole seconds, and what came back
after the last of them is summed into one `tail`, shown apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..result import Window

_EPSILON = 1e-6


@dataclass(frozen=True)
class Tail:
    """What came back after the last whole second: counts and latency, one figure each."""

    start: float
    """The first second after the whole ones (where the tail is drawn)."""
    sent: int
    ok: int
    errors: int
    p50: float
    p99: float

    @property
    def answers(self) -> int:
        return self.ok + self.errors


@dataclass(frozen=True)
class Timeline:
    seconds: list[dict[str, Any]]
    """Statistics of each whole second, as `Window.statistics` gives them."""
    tail: Tail | None


def whole_seconds(duration: float) -> int:
    """Whole seconds in a measured period of `duration` seconds."""
    if not math.isfinite(duration) or duration <= 0:
        return 0
    return math.floor(duration + _EPSILON)


def split_timeline(run: Mapping[str, Any]) -> Timeline:
    """The run's timeline cut at its last whole second; a run shorter than a second is kept
    whole (it has no whole second to draw)."""
    timeline = [w for w in run.get("timeline", []) if isinstance(w, Mapping)]
    whole = whole_seconds(float(run.get("duration", 0) or 0))
    if whole == 0:
        return Timeline([dict(w) for w in timeline], None)
    kept = [dict(w) for w in timeline if int(w.get("second", 0)) < whole]
    after = [w for w in timeline if int(w.get("second", 0)) >= whole]
    return Timeline(kept, _tail(after, whole) if after else None)


def _tail(windows: list[Mapping[str, Any]], start: int) -> Tail:
    sent = sum(int(w.get("sent", 0)) for w in windows)
    ok = sum(int(w.get("ok", 0)) for w in windows)
    errors = sum(int(w.get("errors", 0)) for w in windows)
    if all(w.get("latency_hdr") for w in windows):
        merged = Window(start)
        for index, window in enumerate(windows):
            merged.add(Window.from_dict(dict(window), f"timeline[{start}+{index}]"))
        p50, p99 = merged.p50, merged.p99
    else:  # histograms stripped: the worst second's figure, an upper bound
        p50, p99 = _worst(windows, "p50"), _worst(windows, "p99")
    return Tail(float(start), sent, ok, errors, p50, p99)


def _worst(windows: list[Mapping[str, Any]], name: str) -> float:
    values = [float(w[name]) for w in windows if w.get(name) is not None]
    return max((v for v in values if math.isfinite(v)), default=math.nan)
