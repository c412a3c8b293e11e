"""How close `find_capacity` comes to a server's known capacity, how long it takes, and how
much CPU the host stole meanwhile.

The server (its own process, 127.0.0.1) has `--slots` concurrent slots, each answer holding
one for `--service-ms`: it serves slots / service time requests a second and queues the rest.
Each search steps from `--start`, doubling, then halves the gap to `--resolution`. The
server's real capacity is slightly lower than the nominal one (timers overshoot on a busy
machine), so it is also computed from the service time measured at the gentlest stage.

    .venv/bin/python benchmarks/capacity_search.py --repeats 3       # ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import web

from pytest_seldon_load import SeldonEndpoint, find_capacity, write_replay
from pytest_seldon_load.protocols import v2_request

BODY = b'{"model_name":"iris","outputs":[{"name":"p","shape":[1],"datatype":"INT64","data":[0]}]}'


def _serve(port: int, slots: int, service_s: float) -> None:
    async def main() -> None:
        gate = asyncio.Semaphore(slots)

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            async with gate:
                await asyncio.sleep(service_s)
            return web.Response(body=BODY, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the server on port {port} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--service-ms", type=float, default=40.0)
    parser.add_argument("--budget", default="80ms", help="p99 budget of each stage")
    parser.add_argument("--start", type=float, default=25.0)
    parser.add_argument("--stage", default="2s")
    parser.add_argument("--resolution", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    nominal = args.slots / (args.service_ms / 1000.0)
    port = _free_port()
    server = multiprocessing.Process(
        target=_serve, args=(port, args.slots, args.service_ms / 1000.0), daemon=True
    )
    server.start()
    try:
        _wait_for(port)
        with tempfile.TemporaryDirectory() as scratch:
            replay = write_replay(
                Path(scratch) / "r.txt", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])]
            )
            print(
                f"python {platform.python_version()} on {platform.machine()}, "
                f"{multiprocessing.cpu_count()} CPUs; server: {args.slots} slots x "
                f"{args.service_ms:g} ms = {nominal:g}/s nominal; p99 budget {args.budget}, "
                f"stages {args.stage}, resolution {args.resolution:.0%}"
            )
            print("repeat  found/s  first bad/s  measured cap/s  stages  seconds  max steal")
            found_rates = []
            for repeat in range(1, args.repeats + 1):
                began = time.perf_counter()
                capacity = find_capacity(
                    SeldonEndpoint(f"http://127.0.0.1:{port}"),
                    replay,
                    {"p99": args.budget},
                    start=args.start,
                    max_rate=nominal * 4,
                    stage=args.stage,
                    resolution=args.resolution,
                )
                took = time.perf_counter() - began
                gentle = capacity.stages[0].result
                assert gentle is not None
                measured = args.slots / (gentle.service_percentile(50) / 1000.0)
                steals = [
                    s.result.health.steal_fraction
                    for s in capacity.stages
                    if s.result is not None and s.result.health.steal_fraction is not None
                ]
                steal = f"{max(steals):.1%}" if steals else "n/a"
                first_bad = f"{capacity.first_bad:g}" if capacity.first_bad else "-"
                print(
                    f"{repeat:>6}  {capacity.rate or 0:>7g}  {first_bad:>11}  {measured:>14.1f}"
                    f"  {len(capacity.stages):>6}  {took:>7.1f}  {steal:>9}"
                )
                found_rates.append(capacity.rate or 0.0)
            print(
                f"median found {statistics.median(found_rates):g}/s "
                f"({statistics.median(found_rates) / nominal:.0%} of nominal)"
            )
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
