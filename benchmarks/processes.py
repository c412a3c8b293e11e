"""One engine process against two (``processes=2``), in one run, against one loopback server.

Open loop: a rising ladder of rates; for each, the achieved rate, whether the generator kept
up, and the p99, with 1 and with 2 processes. Closed loop: a rate far above what anything here
can send, bounded by 16 connections in flight per run, so each run sends as fast as answers
come back: the ok/s is the closed-loop throughput.

The server is a small aiohttp app (uvloop when installed) in a process of its own, answering
any POST with a V2 body. On a two-core machine the server competes with the generator for
CPU: the figures say how far splitting helps when the generator, not the server, is what
runs out of CPU.

    .venv/bin/python benchmarks/processes.py                  # ~1 min
    .venv/bin/python benchmarks/processes.py --rates 1k,2k,4k --duration 3
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import fmt, markdown_table, other_load, print_machine

from pytest_seldon_load import EngineSettings, SeldonEndpoint, run_load
from pytest_seldon_load.replay import ReplayRequest, write_replay

BODY = (
    b'{"model_name":"iris","outputs":[{"name":"predict","shape":[1],'
    b'"datatype":"INT64","data":[0]}]}'
)


def _serve(port: int) -> None:
    import asyncio

    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=BODY, content_type="application/json")

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    asyncio.run(_run(app, port))


async def _run(app: Any, port: int) -> None:
    import asyncio

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server() -> Iterator[str]:
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,))
    process.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(5)


def _rates(text: str) -> list[float]:
    return [float(x[:-1]) * 1000 if x.endswith("k") else float(x) for x in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rates", type=_rates, default=_rates("1k,2k,3k,4k"))
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--closed-connections", type=int, default=16)
    args = parser.parse_args()
    print_machine("processes=1 against processes=2")
    directory = Path(tempfile.mkdtemp())
    replay = write_replay(
        directory / "iris.replay",
        [ReplayRequest("POST", "/v2/models/iris/infer", (), b'{"inputs":[]}')],
    )
    with server() as url:
        endpoint = SeldonEndpoint(url, "v2", "iris")
        run_load(endpoint, replay, rate=200, duration=1)  # connections, imports, caches
        open_rows = []
        for rate in args.rates:
            row = [f"{rate:g}"]
            for processes in (1, 2):
                busy = other_load(0.5)
                result = run_load(
                    endpoint,
                    replay,
                    rate=rate,
                    duration=args.duration,
                    seed=1,
                    processes=processes,
                    settings=EngineSettings(connections=64),
                )
                row += [
                    fmt(result.achieved_rate, 0),
                    "yes" if result.kept_up and not result.errors else "no",
                    fmt(result.p99, 1),
                    fmt(busy, 0),
                ]
            open_rows.append(row)
        print("## Open loop (achieved req/s, generator kept up, p99 ms, other CPU % before)")
        print()
        print(
            markdown_table(
                [
                    "target/s",
                    "1 proc: req/s",
                    "kept up",
                    "p99 ms",
                    "other %",
                    "2 procs: req/s",
                    "kept up",
                    "p99 ms",
                    "other %",
                ],
                open_rows,
            )
        )
        print()
        closed_rows = []
        for processes in (1, 2):
            connections = args.closed_connections // processes
            busy = other_load(0.5)
            result = run_load(
                endpoint,
                replay,
                rate=50_000,
                duration=args.duration,
                seed=1,
                processes=processes,
                settings=EngineSettings(connections=connections),
            )
            closed_rows.append(
                [
                    str(processes),
                    f"{processes} × {connections}",
                    fmt(result.throughput, 0),
                    fmt(result.service_percentile(99), 1),
                    fmt(busy, 0),
                ]
            )
        print(f"## Closed loop ({args.closed_connections} connections in all)")
        print()
        print(
            markdown_table(
                ["processes", "connections", "ok/s", "service p99 ms", "other %"], closed_rows
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
