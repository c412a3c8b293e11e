"""Resident memory of a long run's record, time-compressed through the real Recorder.

A soak run keeps one window per second for its whole length. This feeds the Recorder the
sends and completions of an N-minute run at a given rate (lognormal latencies around 5 ms,
answers in completion order, as the engine reports them) as fast as the CPU allows, and
prints the process's resident memory after 1, 10 and 60 minutes of run time, then the
size of the record itself (packed window histograms) and the time to read its timeline and
per-window statistics.

    python benchmarks/soak_memory.py --rate 1000 --minutes 60
    python benchmarks/soak_memory.py --rate 4000 --minutes 60

Each second is fed with numpy-made times, so the run's cost is the Recorder's own.

    python benchmarks/soak_memory.py --short-run

measures instead the peak resident memory of a real one-second ``seldon-load run`` at
20 req/s against a loopback server (a separate process, so nothing here is counted), and
which heavy modules importing the command line loads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from pytest_seldon_load.regression import window_values
from pytest_seldon_load.result import Recorder

CHECKPOINTS_MIN = (1, 10, 60)


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * 4096 / 1e6


def feed_second(recorder: Recorder, second: int, rate: int, rng: np.random.Generator) -> None:
    intended = second + np.arange(rate) / rate
    done = intended + rng.lognormal(math.log(0.005), 0.5, rate)
    send = recorder.sent
    for t in intended.tolist():
        send(t, t, 0.0)
    complete = recorder.completed
    order = np.argsort(done, kind="stable")
    for t, d in zip(intended[order].tolist(), done[order].tolist(), strict=True):
        complete(t, t, d, 200, None)


HEAVY = ("scipy", "kubernetes", "aiohttp", "pytest", "requests", "yaml")
V2_ANSWER = json.dumps(
    {
        "model_name": "iris",
        "outputs": [{"name": "p", "shape": [1], "datatype": "FP32", "data": [0.5]}],
    }
).encode()


PEAK_WRAPPER = """
import atexit, runpy, sys

def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    print("peak-kB", kb, file=sys.stderr)

atexit.register(peak)
sys.argv = ["seldon-load", *sys.argv[1:]]
runpy.run_module("pytest_seldon_load.cli", run_name="__main__")
"""
"""`seldon-load` as the console script runs it, printing its own peak resident memory
(VmHWM, which an exec starts afresh; getrusage's children figure counts the forked parent)."""


def serve_loopback() -> int:
    """A V2-answering server on 127.0.0.1 in a thread; returns its port."""
    from aiohttp import web

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ready = threading.Event()

    def serve() -> None:
        loop = asyncio.new_event_loop()

        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=V2_ANSWER, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(10)
    return sock.getsockname()[1]


def short_run() -> None:
    check = (
        "import sys, pytest_seldon_load.cli; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"heavy modules loaded by importing the command line: {loaded or 'none'}")
    port = serve_loopback()
    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp) / "replay.log"
        body = json.dumps(
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        )
        replay.write_text(f"POST /v2/models/iris/infer {body}\n")
        command = [sys.executable, "-c", PEAK_WRAPPER, "run"]
        command += ["--url", f"http://127.0.0.1:{port}", "--replay", str(replay)]
        command += ["--rate", "20", "--duration", "1s", "--seed", "1"]
        began = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        took = time.perf_counter() - began
    if done.returncode:
        print(done.stdout + done.stderr)
        raise SystemExit(f"seldon-load run failed with exit code {done.returncode}")
    peak_mb = int(done.stderr.rsplit("peak-kB ", 1)[1].split()[0]) / 1024
    print(f"one-second run at 20 req/s: peak resident {peak_mb:.1f} MB, {took:.1f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="requests per second")
    parser.add_argument("--minutes", type=int, default=60, help="run time to simulate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--short-run", action="store_true", help="measure a short real run")
    args = parser.parse_args()
    if args.short_run:
        short_run()
        return

    rng = np.random.default_rng(args.seed)
    recorder = Recorder(warmup=0.0)
    start_mb = resident_mb()
    print(f"rate {args.rate}/s, {args.minutes} min; resident before the run {start_mb:.1f} MB")
    began = time.process_time()
    checkpoints = {m * 60 for m in CHECKPOINTS_MIN if m <= args.minutes}
    for second in range(args.minutes * 60):
        feed_second(recorder, second, args.rate, rng)
        if second + 1 in checkpoints:
            mb = resident_mb()
            print(
                f"after {(second + 1) // 60:3d} min: resident {mb:6.1f} MB "
                f"(+{mb - start_mb:5.1f} MB), cpu {time.process_time() - began:6.1f} s",
                flush=True,
            )
    seconds = args.minutes * 60
    result = recorder.result(target_rate=args.rate, duration=seconds, scheduled=args.rate * seconds)
    packed = sum(w.size for w in result.windows)
    print(
        f"record: {len(result.windows)} windows, packed histograms {packed / 1e6:.2f} MB "
        f"({packed / len(result.windows) / 1024:.2f} kB a second)"
    )
    began = time.perf_counter()
    timeline = result.timeline
    p99 = window_values(result, "p99")
    print(
        f"timeline ({len(timeline)} seconds) and per-window p99 ({p99.size} windows) read in "
        f"{time.perf_counter() - began:.1f} s; resident now {resident_mb():.1f} MB"
    )


if __name__ == "__main__":
    main()
