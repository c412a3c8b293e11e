"""The highest open-loop rate ONE engine process holds against a one-worker loopback nginx.

A rate is held when the engine sends within 1% of the target rate (counting sends that
actually left inside the measured period), its generator kept up by its own rules, no request
failed, and at most 0.1% of sends were more than 5 ms behind schedule (so that the late sends
cannot reach p99). Latency is measured from each request's
intended send time, service time from its actual send. The engine process is pinned to one
core and nginx to the other, so the figures are per generator core.

    .venv/bin/python benchmarks/engine_max_rate.py [--mode get|post|both] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_common import (
    CpuMeter,
    Rung,
    climb,
    descendants,
    fmt,
    highest_held,
    markdown_table,
    pin_self,
    print_machine,
    wait_for_quiet,
)
from loopback_nginx import LoopbackNginx, split_cpus

import pytest_seldon_load.engine as engine_module
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import EngineSettings, run_load
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.replay import ReplayFile, write_replay
from pytest_seldon_load.result import LoadResult, Recorder

DEFAULT_RATES = (5000, 10000, 20000, 30000, 40000, 50000, 60000, 80000, 100000)
HELD_TOLERANCE = 0.01
TRUSTED_LATE_FRACTION = 0.001
"""Held also needs at most 0.1% late sends: the engine's own 1% rule keeps p99 honest only
if the late sends sit beyond p99, so a rate claimed here must leave p99 untouched."""
GET_LINE = "/v2/models/iris/ready"
POST_LINE = v2_request("iris", [[5.1, 3.5, 1.4, 0.2]]).to_line()


def make_replay(directory: Path, mode: str) -> ReplayFile:
    """A one-line replay: the V2 readiness GET, or a V2 inference POST with 4 floats."""
    line = GET_LINE if mode == "get" else POST_LINE
    return write_replay(directory / f"{mode}.txt", [line])


def sent_in_window(result: LoadResult, duration: float) -> float:
    """Sends that actually left during the measured period, per second.

    `LoadResult.achieved_rate` counts every send whose INTENDED time fell in the period,
    however late it left; this counts by the actual send time, so a generator that falls
    behind shows a lower rate.
    """
    seconds = math.floor(duration)
    sent = sum(w.sent for w in result.windows if 0 <= w.second < seconds)
    return sent / seconds if seconds else 0.0


@dataclass
class EngineRun:
    """One engine run's figures (latencies in ms, CPU in µs per request)."""

    target: float
    achieved: float
    kept_up: bool
    late_sends: int
    sends_checked: int
    busy: float
    max_lag_ms: float
    p50: float
    p99: float
    p999: float
    service_p50: float
    service_p99: float
    errors: int
    error_kinds: dict[str, int]
    cpu_us: float
    server_us: float
    other_pct: float

    @property
    def ratio(self) -> float:
        return self.achieved / self.target

    @property
    def held(self) -> bool:
        return (
            abs(self.ratio - 1.0) <= HELD_TOLERANCE
            and self.kept_up
            and self.errors == 0
            and self.late_sends <= TRUSTED_LATE_FRACTION * self.sends_checked
        )


def run_engine(
    url: str,
    replay: ReplayFile,
    rate: float,
    *,
    duration: float,
    warmup: float,
    settings: EngineSettings,
    server_pids: Sequence[int] = (),
) -> EngineRun:
    """One constant-arrival run, with the CPU it cost this process and the server."""
    gc.collect()
    with CpuMeter(server_pids) as meter:
        result = run_load(
            SeldonEndpoint(url),
            replay,
            rate=rate,
            duration=duration,
            warmup=warmup,
            arrival="constant",
            settings=settings,
        )
    use = meter.use
    assert use is not None
    total_sends = result.requests + math.ceil(rate * warmup)
    return EngineRun(
        target=rate,
        achieved=sent_in_window(result, duration),
        kept_up=result.kept_up,
        late_sends=result.health.late_sends,
        sends_checked=result.health.sends_checked,
        busy=result.health.busy_fraction,
        max_lag_ms=result.health.max_lag_ms,
        p50=result.p50,
        p99=result.p99,
        p999=result.p999,
        service_p50=result.service_percentile(50),
        service_p99=result.service_percentile(99),
        errors=result.errors,
        error_kinds=dict(result.error_kinds),
        cpu_us=1e6 * use.client / total_sends if total_sends else math.nan,
        server_us=1e6 * use.server / total_sends if total_sends else math.nan,
        other_pct=use.core_pct(use.other),
    )


def describe(run: EngineRun) -> str:
    return (
        f"achieved {run.achieved:,.0f} kept_up={run.kept_up} late={run.late_sends} "
        f"busy={run.busy:.0%} "
        f"max_lag={run.max_lag_ms:.1f}ms p99={run.p99:.2f}ms errors={run.errors} "
        f"cpu={run.cpu_us:.1f}µs other={run.other_pct:.0f}% held={run.held}"
    )


HEADER = [
    "target req/s",
    "achieved req/s",
    "achieved/target",
    "held",
    "kept up",
    "late sends",
    "engine busy %",
    "max lag ms",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "service p50 ms",
    "service p99 ms",
    "errors",
    "engine CPU µs/req",
    "nginx CPU µs/req",
    "other CPU %",
    "busy reruns",
]


def row(rung: Rung[EngineRun]) -> list[str]:
    kinds: dict[str, int] = {}
    for run in rung.runs:
        for kind, n in run.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + n
    errors = fmt(rung.med("errors"), 0)
    if kinds:
        errors += " (" + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + " in all)"
    return [
        f"{rung.target:,.0f}",
        fmt(rung.med("achieved"), 0),
        fmt(rung.med("ratio"), 4),
        f"{'**yes**' if rung.held else 'no'} ({rung.held_count})",
        f"{sum(r.kept_up for r in rung.runs)}/{len(rung.runs)}",
        fmt(rung.med("late_sends"), 0),
        fmt(100 * rung.med("busy"), 0),
        fmt(rung.med("max_lag_ms"), 1),
        fmt(rung.med("p50"), 3),
        fmt(rung.med("p99"), 3),
        fmt(rung.med("p999"), 3),
        fmt(rung.med("service_p50"), 3),
        fmt(rung.med("service_p99"), 3),
        errors,
        fmt(rung.med("cpu_us"), 1),
        fmt(rung.med("server_us"), 1),
        fmt(rung.med("other_pct"), 0),
        str(rung.busy_reruns),
    ]


def ladder(
    url: str,
    replay: ReplayFile,
    rates: Sequence[float],
    *,
    repeats: int,
    duration: float,
    warmup: float,
    settings: EngineSettings,
    server_pids: Sequence[int] = (),
    deadline: float,
    quiet_wait_s: float = 0.0,
    busy_reruns: int = 0,
    refine: int = 0,
    label: str = "",
) -> list[Rung[EngineRun]]:
    """Rising rates until one is not held (by majority of repeats), then bisect."""
    return climb(
        lambda rate: run_engine(
            url,
            replay,
            rate,
            duration=duration,
            warmup=warmup,
            settings=settings,
            server_pids=server_pids,
        ),
        rates,
        repeats=repeats,
        label=label,
        describe=describe,
        deadline=deadline,
        quiet_wait_s=quiet_wait_s,
        busy_reruns=busy_reruns,
        refine=refine,
    )


@contextlib.contextmanager
def recording_sends() -> Iterator[list[tuple[float, float]]]:
    """(intended, actual) of every measured send of runs started inside the block.

    A LoadResult keeps histograms only, so the per-request gap between the intended and the
    actual send (what the corrected latency adds to the service time) needs each send; the
    engine's recorder is swapped for one that also keeps them, for this block only.
    """
    sends: list[tuple[float, float]] = []

    class KeepingRecorder(Recorder):
        def sent(self, intended: float, actual: float, lag: float) -> None:
            if intended >= self.warmup:
                sends.append((intended, actual))
            super().sent(intended, actual, lag)

    original = engine_module.Recorder
    engine_module.Recorder = KeepingRecorder  # type: ignore[misc]
    try:
        yield sends
    finally:
        engine_module.Recorder = original  # type: ignore[misc]


def accuracy(
    url: str,
    replay: ReplayFile,
    rate: float,
    *,
    duration: float,
    warmup: float,
    settings: EngineSettings,
) -> str:
    """How much of the corrected latency is the generator's own send timing, at `rate`."""
    gc.collect()
    with recording_sends() as sends:
        result = run_load(
            SeldonEndpoint(url),
            replay,
            rate=rate,
            duration=duration,
            warmup=warmup,
            settings=settings,
        )
    gaps = np.array([actual - intended for intended, actual in sends]) * 1000.0
    added = np.maximum(gaps, 0.0)
    q = (1, 50, 90, 99, 99.9)
    signed = np.percentile(gaps, q)
    extra = np.percentile(added, q)
    rows = [
        ["actual − intended send (ms)", *(fmt(v, 3) for v in signed)],
        ["latency − service (ms), per request", *(fmt(v, 3) for v in extra)],
    ]
    table = markdown_table(["", *(f"p{v:g}" for v in q)], rows)
    early = float(np.mean(gaps < 0)) * 100
    return (
        f"{table}\n\n{len(gaps):,} measured sends at {rate:,.0f}/s; {early:.1f}% left early "
        f"(at most {engine_module.EARLY_SEND_S * 1000:g} ms by design). From the histograms: "
        f"latency p50 {result.p50:.3f} ms, service p50 {result.service_percentile(50):.3f} ms "
        f"(difference {result.p50 - result.service_percentile(50):.3f} ms); "
        f"latency p99 {result.p99:.3f} ms, service p99 {result.service_percentile(99):.3f} ms; "
        f"kept_up={result.kept_up}, max lag {result.health.max_lag_ms:.2f} ms."
    )


def parse_rates(text: str) -> list[float]:
    rates = [float(x) for x in text.replace("k", "000").split(",") if x.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive numbers, comma separated")
    return sorted(rates)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rates",
        type=parse_rates,
        default=list(DEFAULT_RATES),
        help="rising target rates, comma separated (5k = 5000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per rate; medians shown")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="engine connection pool")
    parser.add_argument(
        "--budget", type=float, default=600.0, help="seconds after which no new rate is started"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin nginx and the client to separate cores"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait for other work on the machine to settle",
    )
    parser.add_argument(
        "--run-quiet-wait",
        type=float,
        default=10.0,
        help="before each run, seconds to wait for other work to settle",
    )
    parser.add_argument(
        "--busy-reruns",
        type=int,
        default=2,
        help="per rate, failed runs during heavy other load that are run again",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=1,
        help="bisection steps between the highest held and lowest failed rate",
    )


def print_ladder(title: str, rungs: Sequence[Rung]) -> None:
    print(f"\n## {title}\n")
    print(markdown_table(HEADER, [row(r) for r in rungs]))
    best = highest_held(rungs)
    print()
    if best is None:
        print("Highest held rate: none of the rates tried.")
    else:
        print(
            f"Highest held rate: **{best.target:,.0f} req/s** "
            f"(achieved {best.med('achieved'):,.0f}, engine CPU {best.med('cpu_us'):.1f} µs/req, "
            f"p99 {best.med('p99'):.2f} ms from the intended send time)."
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--mode", choices=("get", "post", "both"), default="both")
    parser.add_argument(
        "--accuracy-rate",
        type=float,
        default=5000.0,
        help="rate of the send-timing accuracy run (0: skip it)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.duration < 1 or args.warmup < 0:
        parser.error("need --repeats >= 1, --duration >= 1 and --warmup >= 0")

    server_cpus, client_cpus = (None, None) if args.no_pin else split_cpus()
    pin_self(client_cpus)
    settings = EngineSettings(connections=args.connections)
    print_machine("Engine: highest open-loop rate held by one process")
    print(
        f"nginx on CPUs {server_cpus or 'any'}, engine on CPUs {client_cpus or 'any'}; "
        f"{args.duration:g} s measured + {args.warmup:g} s warm-up, median of {args.repeats}; "
        f"{args.connections} connections."
    )
    modes = ["get", "post"] if args.mode == "both" else [args.mode]
    with (
        tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp,
        LoopbackNginx(cpus=server_cpus) as server,
    ):
        server_pids = descendants(server.process.pid) if server.process else []
        print(f"other load before start: {wait_for_quiet(args.quiet_wait):.0f}% of a core\n")
        results: dict[str, list[Rung[EngineRun]]] = {}
        deadline = time.monotonic() + args.budget
        for mode in modes:
            results[mode] = ladder(
                server.url,
                make_replay(Path(tmp), mode),
                args.rates,
                repeats=args.repeats,
                duration=args.duration,
                warmup=args.warmup,
                settings=settings,
                server_pids=server_pids,
                deadline=deadline,
                quiet_wait_s=args.run_quiet_wait,
                busy_reruns=args.busy_reruns,
                refine=args.refine,
                label=mode.upper(),
            )
        accuracy_text = ""
        if args.accuracy_rate > 0:
            accuracy_text = accuracy(
                server.url,
                make_replay(Path(tmp), modes[0]),
                args.accuracy_rate,
                duration=args.duration,
                warmup=args.warmup,
                settings=settings,
            )
    for mode in modes:
        request = f"GET {GET_LINE}" if mode == "get" else f"POST {POST_LINE.split(' ', 2)[1]}"
        print_ladder(f"{mode.upper()} ({request})", results[mode])
    if accuracy_text:
        print(f"\n## Send timing: what the generator adds ({modes[0].upper()})\n")
        print(accuracy_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
