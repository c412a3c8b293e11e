"""One result from the parts of a split schedule: what N processes or N pods measured, added.

A schedule split by `EngineSettings.part`/`parts` is measured in pieces; every piece keeps
full HDR histograms and per-second windows, so the whole is their exact sum, never an
average of percentiles: histograms add slot by slot, windows of the same second add, counts
and status codes add. The generator's health takes the worst of its parts (the worst lag, the
busiest process, named by its position), because one late process is enough to put its lag
into the merged latencies. This is the only merge: processes and the Kubernetes engine both
use it.

Each part's seconds count from its own start, so every merged second holds every part's share
of the rate, and rates divide by the parts' own measured length: a second compared with a
baseline's is like it. Parts that began apart (load pods scheduled seconds apart, one pulling
its image) are therefore not wall-clock aligned; the result's health says how far apart they
began (`GeneratorHealth.start_spread_s`, in failure messages from 1 s).
"""

from __future__ import annotations

from collections.abc import Iterable

from . import hdr
from .result import GeneratorHealth, LoadResult, Window


def merge_health(parts: list[GeneratorHealth]) -> GeneratorHealth:
    """Late sends add; the worst lag and the busiest part (its index in `parts`) are kept."""
    first = parts[0]
    merged = GeneratorHealth(
        lag_threshold_ms=first.lag_threshold_ms,
        late_fraction_allowed=first.late_fraction_allowed,
        busy_fraction_allowed=first.busy_fraction_allowed,
    )
    for index, part in enumerate(parts):
        if part.busy_fraction > merged.busy_fraction:
            merged.busiest_process = index
        merged.add(part)  # late sends add; the worst lag, busy share and host steal are kept
    return merged


def merge_results(parts: Iterable[LoadResult]) -> LoadResult:
    """The exact sum of results of one schedule split into parts (in part order)."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge needs at least one result")
    first = parts[0]
    merged = LoadResult(
        target_rate=sum(p.target_rate for p in parts),
        duration=max(p.duration for p in parts),
        health=merge_health([p.health for p in parts]),
        engine=first.engine,
        corrected=all(p.corrected for p in parts),
        label=first.label,
        target=first.target,
        arrival=first.arrival,
        seed=first.seed,
        processes=sum(p.processes for p in parts),
        started_at=min(p.started_at for p in parts),
        lag_accepted=all(p.lag_accepted for p in parts),
        protocol=first.protocol,
        warmup=first.warmup,
        connections=sum(p.connections for p in parts),
    )
    if all(p.started_at > 0 for p in parts):
        merged.health.start_spread_s = max(p.started_at for p in parts) - merged.started_at
    windows: dict[int, Window] = {}
    for part in parts:
        merged.scheduled += part.scheduled
        merged.requests += part.requests
        merged.ok += part.ok
        merged.errors += part.errors
        merged.unsent += part.unsent
        merged.retries += part.retries
        merged.interrupted = merged.interrupted or part.interrupted
        merged.aborted = merged.aborted or part.aborted
        for code, n in part.status_codes.items():
            merged.status_codes[code] = merged.status_codes.get(code, 0) + n
        for kind, n in part.error_kinds.items():
            merged.error_kinds[kind] = merged.error_kinds.get(kind, 0) + n
        merged.error_samples.add(part.error_samples)
        hdr.add(merged.latency, part.latency)
        hdr.add(merged.service, part.service)
        for window in part.windows:
            windows.setdefault(window.second, Window(window.second)).add(window)
    merged.windows = [windows[s] for s in sorted(windows)]
    return merged
