"""How often assert_no_regression cries wolf, and how often it catches a real slowdown.

Synthetic runs stand in for real ones, so the truth is known: each second of a run draws its
latencies from a server model, and the "current" run's latencies are the baseline model's
times (1 + shift). A/A pairs (shift 0) measure false alarms; +5%, +10%, +20% measure detection.
Every pair goes through the real code path (HDR histograms per second → compare_runs) with the
defaults: p99, tolerance 10%, confidence 0.99.

Server models, calibrated on 10 s runs of the local MLServer iris model at 100-200 req/s:
  steady     lognormal latencies (median 1 ms, sigma 0.25): per-second p99/p50 of 1.4-2.6,
             as in the calm runs.
  disturbed  the same, but one second in five is disturbed (a scheduler hiccup, a GC pause):
             2-10% of its requests wait an extra Exp(2 ms). Per-second p99 then reaches 5-16x
             the median, as in the noisy runs.

    .venv/bin/python benchmarks/regression_power.py [--trials 200] [--rate 200]
        [--seconds 10 30] [--shifts 0 0.05 0.1 0.2] [--models steady disturbed]
        [--bootstrap] [--real PAIRS]

--bootstrap also runs the alternative considered (a block bootstrap over seconds of the run's
own p99, percentile interval) on the same pairs. --real PAIRS adds A/A pairs of back-to-back
real runs against a local MLServer (needs the `local` extra): what the machine's run-to-run
drift does to a single-run baseline.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from bench_common import print_machine

from pytest_seldon_load.regression import compare_runs
from pytest_seldon_load.result import LoadResult, Window, new_histogram

HDR_SUB_BUCKET_MAGNITUDE = 11  # 2048 sub-buckets: 3 significant digits, 1 µs unit


def hdr_slots(values_us: np.ndarray) -> np.ndarray:
    """HdrHistogram's counts index of each value (1 µs .. 1 h, 3 significant digits)."""
    values = np.maximum(values_us.astype(np.int64), 1)
    _, bit_length = np.frexp((values | 2047).astype(np.float64))
    bucket = bit_length.astype(np.int64) - HDR_SUB_BUCKET_MAGNITUDE
    sub_bucket = values >> bucket
    return ((bucket + 1) << 10) + (sub_bucket - 1024)


def histogram_of(values_us: np.ndarray):
    """An HdrHistogram holding `values_us`, filled in one vectorised step."""
    histogram = new_histogram()
    if values_us.size:
        counts = np.bincount(hdr_slots(values_us), minlength=histogram.counts_len)
        np.ctypeslib.as_array(histogram.counts)[:] = counts[: histogram.counts_len]
        used = np.flatnonzero(counts)
        histogram.set_internal_tacking_values(int(used[0]), int(used[-1]), int(counts.sum()))
    return histogram


@dataclass(frozen=True)
class ServerModel:
    """Latencies (ms) of one second of a run."""

    name: str
    median_ms: float = 1.0
    sigma: float = 0.25
    disturbed_share: float = 0.0
    """Share of seconds with a disturbance."""

    def second(self, rng: np.random.Generator, n: int) -> np.ndarray:
        latencies = rng.lognormal(math.log(self.median_ms), self.sigma, n)
        if self.disturbed_share and rng.random() < self.disturbed_share:
            hit = rng.random(n) < rng.uniform(0.02, 0.10)
            latencies[hit] += rng.exponential(2.0 * self.median_ms, int(hit.sum()))
        return latencies


STEADY = ServerModel("steady")
DISTURBED = ServerModel("disturbed", disturbed_share=0.2)
MODELS = {model.name: model for model in (STEADY, DISTURBED)}


def synthetic_run(
    rng: np.random.Generator,
    rate: float,
    seconds: int,
    model: ServerModel = STEADY,
    scale: float = 1.0,
) -> LoadResult:
    """A LoadResult of `seconds` one-second windows at `rate` (Poisson counts), the model's
    latencies times `scale`."""
    windows, every = [], []
    for second in range(seconds):
        n = int(rng.poisson(rate))
        values_us = np.round(model.second(rng, n) * scale * 1000.0)
        every.append(values_us)
        encoded = histogram_of(values_us).encode().decode("ascii") if n else ""
        windows.append(Window(second, sent=n, ok=n, latency_hdr=encoded, service_hdr=encoded))
    values = np.concatenate(every)
    total = int(values.size)
    return LoadResult(
        target_rate=rate,
        duration=float(seconds),
        scheduled=total,
        requests=total,
        ok=total,
        latency=histogram_of(values),
        service=histogram_of(values),
        windows=windows,
        arrival="poisson",
    )


def flagged_by_rank_test(baseline: LoadResult, current: LoadResult) -> bool:
    """The shipped rule: assert_no_regression's defaults."""
    return compare_runs(baseline, current).is_regression


def flagged_by_bootstrap(baseline: LoadResult, current: LoadResult) -> bool:
    """The alternative: block bootstrap over seconds of the run-level p99 (percentile CI)."""
    from scipy import stats

    from pytest_seldon_load.regression import hdr_percentiles, slot_counts

    def rows(result: LoadResult) -> np.ndarray:
        return np.stack([slot_counts(w.latency) for w in result.windows])

    base_rows, current_rows = rows(baseline), rows(current)
    used = (base_rows.sum(0) + current_rows.sum(0)) > 0
    base_rows, current_rows = base_rows[:, used], current_rows[:, used]

    def p99(block_rows: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        n = block_rows.shape[0]
        weights = (drawn.astype(int)[..., :, None] == np.arange(n)).sum(-2).astype(float)
        padded = np.zeros((*weights.shape[:-1], used.size))
        padded[..., used] = weights @ block_rows
        return hdr_percentiles(padded, 99.0)

    def statistic(b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.log(p99(current_rows, c) / p99(base_rows, b))

    result = stats.bootstrap(
        (np.arange(base_rows.shape[0], dtype=float), np.arange(current_rows.shape[0], dtype=float)),
        statistic,
        n_resamples=2000,
        vectorized=True,
        method="percentile",
        confidence_level=0.99,
        rng=np.random.default_rng(0),
    )
    low = result.confidence_interval.low
    change = math.exp(statistic(np.arange(base_rows.shape[0]), np.arange(current_rows.shape[0])))
    return bool(low > 0 and change - 1 > 0.10)


@dataclass
class Cell:
    flagged: int = 0
    trials: int = 0

    @property
    def rate(self) -> float:
        return self.flagged / self.trials if self.trials else math.nan


def measure(
    rule: Callable[[LoadResult, LoadResult], bool],
    model: ServerModel,
    rate: float,
    seconds: int,
    shift: float,
    trials: int,
) -> Cell:
    cell = Cell()
    for trial in range(trials):
        rng = np.random.default_rng(1_000_003 * trial + 7)
        baseline = synthetic_run(rng, rate, seconds, model)
        current = synthetic_run(rng, rate, seconds, model, scale=1.0 + shift)
        cell.flagged += rule(baseline, current)
        cell.trials += 1
    return cell


def _label(shift: float) -> str:
    return "A/A" if shift == 0 else f"+{shift:.0%}"


def synthetic_table(args: argparse.Namespace) -> list[str]:
    rules: list[tuple[str, Callable[[LoadResult, LoadResult], bool]]] = [
        ("rank test (shipped)", flagged_by_rank_test)
    ]
    if args.bootstrap:
        rules.append(("bootstrap of run p99", flagged_by_bootstrap))
    header = ["server model", "method", "run", *(_label(s) for s in args.shifts)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model_name in args.models:
        model = MODELS[model_name]
        for rule_name, rule in rules:
            for seconds in args.seconds:
                started = time.perf_counter()
                cells = [
                    measure(rule, model, args.rate, seconds, shift, args.trials)
                    for shift in args.shifts
                ]
                took = time.perf_counter() - started
                row = [
                    model_name,
                    rule_name,
                    f"{seconds} s at {args.rate:g}/s",
                    *(f"{c.rate:.1%} ({c.flagged}/{c.trials})" for c in cells),
                ]
                lines.append("| " + " | ".join(row) + " |")
                print(f"  {model_name} {rule_name} {seconds}s: {took:.0f}s", file=sys.stderr)
    return lines


def real_pairs(pairs: int, rate: float, seconds: int) -> list[str]:
    """A/A on a real server: 2 × pairs back-to-back runs, each pair compared."""
    import tempfile
    from pathlib import Path

    from pytest_seldon_load.cluster.local import LocalSeldonServer, mlserver_available
    from pytest_seldon_load.engine import run_load
    from pytest_seldon_load.generate import write_prediction_replay

    if not mlserver_available():
        return ["(real runs skipped: MLServer is not installed)"]
    workdir = Path(tempfile.mkdtemp(prefix="regression-power-"))
    features = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]
    flagged, changes = 0, []
    with LocalSeldonServer(workdir) as server:
        endpoint = server.endpoint()
        replay = write_prediction_replay(
            workdir / "iris.replay", protocol="v2", features=features, num=1000, seed=1
        )
        run_load(endpoint, replay, rate=rate, duration=3, seed=0)  # warm the server up
        for pair in range(pairs):
            first = run_load(endpoint, replay, rate=rate, duration=seconds, warmup=1, seed=pair)
            second = run_load(endpoint, replay, rate=rate, duration=seconds, warmup=1, seed=pair)
            comparison = compare_runs(first, second)
            flagged += comparison.is_regression
            changes.append(comparison.change)
            print(f"  real pair {pair + 1}: {comparison.headline()}", file=sys.stderr)
    spread = np.percentile(np.abs(changes), [50, 90]) if changes else [math.nan, math.nan]
    return [
        f"| local MLServer (real) | rank test (shipped) | {seconds} s at {rate:g}/s | "
        f"{flagged / pairs:.1%} ({flagged}/{pairs}) | per-second p99 shift between runs of "
        f"the same server: median {spread[0]:.1%}, 90th percentile {spread[1]:.1%} |"
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.20])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--bootstrap", action="store_true")
    parser.add_argument("--real", type=int, default=0, metavar="PAIRS")
    parser.add_argument("--real-seconds", type=int, default=10)
    args = parser.parse_args(argv)
    print_machine(
        "assert_no_regression: false alarms (A/A) and detection (+shift of every latency)"
    )
    print(
        f"defaults: p99, tolerance 10%, confidence 0.99; {args.trials} seeded pairs per cell; "
        f"a flag is a 'regression' verdict.\n"
    )
    for line in synthetic_table(args):
        print(line)
    if args.real:
        print()
        print("| server | method | run | A/A flagged | note |")
        print("|---|---|---|---|---|")
        for line in real_pairs(args.real, args.rate, args.real_seconds):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
