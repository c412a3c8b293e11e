"""Our engine next to wrk, hey, a naive aiohttp generator and Locust, in one run, one nginx.

Every tool drives the same one-worker loopback nginx with the same GET, from the same pinned
client core, in the same invocation, so the ratios compare like with like:

* closed loop, 16 connections, 10 s: wrk (-t1), hey, Locust (FastHttpUser, one process),
  aiohttp (16 workers), and our engine with its in-flight bound at 16 and a schedule far above
  what it can send (it then sends whenever a slot frees: a closed loop in effect);
* open loop, rising target rates, each held or not (achieved within 1% of target, no errors,
  and for the generators that can tell, at most 1% of sends more than 5 ms late): our engine,
  hey (-c 50 -q rate/50), a naive aiohttp generator (one task per request on a fixed
  schedule), and Locust (200 users with constant_throughput).

    .venv/bin/python benchmarks/peers.py [--repeats 3] [--locust /tmp/locust-venv/bin/locust]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
from bench_common import (
    CpuMeter,
    Rung,
    climb,
    descendants,
    fmt,
    highest_held,
    markdown_table,
    median,
    pin_self,
    print_machine,
    repeat_runs,
    taskset,
    wait_for_quiet,
)
from engine_max_rate import (
    GET_LINE,
    HELD_TOLERANCE,
    TRUSTED_LATE_FRACTION,
    add_common_arguments,
    ladder,
    make_replay,
    print_ladder,
)
from loopback_nginx import LoopbackNginx, split_cpus

from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import EngineSettings, run_load

CLOSED_CONNECTIONS = 16
HEY_WORKERS = 50
LOCUST_USERS = 200
LATE_MS = 5.0
LATE_FRACTION_ALLOWED = TRUSTED_LATE_FRACTION  # the rule our engine is held to
SUBPROCESS_GRACE_S = 30.0
NAIVE_DRAIN_S = 5.0
SATURATING_RATE = 100_000.0
SATURATED = "our engine, 16 in flight, saturated"

LOCUSTFILE = '''\
"""Locust user for the peer benchmark: one GET, closed loop or constant_throughput."""

import json
import os
import time

from locust import constant, constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser

QPS = float(os.environ["BENCH_USER_QPS"])
WARMUP = float(os.environ["BENCH_WARMUP"])
DURATION = float(os.environ["BENCH_DURATION"])
OUT = os.environ["BENCH_OUT"]
STATE = {"t0": None, "ok": 0, "failed": 0, "times": []}


@events.test_start.add_listener
def _start(**_kw):
    STATE["t0"] = time.perf_counter()


@events.request.add_listener
def _request(response_time, exception, **_kw):
    t0 = STATE["t0"]
    if t0 is None:
        return
    at = time.perf_counter() - t0
    if WARMUP <= at < WARMUP + DURATION:
        if exception is None:
            STATE["ok"] += 1
        else:
            STATE["failed"] += 1
        STATE["times"].append(response_time)


@events.quitting.add_listener
def _quit(**_kw):
    times = sorted(STATE["times"])
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] if times else None
    with open(OUT, "w") as handle:
        json.dump({"ok": STATE["ok"], "failed": STATE["failed"],
                   "p50": pick(0.50), "p99": pick(0.99)}, handle)


class V2User(FastHttpUser):
    wait_time = constant_throughput(QPS) if QPS > 0 else constant(0)

    @task
    def ready(self):
        self.client.get("/v2/models/iris/ready")
'''


@dataclass
class PeerRun:
    """One run of a tool: achieved rate, errors, latency as the tool sees it, CPU cost."""

    target: float
    achieved: float
    errors: int
    p50: float
    p99: float
    cpu_us: float
    other_pct: float
    late_sends: int | None = None
    late_allowed: float = math.inf

    @property
    def ratio(self) -> float:
        return self.achieved / self.target if self.target else math.nan

    @property
    def held(self) -> bool:
        punctual = self.late_sends is None or self.late_sends <= self.late_allowed
        return abs(self.ratio - 1.0) <= HELD_TOLERANCE and self.errors == 0 and punctual


def _cpu_us(seconds: float, requests: float) -> float:
    return 1e6 * seconds / requests if requests else math.nan


def _run_tool(
    command: list[str],
    limit_s: float,
    server_pids: Sequence[int],
    env: dict[str, str] | None = None,
) -> tuple[str, CpuMeter]:
    with CpuMeter(server_pids) as meter:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=limit_s, env=env, check=False
        )
    if completed.returncode not in (0, 1):
        raise RuntimeError(
            f"{' '.join(command)} exited {completed.returncode}: {completed.stderr[-500:]}"
        )
    return completed.stdout + completed.stderr, meter


def wrk_closed(
    url: str, seconds: float, cpus: set[int] | None, server_pids: Sequence[int]
) -> PeerRun:
    command = [
        *taskset(cpus),
        "wrk",
        "-t1",
        f"-c{CLOSED_CONNECTIONS}",
        f"-d{seconds:g}s",
        "--latency",
        url,
    ]
    out, meter = _run_tool(command, seconds + SUBPROCESS_GRACE_S, server_pids)
    use = meter.use
    assert use is not None
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return PeerRun(
        target=math.nan,
        achieved=rate,
        errors=errors,
        p50=_wrk_ms(out, "50%"),
        p99=_wrk_ms(out, "99%"),
        cpu_us=_cpu_us(use.client, total),
        other_pct=use.core_pct(use.other),
    )


def _wrk_ms(out: str, label: str) -> float:
    found = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not found:
        return math.nan
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def hey_run(
    url: str,
    seconds: float,
    connections: int,
    qps_per_worker: float | None,
    cpus: set[int] | None,
    server_pids: Sequence[int],
) -> PeerRun:
    command = [*taskset(cpus), "hey", "-z", f"{seconds:g}s", "-c", str(connections)]
    if qps_per_worker:
        command += ["-q", f"{qps_per_worker:g}"]
    out, meter = _run_tool([*command, url], seconds + SUBPROCESS_GRACE_S, server_pids)
    use = meter.use
    assert use is not None
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    statuses = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    error_block = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
    transport_errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", error_block, re.M))
    ok = statuses.get(200, 0)
    errors = sum(n for code, n in statuses.items() if code != 200) + transport_errors
    return PeerRun(
        target=(qps_per_worker or 0) * connections or math.nan,
        achieved=rate,
        errors=errors,
        p50=_hey_ms(out, "50%"),
        p99=_hey_ms(out, "99%"),
        cpu_us=_cpu_us(use.client, ok + errors),
        other_pct=use.core_pct(use.other),
    )


def _hey_ms(out: str, label: str) -> float:
    found = re.search(rf"{re.escape(label)} in ([\d.]+) secs", out)
    return float(found.group(1)) * 1000.0 if found else math.nan


def locust_run(
    locust: str,
    workdir: Path,
    url: str,
    users: int,
    qps_per_user: float,
    warmup: float,
    seconds: float,
    cpus: set[int] | None,
    server_pids: Sequence[int],
) -> PeerRun:
    locustfile = workdir / "locustfile.py"
    if not locustfile.exists():
        locustfile.write_text(LOCUSTFILE)
    out_path = workdir / "locust-window.json"
    out_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "BENCH_USER_QPS": str(qps_per_user),
        "BENCH_WARMUP": str(warmup),
        "BENCH_DURATION": str(seconds),
        "BENCH_OUT": str(out_path),
    }
    command = [
        *taskset(cpus),
        locust,
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{math.ceil(warmup + seconds)}s",
        "--host",
        url,
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "1",
    ]
    out, meter = _run_tool(command, warmup + seconds + SUBPROCESS_GRACE_S, server_pids, env)
    use = meter.use
    assert use is not None
    if not out_path.exists():
        raise RuntimeError(f"locust wrote no figures: {out[-800:]}")
    figures = json.loads(out_path.read_text())
    done = figures["ok"] + figures["failed"]
    total_time = warmup + seconds
    return PeerRun(
        target=users * qps_per_user if qps_per_user else math.nan,
        achieved=done / seconds,
        errors=figures["failed"],
        p50=float(figures["p50"] or math.nan),
        p99=float(figures["p99"] or math.nan),
        cpu_us=_cpu_us(use.client, done * total_time / seconds),
        other_pct=use.core_pct(use.other),
    )


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _in_fresh_loop(make: Callable[[], object]) -> object:
    loop = _new_loop()
    try:
        return loop.run_until_complete(make())  # type: ignore[arg-type]
    finally:
        loop.close()


async def _naive_open_loop(url: str, rate: float, warmup: float, seconds: float) -> dict:
    """What a user writes: a task per request, created on schedule, one shared session."""
    perf = time.perf_counter
    records: list[tuple[float, float, float, bool]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def one(intended: float) -> None:
            began = perf()
            ok = False
            try:
                async with session.get(url) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            records.append((intended, began, perf(), ok))

        tasks: set[asyncio.Task] = set()
        start = perf() + 0.05
        total = int(rate * (warmup + seconds))
        for index in range(total):
            intended = start + index / rate
            await asyncio.sleep(max(0.0, intended - perf()))
            task = asyncio.ensure_future(one(intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=NAIVE_DRAIN_S)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
    return {"start": start, "records": records, "total": total}


def naive_open_loop(
    url: str, rate: float, warmup: float, seconds: float, server_pids: Sequence[int]
) -> PeerRun:
    gc.collect()
    with CpuMeter(server_pids) as meter:
        outcome = _in_fresh_loop(lambda: _naive_open_loop(url, rate, warmup, seconds))
    use = meter.use
    assert use is not None and isinstance(outcome, dict)
    start, records = outcome["start"], outcome["records"]
    window_start, window_end = start + warmup, start + warmup + seconds
    measured = [r for r in records if r[0] >= window_start]
    scheduled = int(rate * seconds)
    began_in_window = sum(1 for r in measured if window_start <= r[1] < window_end)
    late = sum(1 for r in measured if (r[1] - r[0]) * 1000.0 > LATE_MS)
    failed = sum(1 for r in measured if not r[3]) + max(0, scheduled - len(measured))
    latency = np.array([r[2] - r[0] for r in measured]) * 1000.0
    return PeerRun(
        target=rate,
        achieved=began_in_window / seconds,
        errors=failed,
        p50=float(np.percentile(latency, 50)) if latency.size else math.nan,
        p99=float(np.percentile(latency, 99)) if latency.size else math.nan,
        cpu_us=_cpu_us(use.client, len(records)),
        other_pct=use.core_pct(use.other),
        late_sends=late,
        late_allowed=LATE_FRACTION_ALLOWED * max(1, len(measured)),
    )


async def _aiohttp_closed(url: str, workers: int, seconds: float) -> int:
    perf = time.perf_counter
    end = perf() + seconds
    count = 0
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal count
            while perf() < end:
                async with session.get(url) as response:
                    await response.read()
                count += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return count


def aiohttp_closed(url: str, seconds: float, server_pids: Sequence[int]) -> PeerRun:
    gc.collect()
    with CpuMeter(server_pids) as meter:
        count = _in_fresh_loop(lambda: _aiohttp_closed(url, CLOSED_CONNECTIONS, seconds))
    use = meter.use
    assert use is not None and isinstance(count, int)
    return PeerRun(
        target=math.nan,
        achieved=count / use.wall,
        errors=0,
        p50=math.nan,
        p99=math.nan,
        cpu_us=_cpu_us(use.client, count),
        other_pct=use.core_pct(use.other),
    )


def engine_saturated(
    url: str, replay_path: Path, seconds: float, server_pids: Sequence[int]
) -> PeerRun:
    """The engine with 16 in flight and a schedule it cannot keep: it sends on every free slot."""
    from pytest_seldon_load.replay import ReplayFile

    gc.collect()
    settings = EngineSettings(
        connections=CLOSED_CONNECTIONS, max_in_flight=CLOSED_CONNECTIONS, timeout=1.0
    )
    with CpuMeter(server_pids) as meter:
        result = run_load(
            SeldonEndpoint(url),
            ReplayFile(replay_path),
            rate=SATURATING_RATE,
            duration=seconds,
            warmup=0.0,
            settings=settings,
        )
    use = meter.use
    assert use is not None
    whole = [w for w in result.windows if 0 <= w.second < math.floor(seconds)]
    ok = sum(w.ok for w in whole)
    sent_total = sum(w.sent for w in result.windows)
    return PeerRun(
        target=math.nan,
        achieved=ok / max(1, len(whole)),
        errors=sum(w.errors for w in whole),
        p50=result.service_percentile(50),
        p99=result.service_percentile(99),
        cpu_us=_cpu_us(use.client, sent_total),
        other_pct=use.core_pct(use.other),
    )


def describe(run: PeerRun) -> str:
    late = "" if run.late_sends is None else f" late={run.late_sends}"
    held = "" if math.isnan(run.target) else f" held={run.held}"
    return (
        f"achieved {run.achieved:,.0f}/s errors={run.errors}{late} p99={run.p99:.2f}ms "
        f"cpu={run.cpu_us:.1f}µs other={run.other_pct:.0f}%{held}"
    )


def peer_table(rungs: Sequence[Rung[PeerRun]], latency_note: str, with_late: bool) -> str:
    header = ["target req/s", "achieved req/s", "achieved/target", "held"]
    if with_late:
        header.append("late sends (>5 ms)")
    header += [
        f"p50 ms ({latency_note})",
        f"p99 ms ({latency_note})",
        "errors",
        "client CPU µs/req",
        "other CPU %",
        "busy reruns",
    ]
    rows = []
    for rung in rungs:
        row = [
            f"{rung.target:,.0f}",
            fmt(rung.med("achieved"), 0),
            fmt(rung.med("ratio"), 4),
            f"{'**yes**' if rung.held else 'no'} ({rung.held_count})",
        ]
        if with_late:
            row.append(fmt(rung.med("late_sends"), 0))
        row += [
            fmt(rung.med("p50"), 3),
            fmt(rung.med("p99"), 3),
            fmt(rung.med("errors"), 0),
            fmt(rung.med("cpu_us"), 1),
            fmt(rung.med("other_pct"), 0),
            str(rung.busy_reruns),
        ]
        rows.append(row)
    return markdown_table(header, rows)


def held_rate(rungs: Sequence[Rung]) -> float:
    best = highest_held(rungs)
    return best.target if best else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument(
        "--locust",
        default="/tmp/locust-venv/bin/locust",
        help="the locust executable (installed in a venv of its own)",
    )
    parser.add_argument(
        "--closed-seconds", type=float, default=10.0, help="seconds of each closed-loop run"
    )
    parser.epilog = (
        "--budget bounds the whole run; each open-loop ladder gets an equal share "
        "of what is left when it starts."
    )
    parser.set_defaults(budget=1500.0)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.duration < 1 or args.warmup < 0:
        parser.error("need --repeats >= 1, --duration >= 1 and --warmup >= 0")

    server_cpus, client_cpus = (None, None) if args.no_pin else split_cpus()
    pin_self(client_cpus)
    locust = args.locust if os.access(args.locust, os.X_OK) else shutil.which("locust")
    print_machine("Peers: the same nginx, the same run")
    print(
        f"nginx on CPUs {server_cpus or 'any'}, every client on CPUs {client_cpus or 'any'}; "
        f"open loop {args.duration:g} s measured + {args.warmup:g} s warm-up (hey: "
        f"{args.duration:g} s, no warm-up), closed loop {args.closed_seconds:g} s; median of "
        f"{args.repeats}. Locust: {locust or 'NOT INSTALLED'}."
    )
    if locust:
        version = subprocess.run(
            [locust, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        print(f"Locust version: {(version.stdout or version.stderr).strip()}")
    print(
        f"aiohttp {aiohttp.__version__}; wrk and hey from {shutil.which('wrk')}, "
        f"{shutil.which('hey')}."
    )
    deadline = time.monotonic() + args.budget
    secs = args.closed_seconds
    common = {"quiet_wait_s": args.run_quiet_wait, "busy_reruns": args.busy_reruns}

    with (
        tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp,
        LoopbackNginx(cpus=server_cpus) as server,
    ):
        workdir = Path(tmp)
        pids = descendants(server.process.pid) if server.process else []
        url = server.url + GET_LINE
        replay = make_replay(workdir, "get")
        if locust:
            try:
                locust_run(locust, workdir, server.url, 1, 0.0, 0.0, 1.0, client_cpus, pids)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                print(f"Locust does not run here, so no Locust figures: {exc}")
                locust = None
        print(f"other load before start: {wait_for_quiet(args.quiet_wait):.0f}% of a core\n")

        print("closed loop, 16 connections:", flush=True)
        makers: dict[str, Callable[[], PeerRun]] = {
            "wrk -t1 -c16": lambda: wrk_closed(url, secs, client_cpus, pids),
            "hey -c 16": lambda: hey_run(url, secs, CLOSED_CONNECTIONS, None, client_cpus, pids),
        }
        if locust:
            makers["Locust FastHttpUser, 16 users, 1 process"] = lambda: locust_run(
                locust,
                workdir,
                server.url,
                CLOSED_CONNECTIONS,
                0.0,
                args.warmup,
                secs,
                client_cpus,
                pids,
            )
        makers["aiohttp, 16 workers"] = lambda: aiohttp_closed(url, secs, pids)
        makers[SATURATED] = lambda: engine_saturated(server.url, replay.path, secs, pids)
        closed = {
            tool: repeat_runs(
                make, args.repeats, label=tool, describe=describe, stop_when_failed=False, **common
            )[0]
            for tool, make in makers.items()
        }

        print("\nopen loop:", flush=True)
        settings = EngineSettings(connections=args.connections)
        ladders: dict[str, Callable[[float], list[Rung]]] = {
            "engine": lambda tool_deadline: ladder(
                server.url,
                replay,
                args.rates,
                repeats=args.repeats,
                duration=args.duration,
                warmup=args.warmup,
                settings=settings,
                server_pids=pids,
                deadline=tool_deadline,
                refine=args.refine,
                label="engine",
                **common,
            ),
            "hey": lambda tool_deadline: climb(
                lambda r: hey_run(
                    url, args.duration, HEY_WORKERS, r / HEY_WORKERS, client_cpus, pids
                ),
                args.rates,
                repeats=args.repeats,
                label="hey",
                describe=describe,
                deadline=tool_deadline,
                refine=args.refine,
                **common,
            ),
            "naive aiohttp": lambda tool_deadline: climb(
                lambda r: naive_open_loop(url, r, args.warmup, args.duration, pids),
                args.rates,
                repeats=args.repeats,
                label="naive aiohttp",
                describe=describe,
                deadline=tool_deadline,
                refine=args.refine,
                **common,
            ),
        }
        if locust:
            ladders["Locust"] = lambda tool_deadline: climb(
                lambda r: locust_run(
                    locust,
                    workdir,
                    server.url,
                    LOCUST_USERS,
                    r / LOCUST_USERS,
                    args.warmup,
                    args.duration,
                    client_cpus,
                    pids,
                ),
                args.rates,
                repeats=args.repeats,
                label="locust",
                describe=describe,
                deadline=tool_deadline,
                refine=args.refine,
                **common,
            )
        open_loop: dict[str, list[Rung]] = {}
        for index, (tool, run_ladder) in enumerate(ladders.items()):
            share = (deadline - time.monotonic()) / (len(ladders) - index)
            open_loop[tool] = run_ladder(time.monotonic() + share)
        engine_rungs = open_loop["engine"]
        hey_rungs = open_loop["hey"]
        naive_rungs = open_loop["naive aiohttp"]
        locust_rungs = open_loop.get("Locust", [])

    print("\n## Closed loop, 16 connections\n")
    rows = []
    for tool, runs in closed.items():
        rung = Rung(math.nan, runs)
        rows.append(
            [
                tool,
                fmt(rung.med("achieved"), 0),
                fmt(rung.med("errors"), 0),
                fmt(rung.med("p50"), 3),
                fmt(rung.med("p99"), 3),
                fmt(rung.med("cpu_us"), 1),
                fmt(rung.med("other_pct"), 0),
                str(len(runs)),
            ]
        )
    print(
        markdown_table(
            [
                "tool",
                "req/s",
                "errors",
                "p50 ms",
                "p99 ms",
                "client CPU µs/req",
                "other CPU %",
                "runs",
            ],
            rows,
        )
    )

    print_ladder("Open loop: our engine (GET)", engine_rungs)
    print("\n## Open loop: hey -z 10s -c 50 -q rate/50\n")
    print(peer_table(hey_rungs, "service time, from hey", False))
    print("\n## Open loop: naive aiohttp (a task per request on a fixed schedule)\n")
    print(peer_table(naive_rungs, "from intended send", True))
    if locust:
        print("\n## Open loop: Locust FastHttpUser, 200 users, constant_throughput\n")
        print(peer_table(locust_rungs, "response time, from Locust", False))
    else:
        print("\nLocust: not installed; no Locust figures.")

    ours = held_rate(engine_rungs)
    print("\n## Ratios (ours / peer, same run)\n")
    ratio_rows = []
    peers_open = [("hey", hey_rungs), ("naive aiohttp", naive_rungs)]
    if locust:
        peers_open.append(("Locust", locust_rungs))
    for name, rungs in peers_open:
        theirs = held_rate(rungs)
        ratio_rows.append(
            [
                f"open loop, highest held: ours vs {name}",
                f"{ours:,.0f}",
                f"{theirs:,.0f}",
                fmt(ours / theirs, 2) if theirs else "∞ (held none)",
            ]
        )
    ours_closed = median([r.achieved for r in closed[SATURATED]])
    for tool, runs in closed.items():
        if tool == SATURATED:
            continue
        theirs = median([r.achieved for r in runs])
        ratio_rows.append(
            [
                f"ours open loop held vs {tool} closed loop",
                f"{ours:,.0f}",
                f"{theirs:,.0f}",
                fmt(ours / theirs, 2),
            ]
        )
        ratio_rows.append(
            [
                f"closed loop: ours saturated vs {tool}",
                f"{ours_closed:,.0f}",
                f"{theirs:,.0f}",
                fmt(ours_closed / theirs, 2),
            ]
        )
    print(markdown_table(["comparison", "ours req/s", "peer req/s", "ratio"], ratio_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
