"""When each request should go out: an arrival schedule, seeded and reproducible.

A schedule is a rate profile (how many requests per second at each moment) times an arrival
kind (evenly spaced, or Poisson). Both meet in one place: arrivals are drawn on the
"expected count" axis Λ(t) = ∫ rate, evenly (1, 2, 3, ...) or with Exp(1) gaps, then mapped
back to time through Λ⁻¹. That is the time-rescaling theorem: it makes a ramping Poisson
process (Iago's SlowStartPoissonProcess) exactly, with no thinning and no per-step loops.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

ARRIVALS = ("constant", "poisson", "slow-start-poisson", "ramp")
_ALIASES = {
    "uniform": "constant",
    "slow-start": "slow-start-poisson",
    "slow_start": "slow-start-poisson",
    "slow_start_poisson": "slow-start-poisson",
    "linear": "ramp",
}
IAGO_SLOW_START_RAMP_S = 240.0


def arrival_kind(arrival: object) -> str:
    """The arrival process's own name (aliases accepted); ValueError naming it otherwise."""
    kind = _ALIASES.get(arrival, arrival) if isinstance(arrival, str) else arrival
    if kind not in ARRIVALS:
        raise ValueError(
            f"arrival: unknown arrival process {arrival!r}; choose one of {', '.join(ARRIVALS)}"
        )
    return str(kind)


@dataclass(frozen=True)
class RateProfile:
    """A linear ramp from `start_rate` to `rate` over `ramp` seconds, then `rate` held."""

    rate: float
    ramp: float = 0.0
    start_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of requests/s, got {self.rate!r}")
        if self.ramp < 0 or self.start_rate < 0:
            raise ValueError("ramp and its starting rate must not be negative")

    def rate_at(self, t: float) -> float:
        if self.ramp > 0 and t < self.ramp:
            return self.start_rate + (self.rate - self.start_rate) * t / self.ramp
        return self.rate

    def expected(self, t: float) -> float:
        """Λ(t): how many requests the profile asks for in [0, t)."""
        if self.ramp <= 0:
            return self.rate * t
        head = min(t, self.ramp)
        slope = (self.rate - self.start_rate) / self.ramp
        count = self.start_rate * head + slope * head * head / 2.0
        return count + self.rate * max(0.0, t - self.ramp)

    def time_of(self, counts: np.ndarray) -> np.ndarray:
        """Λ⁻¹: the time at which the profile has asked for `counts` requests."""
        if self.ramp <= 0:
            return counts / self.rate
        in_ramp_total = self.expected(self.ramp)
        slope = (self.rate - self.start_rate) / self.ramp
        a = self.start_rate
        # Root of slope/2·t² + a·t − x = 0 in the form that is stable for slope → 0.
        denominator = a + np.sqrt(np.maximum(a * a + 2.0 * slope * counts, 0.0))
        ramp_times = np.divide(
            2.0 * counts, denominator, out=np.zeros_like(counts), where=denominator > 0
        )
        hold_times = self.ramp + (counts - in_ramp_total) / self.rate
        return np.where(counts <= in_ramp_total, ramp_times, hold_times)


class Pacer:
    """Intended send times (seconds from the start) for one run, in ascending chunks."""

    def __init__(
        self,
        arrival: str,
        rate: float,
        duration: float,
        *,
        ramp: float | None = None,
        ramp_from: float | None = None,
        seed: int | None = None,
    ) -> None:
        kind = arrival_kind(arrival)
        if not (duration > 0 and math.isfinite(duration)):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        if kind == "slow-start-poisson":
            profile = RateProfile(
                rate,
                IAGO_SLOW_START_RAMP_S if ramp is None else ramp,
                1.0 if ramp_from is None else ramp_from,
            )
        elif kind == "ramp":
            profile = RateProfile(
                rate, duration if ramp is None else ramp, 0.0 if ramp_from is None else ramp_from
            )
        else:
            profile = RateProfile(rate, ramp or 0.0, 0.0 if ramp_from is None else ramp_from)
        self.arrival = kind
        self.profile = profile
        self.duration = duration
        self.seed = secrets.randbits(32) if seed is None else seed
        self.poisson = kind in ("poisson", "slow-start-poisson")

    @property
    def expected_count(self) -> float:
        return self.profile.expected(self.duration)

    def offsets(self, chunk: int = 8192) -> Iterator[np.ndarray]:
        """Every intended send time in [0, duration), in chunks of at most `chunk`.

        The same seed gives the same times, bit for bit, whatever the chunk size.
        """
        for block in self._blocks():
            for begin in range(0, block.size, chunk):
                yield block[begin : begin + chunk]

    def _blocks(self, block: int = 8192) -> Iterator[np.ndarray]:
        chunk = block
        rng = np.random.default_rng(self.seed)
        total = self.profile.expected(self.duration)
        done = 0.0  # position on the Λ axis reached so far
        first = True
        while True:
            if self.poisson:
                steps = rng.standard_exponential(chunk)
                counts = done + np.cumsum(steps)
            else:
                # Evenly spaced: the k-th request at Λ = k, the first one at time 0.
                start = 0.0 if first else done + 1.0
                counts = start + np.arange(chunk, dtype=np.float64)
            first = False
            done = float(counts[-1])
            inside = counts < total
            if not inside.all():
                kept = counts[inside]
                if kept.size:
                    yield self.profile.time_of(kept)
                return
            yield self.profile.time_of(counts)

    def describe(self) -> str:
        p = self.profile
        if p.ramp > 0:
            return (
                f"{self.arrival} {p.start_rate:g}→{p.rate:g}/s over {p.ramp:g}s, "
                f"{self.duration:g}s in all"
            )
        return f"{self.arrival} {p.rate:g}/s for {self.duration:g}s"
