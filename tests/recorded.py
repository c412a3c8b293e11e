"""Synthetic runs with known truth, recorded through the engine's own `Recorder`.

Each second holds `rate` requests; every request of second s takes `service_ms[s]` (plus an
optional spread) from its actual send, and every send leaves `lag_ms` late. So the truth is
known: the server's time per window, and what the generator's lag added on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_seldon_load.result import LoadResult, Recorder


def recorded_run(
    service_ms: Sequence[float],
    *,
    rate: int = 50,
    lag_ms: float = 0.0,
    spread: float = 0.0,
    seed: int = 0,
) -> LoadResult:
    """One run of len(service_ms) seconds; `spread` draws each service time uniformly in
    ±spread of its second's value."""
    rng = np.random.default_rng(seed)
    recorder = Recorder(warmup=0.0)
    events = []
    lag = lag_ms / 1000.0
    for second, value in enumerate(service_ms):
        for k in range(rate):
            intended = second + k / rate
            sent = intended + lag
            jitter = rng.uniform(-spread, spread) if spread else 0.0
            done = sent + max(0.001, value * (1.0 + jitter)) / 1000.0
            recorder.sent(intended, sent, lag)
            events.append((done, intended, sent))
    for done, intended, sent in sorted(events):  # completions arrive in clock order
        recorder.completed(intended, sent, done, 200, None)
    total = rate * len(service_ms)
    return recorder.result(
        target_rate=float(rate), duration=float(len(service_ms)), scheduled=total
    )
