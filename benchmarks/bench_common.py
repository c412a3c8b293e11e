"""Shared pieces of the load-generator benchmarks: CPU accounting, machine facts, medians.

The benchmarks share two cores with the server under test and, often, with other work on the
machine. Every run therefore records where the CPU went (the client, nginx, everything else)
so a figure taken on a busy machine shows it.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_OTHER_CORE_PCT = 15.0


def machine_info() -> dict[str, str]:
    """What a reader needs to compare figures across machines."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio (no uvloop)"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "loop": loop,
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def print_machine(title: str) -> None:
    info = machine_info()
    print(f"# {title}")
    print()
    print(
        f"nproc {info['nproc']}, CPU {info['cpu']}, Python {info['python']}, "
        f"{info['loop']}, Linux {info['kernel']}, {info['date']}"
    )
    print()


def _proc_stat() -> tuple[int, int, int]:
    """(process jiffies, interrupt jiffies, steal jiffies) over all CPUs.

    Interrupt time (mostly the loopback network stack in softirq) is kept apart: it is not
    charged to any process, so it is neither the client's nor other work on the machine.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system, irq + softirq, steal


def _process_jiffies(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (nginx master and its worker)."""
    found, frontier = [pid], [pid]
    for _ in range(8):
        nxt: list[int] = []
        for parent in frontier:
            try:
                text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
            except OSError:
                continue
            nxt.extend(int(x) for x in text.split())
        if not nxt:
            break
        found.extend(nxt)
        frontier = nxt
    return found


@dataclass
class CpuUse:
    """CPU spent during one run, in seconds, and the wall time it took."""

    wall: float
    client: float
    server: float
    other: float
    interrupts: float
    steal: float

    def core_pct(self, seconds: float) -> float:
        return 100.0 * seconds / self.wall if self.wall > 0 else 0.0


class CpuMeter:
    """Measure a block: this process and its waited-for children, the server, everything else.

    Child processes count only once they are reaped (`subprocess.run` does that).
    """

    def __init__(self, server_pids: Sequence[int] = ()) -> None:
        self.server_pids = list(server_pids)
        self.use: CpuUse | None = None

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._self = time.process_time()
        self._children = _children_cpu()
        self._busy, self._irq, self._steal = _proc_stat()
        self._server = _process_jiffies(self.server_pids)
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall = time.perf_counter() - self._wall
        client = time.process_time() - self._self + _children_cpu() - self._children
        busy, irq, steal = _proc_stat()
        server = (_process_jiffies(self.server_pids) - self._server) / CLOCK_TICKS
        other = (busy - self._busy) / CLOCK_TICKS - client - server
        self.use = CpuUse(
            wall,
            client,
            server,
            max(0.0, other),
            (irq - self._irq) / CLOCK_TICKS,
            (steal - self._steal) / CLOCK_TICKS,
        )


def other_load(seconds: float = 1.0) -> float:
    """Core-% the rest of the machine uses right now (100 = one core busy)."""
    with CpuMeter() as meter:
        time.sleep(seconds)
    assert meter.use is not None
    return meter.use.core_pct(meter.use.other)


def wait_for_quiet(limit_s: float, probe_s: float = 1.0) -> float:
    """Wait (at most `limit_s`) for other work on the machine to drop; return its core-%."""
    deadline = time.monotonic() + limit_s
    load = other_load(probe_s)
    waited = False
    while load > QUIET_OTHER_CORE_PCT and time.monotonic() < deadline:
        if not waited:
            print(f"  (other processes use {load:.0f}% of a core; waiting)", flush=True)
            waited = True
        time.sleep(2)
        load = other_load(probe_s)
    if load > QUIET_OTHER_CORE_PCT:
        print(f"  (others still use {load:.0f}% of a core; going ahead)", flush=True)
    return load


def pin_self(cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def taskset(cpus: set[int] | None) -> list[str]:
    """Command prefix that runs a child on `cpus`."""
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))] if cpus else []


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def majority(flags: Sequence[bool]) -> bool:
    return sum(flags) * 2 > len(flags)


def fmt(value: float, digits: int = 2) -> str:
    if value != value:
        return "–"
    return f"{value:,.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


BUSY_OTHER_CORE_PCT = 25.0


class Run(Protocol):
    """What the rate search needs from one run of any tool."""

    @property
    def held(self) -> bool: ...

    @property
    def other_pct(self) -> float: ...


R = TypeVar("R", bound=Run)


@dataclass
class Rung(Generic[R]):
    """Every counted repeat at one target rate; figures shown are medians over them."""

    target: float
    runs: list[R] = field(default_factory=list)
    busy_reruns: int = 0

    @property
    def held(self) -> bool:
        return majority([r.held for r in self.runs])

    @property
    def held_count(self) -> str:
        return f"{sum(r.held for r in self.runs)}/{len(self.runs)}"

    def med(self, name: str) -> float:
        return median([float(getattr(r, name)) for r in self.runs])


def repeat_runs(
    make: Callable[[], R],
    repeats: int,
    *,
    label: str,
    describe: Callable[[R], str],
    quiet_wait_s: float = 0.0,
    busy_reruns: int = 0,
    stop_when_failed: bool = True,
) -> tuple[list[R], int]:
    """`repeats` runs; a failed run while others used the machine is re-run (`busy_reruns`).

    The re-run rule is the same for every tool, and each discarded run is printed, so it only
    removes failures caused by other work on a shared machine, in plain sight.
    """
    runs: list[R] = []
    reruns = 0
    while len(runs) < repeats:
        if quiet_wait_s > 0:
            wait_for_quiet(quiet_wait_s, probe_s=0.5)
        run = make()
        busy = run.other_pct > BUSY_OTHER_CORE_PCT
        if not run.held and busy and reruns < busy_reruns:
            reruns += 1
            print(
                f"  {label}: {describe(run)} — DISCARDED (others used "
                f"{run.other_pct:.0f}% of a core), running again",
                flush=True,
            )
            continue
        runs.append(run)
        print(f"  {label}: {describe(run)}", flush=True)
        if stop_when_failed and sum(not r.held for r in runs) * 2 > repeats:
            break
    return runs, reruns


def climb(
    run_at: Callable[[float], R],
    rates: Sequence[float],
    *,
    repeats: int,
    label: str,
    describe: Callable[[R], str],
    deadline: float,
    quiet_wait_s: float = 0.0,
    busy_reruns: int = 0,
    refine: int = 0,
) -> list[Rung[R]]:
    """Rising rates until one is not held (majority of repeats), then `refine` bisections.

    When the first rate already fails, one lower rate (2.5 times lower) is tried, so a slow
    tool still gets a figure.
    """

    def rung_at(rate: float) -> Rung[R]:
        runs, reruns = repeat_runs(
            lambda: run_at(rate),
            repeats,
            label=f"{label} {rate:>7,.0f}/s",
            describe=describe,
            quiet_wait_s=quiet_wait_s,
            busy_reruns=busy_reruns,
        )
        return Rung(rate, runs, reruns)

    rungs: list[Rung[R]] = []
    for rate in rates:
        if time.monotonic() > deadline:
            print(f"  {label}: time budget spent; stopping before {rate:,.0f}/s", flush=True)
            return rungs
        rung = rung_at(rate)
        rungs.append(rung)
        if not rung.held:
            break
    if len(rungs) == 1 and not rungs[0].held and time.monotonic() < deadline:
        lower = round(rungs[0].target / 2.5 / 500.0) * 500.0
        if lower > 0:
            rungs.append(rung_at(lower))
    for _ in range(refine):
        held = [r.target for r in rungs if r.held]
        failed = [r.target for r in rungs if not r.held]
        if not held or not failed or time.monotonic() > deadline:
            break
        low, high = max(held), min(failed)
        step = 500.0 if high - low <= 5000 else 1000.0
        middle = round((low + high) / 2 / step) * step
        if not low < middle < high:
            break
        rungs.append(rung_at(middle))
    return sorted(rungs, key=lambda r: r.target)


def highest_held(rungs: Sequence[Rung]) -> Rung | None:
    """The highest held rate below the lowest failed one (a held rate above a failure is luck)."""
    failed = [r.target for r in rungs if not r.held]
    ceiling = min(failed) if failed else math.inf
    held = [r for r in rungs if r.held and r.target < ceiling]
    return max(held, key=lambda r: r.target) if held else None
