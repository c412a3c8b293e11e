"""Which gRPC client costs least CPU per call: candidates against a real MLServer on loopback.

Each candidate sends the same prebuilt ModelInferRequest (4 floats to the iris model) open
loop: grpcio's asyncio API with raw-bytes (de)serializers, grpcio's sync API with `.future()`
callbacks handed to the event loop, grpclib (pure-Python HTTP/2) with a raw-bytes codec, the
project's GrpcTransport alone, and the engine sending through it. The engine's HTTP/1.1 path
(V2 REST inference POST) runs in the same session against the same server, so the figures sit
side by side. Rounds at one rate are interleaved and repeated (medians); then the rate is
climbed for the engine over gRPC and over HTTP. A rate is held when every call was sent within
1% of the target rate and answered OK. The client is pinned to core 0 and MLServer to core 1;
every run reports the server's CPU per call and what other processes used. CPU per call is the
client process's CPU from the first send to the last answer (grpcio's own threads included).

    .venv/bin/python benchmarks/grpc_clients.py [--cpu-rate 100] [--repeats 3] [--seconds 5]
        [--clients aio,sync,grpclib,transport,engine-grpc,http] [--rates 100,150,200,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from bench_common import (
    CpuMeter,
    descendants,
    fmt,
    markdown_table,
    median,
    print_machine,
    wait_for_quiet,
)

from pytest_seldon_load.cluster.local import LocalSeldonServer
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import EngineSettings, run_load
from pytest_seldon_load.oip_grpc import MODEL_INFER, grpc_request, prepare
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.replay import ReplayFile, write_replay

FEATURES = [[5.1, 3.5, 1.4, 0.2]]
TIMEOUT_S = 5.0
HELD_TOLERANCE = 0.01
IN_FLIGHT = 2000
"""The engine's in-flight bound here: high, as the other candidates have none."""


@dataclass
class Figures:
    client: str
    rate: float
    sent_rate: float
    ok: int
    errors: int
    cpu_us: float
    kinds: str = ""

    @property
    def held(self) -> bool:
        return self.errors == 0 and self.sent_rate >= self.rate * (1 - HELD_TOLERANCE)


class Tally:
    """Counts answers; `finished` resolves when every sent call has one."""

    def __init__(self) -> None:
        self.ok = self.errors = self.sent = 0
        self.kinds: Counter[str] = Counter()
        self.all_sent = False
        self.done = threading.Event()

    def answer(self, failure: str | None) -> None:
        if failure is None:
            self.ok += 1
        else:
            self.errors += 1
            self.kinds[failure] += 1
        if self.all_sent and self.ok + self.errors >= self.sent:
            self.done.set()

    def close(self) -> None:
        self.all_sent = True
        if self.ok + self.errors >= self.sent:
            self.done.set()


async def pace_async(rate: float, seconds: float, send: Callable[[], None], tally: Tally) -> float:
    """Open loop on the event loop: each call at its own time, never waiting for answers."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.01
    sent_in_time = 0
    for index in range(total):
        intended = start + index / rate
        delay = intended - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        send()
        tally.sent += 1
        if time.perf_counter() < start + seconds:
            sent_in_time += 1
    tally.close()
    return sent_in_time / seconds


async def wait_answers(tally: Tally) -> None:
    deadline = time.monotonic() + TIMEOUT_S + 2
    while not tally.done.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def run_grpc_aio(target: str, message: bytes, metadata, rate: float, seconds: float) -> Figures:
    import grpc

    async def main() -> tuple[float, Tally]:
        tally = Tally()
        async with grpc.aio.insecure_channel(target) as channel:
            infer = channel.unary_unary(MODEL_INFER)  # no serializers: bytes in, bytes out
            await infer(message, timeout=TIMEOUT_S, metadata=metadata)

            async def call() -> None:
                try:
                    await infer(message, timeout=TIMEOUT_S, metadata=metadata)
                    tally.answer(None)
                except grpc.aio.AioRpcError as exc:
                    tally.answer(exc.code().name)

            loop = asyncio.get_running_loop()
            before = time.process_time()
            sent = await pace_async(rate, seconds, lambda: loop.create_task(call()), tally)
            await wait_answers(tally)
            cpu = time.process_time() - before
        tally.cpu = cpu  # type: ignore[attr-defined]
        return sent, tally

    sent, tally = asyncio.run(main())
    return from_tally("grpc.aio", rate, sent, tally)


def run_grpc_sync_future(
    target: str, message: bytes, metadata, rate: float, seconds: float
) -> Figures:
    """grpcio's sync API: `.future()` calls, answers handed to the event loop as the engine
    would need them (its callbacks run on grpcio's own threads)."""
    import grpc

    async def main() -> tuple[float, Tally]:
        tally = Tally()
        loop = asyncio.get_running_loop()
        with grpc.insecure_channel(target) as channel:
            infer = channel.unary_unary(MODEL_INFER)
            infer(message, timeout=TIMEOUT_S, metadata=metadata)

            def done(future: grpc.Future) -> None:
                code = future.code()
                loop.call_soon_threadsafe(
                    tally.answer, None if code == grpc.StatusCode.OK else code.name
                )

            def send() -> None:
                infer.future(message, timeout=TIMEOUT_S, metadata=metadata).add_done_callback(done)

            before = time.process_time()
            sent = await pace_async(rate, seconds, send, tally)
            await wait_answers(tally)
            tally.cpu = time.process_time() - before  # type: ignore[attr-defined]
        return sent, tally

    sent, tally = asyncio.run(main())
    return from_tally("grpcio sync .future()", rate, sent, tally)


def run_grpclib(target: str, message: bytes, metadata, rate: float, seconds: float) -> Figures:
    from grpclib.client import Channel
    from grpclib.const import Cardinality
    from grpclib.encoding.base import CodecBase
    from grpclib.exceptions import GRPCError

    class RawCodec(CodecBase):
        __content_subtype__ = "proto"

        def encode(self, message, message_type):
            return message

        def decode(self, data, message_type):
            return data

    host, port = target.rsplit(":", 1)

    async def main() -> tuple[float, Tally]:
        tally = Tally()
        channel = Channel(host, int(port), codec=RawCodec())
        from grpclib.client import UnaryUnaryMethod

        infer = UnaryUnaryMethod(channel, MODEL_INFER, bytes, bytes)
        await infer(message, timeout=TIMEOUT_S, metadata=metadata)

        async def call() -> None:
            try:
                await infer(message, timeout=TIMEOUT_S, metadata=metadata)
                tally.answer(None)
            except GRPCError as exc:
                tally.answer(exc.status.name)
            except (OSError, asyncio.TimeoutError) as exc:
                tally.answer(type(exc).__name__)

        loop = asyncio.get_running_loop()
        before = time.process_time()
        sent = await pace_async(rate, seconds, lambda: loop.create_task(call()), tally)
        await wait_answers(tally)
        tally.cpu = time.process_time() - before  # type: ignore[attr-defined]
        channel.close()
        return sent, tally

    del Cardinality
    sent, tally = asyncio.run(main())
    return from_tally("grpclib", rate, sent, tally)


def run_transport(target: str, request, rate: float, seconds: float) -> Figures:
    """The project's own GrpcTransport, driven open loop with its callback contract."""
    from pytest_seldon_load.grpc_transport import GrpcTransport

    async def main() -> tuple[float, Tally]:
        tally = Tally()
        transport = GrpcTransport(f"grpc://{target}", connections=1, timeout=TIMEOUT_S)
        payload = prepare(request)

        def on_done(context, status, body, error, written_at, done_at) -> None:
            tally.answer(error)

        before = time.process_time()
        sent = await pace_async(
            rate, seconds, lambda: transport.submit(payload, on_done, None), tally
        )
        await wait_answers(tally)
        tally.cpu = time.process_time() - before  # type: ignore[attr-defined]
        transport.close("cancelled")
        await transport.wait_closed()
        return sent, tally

    sent, tally = asyncio.run(main())
    return from_tally("GrpcTransport (grpc.aio)", rate, sent, tally)


def run_grpc_engine(grpc_url: str, replay_dir: Path, rate: float, seconds: float) -> Figures:
    """The engine itself, over protocol ``grpc`` (its transport is `GrpcTransport`)."""
    path = replay_dir / "grpc.txt"
    write_replay(path, [grpc_request("iris", FEATURES, datatype="FP64")])
    endpoint = SeldonEndpoint(grpc_url, protocol="grpc", model="iris")
    return engine_figures("engine + GrpcTransport", endpoint, path, rate, seconds)


def run_http_engine(base_url: str, replay_dir: Path, rate: float, seconds: float) -> Figures:
    write_replay(replay_dir / "http.txt", [v2_request("iris", FEATURES)])
    endpoint = SeldonEndpoint(base_url, protocol="v2", model="iris")
    return engine_figures(
        "engine HTTP/1.1 (V2 REST)", endpoint, replay_dir / "http.txt", rate, seconds
    )


def engine_figures(
    client: str, endpoint: SeldonEndpoint, path: Path, rate: float, seconds: float
) -> Figures:
    replay = ReplayFile(path)
    cpu_between: list[float] = []

    @contextlib.asynccontextmanager
    async def sending_period(run: object) -> AsyncIterator[None]:
        """CPU from the first send to the last answer: no loop or channel set-up in it."""
        cpu_between.append(time.process_time())
        yield
        cpu_between.append(time.process_time())

    result = run_load(
        endpoint,
        replay,
        rate=rate,
        duration=seconds,
        settings=EngineSettings(timeout=TIMEOUT_S, max_in_flight=IN_FLIGHT),
        companion=sending_period,
    )
    cpu = cpu_between[1] - cpu_between[0]
    sent = sum(w.sent for w in result.windows if 0 <= w.second < int(seconds)) / int(seconds)
    answered = result.ok + result.errors
    return Figures(
        client,
        rate,
        sent,
        result.ok,
        result.errors,
        cpu / answered * 1e6 if answered else float("nan"),
        ", ".join(f"{k} {n}" for k, n in sorted(result.error_kinds.items())),
    )


def from_tally(client: str, rate: float, sent: float, tally: Tally) -> Figures:
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(tally.kinds.items()))
    return Figures(client, rate, sent, tally.ok, tally.errors, per_call(tally), kinds)


def per_call(tally: Tally) -> float:
    answered = tally.ok + tally.errors
    return tally.cpu / answered * 1e6 if answered else float("nan")  # type: ignore[attr-defined]


def measured(
    run: Callable[[float], Figures], rate: float, server_pids: list[int]
) -> tuple[Figures, float, float]:
    """One run with the machine's CPU accounted: (figures, server µs per call, others' core-%)."""
    with CpuMeter(server_pids) as meter:
        figures = run(rate)
    use = meter.use
    assert use is not None
    answered = figures.ok + figures.errors
    server_us = use.server / answered * 1e6 if answered else float("nan")
    return figures, server_us, use.core_pct(use.other)


def describe(figures: Figures, server_us: float, others: float) -> str:
    return (
        f"{figures.client} {figures.rate:,.0f}/s: sent {figures.sent_rate:,.0f}/s, "
        f"ok {figures.ok}, errors {figures.errors} {figures.kinds}, "
        f"client {figures.cpu_us:,.0f} µs CPU/call, server {server_us:,.0f} µs/call, "
        f"others {others:.0f}% of a core, held {figures.held}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="aio,sync,grpclib,transport,engine-grpc,http")
    parser.add_argument("--cpu-rate", type=float, default=100.0, help="rate of the CPU rounds")
    parser.add_argument("--repeats", type=int, default=3, help="CPU rounds per client")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--climb", default="engine-grpc,http", help="clients whose rate is climbed")
    parser.add_argument("--rates", default="100,150,200,300,400,600,800,1000")
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    options = parser.parse_args()
    chosen = [c for c in options.clients.split(",") if c]
    climbed = [c for c in options.climb.split(",") if c]
    rates = [float(r) for r in options.rates.split(",")]
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {0})
    print_machine("gRPC client choice: CPU per call against MLServer on loopback")
    rounds: dict[str, list[tuple[Figures, float, float]]] = {name: [] for name in chosen}
    ceilings: dict[str, tuple[Figures, float, float] | None] = {}
    with tempfile.TemporaryDirectory() as scratch:
        server = LocalSeldonServer(Path(scratch) / "server")
        server.start()
        assert server.pid is not None
        server_pids = descendants(server.pid)
        if (os.cpu_count() or 1) >= 2:
            for task in os.listdir(f"/proc/{server.pid}/task"):
                os.sched_setaffinity(int(task), {1})
        target = server.grpc_url.removeprefix("grpc://")
        request = grpc_request("iris", FEATURES, datatype="FP64")
        payload = prepare(request)
        message, metadata, seconds = payload.message, payload.metadata, options.seconds
        candidates: dict[str, Callable[[float], Figures]] = {
            "aio": lambda r: run_grpc_aio(target, message, metadata, r, seconds),
            "sync": lambda r: run_grpc_sync_future(target, message, metadata, r, seconds),
            "grpclib": lambda r: run_grpclib(target, message, metadata, r, seconds),
            "transport": lambda r: run_transport(target, request, r, seconds),
            "engine-grpc": lambda r: run_grpc_engine(server.grpc_url, Path(scratch), r, seconds),
            "http": lambda r: run_http_engine(server.base_url, Path(scratch), r, seconds),
        }
        try:
            print(f"CPU rounds at {options.cpu_rate:,.0f}/s, {seconds:g} s each, interleaved:")
            for _ in range(options.repeats):
                for name in list(rounds):
                    wait_for_quiet(options.quiet_wait, probe_s=0.5)
                    try:
                        outcome = measured(candidates[name], options.cpu_rate, server_pids)
                    except ImportError as exc:
                        print(f"  {name}: not installed ({exc})", flush=True)
                        del rounds[name]
                        continue
                    rounds[name].append(outcome)
                    print("  " + describe(*outcome), flush=True)
            print("Highest held rate (one run per rate, rising until one is not held):")
            for name in climbed:
                ceilings[name] = None
                for rate in rates:
                    wait_for_quiet(options.quiet_wait, probe_s=0.5)
                    outcome = measured(candidates[name], rate, server_pids)
                    print("  " + describe(*outcome), flush=True)
                    if not outcome[0].held:
                        break
                    ceilings[name] = outcome
        finally:
            server.stop()
    print()
    print(
        markdown_table(
            [
                "client",
                "held at " + fmt(options.cpu_rate, 0) + "/s",
                "client µs CPU per call (median)",
                "server µs CPU per call",
                "others, % of a core",
            ],
            [
                [
                    runs[0][0].client,
                    f"{sum(f.held for f, _, _ in runs)}/{len(runs)}",
                    fmt(median([f.cpu_us for f, _, _ in runs]), 0),
                    fmt(median([s for _, s, _ in runs]), 0),
                    fmt(median([o for _, _, o in runs]), 0),
                ]
                for runs in rounds.values()
                if runs
            ],
        )
    )
    print()
    print(
        markdown_table(
            ["client", "highest held /s", "client µs CPU per call there", "server µs per call"],
            [
                [
                    name,
                    fmt(top[0].rate, 0) if top else "none",
                    fmt(top[0].cpu_us, 0) if top else "–",
                    fmt(top[1], 0) if top else "–",
                ]
                for name, top in ceilings.items()
            ],
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
