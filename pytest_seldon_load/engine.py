"""The embedded engine: an open-loop load generator on asyncio (uvloop when installed).

Open loop means the schedule, not the server, decides when a request goes out: a slow
response never delays the next send. Every request is timed twice:

* latency, from its INTENDED send time to the response (corrected for coordinated omission,
  as wrk2 does): what a client arriving on schedule would have waited;
* service time, from the actual send to the response: what the server alone took.

In-flight requests are bounded (by default, by the connection pool). A request due while the
bound is reached waits on the schedule and its latency grows honestly. The generator watches
its own punctuality: a send that leaves later than `lag_threshold_ms` after it could have
(after its intended time, or after a slot freed up) is "late", and a run with too many late
sends is flagged as not having kept up: its latencies hold the generator's delay, not only the
server's. A send is judged from the later of its intended time and the moment the slot it
takes became free (slots are taken oldest-freed first): a backlog behind a stalled server is
not the generator's delay, but a generator too busy to use the slots it has is late. A loop
that is busy nearly all the time reads answers late and fills the pool itself, so the
thread's CPU time over the sending period is measured too (`GeneratorHealth.saturated`).

A schedule can be split across processes: process `part` of `parts` takes every parts-th slot
of the same seeded schedule and replay, and `LoadResult.merge` adds the parts exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from .endpoint import SeldonEndpoint
from .host_steal import StealMeter
from .interrupts import STOP_SIGNALS, RunInterrupted, on_main_thread, signal_handlers_restored
from .pacer import Pacer
from .plan import EngineSettings, RunPlan
from .redact import redact_url
from .replay import ReplayFile
from .result import LoadResult, Recorder
from .transport import Transport

if TYPE_CHECKING:
    from .engines import EngineContext


Companion = Callable[["ActiveRun"], contextlib.AbstractAsyncContextManager]


@contextlib.asynccontextmanager
async def while_running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` as a task for as long as the block runs, and cancel it after: the shape of a
    companion that watches the run from its loop (the progress line, the error-rate abort)."""
    task = asyncio.ensure_future(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


CACHE_REPLAY_BYTES = 16 * 1024 * 1024
"""Replays up to this size are prepared once and looped from memory; larger ones stream."""
EARLY_SEND_S = 0.0005
"""A send due within this much is sent now: event-loop timers round to whole milliseconds."""


def _replay_cycle(transport: Transport, replay: ReplayFile) -> Iterator[Any]:
    """Each request of the replay as the transport's ready-to-send payload, forever (Iago's
    reuseFile)."""
    prepare = transport.prepare
    if replay.size_bytes(up_to=CACHE_REPLAY_BYTES) <= CACHE_REPLAY_BYTES:
        prepared = [prepare(r) for r in replay.requests(reuse=False)]
        while True:
            yield from prepared
    for request in replay.requests(reuse=True):
        yield prepare(request)


class ActiveRun:
    """One run's state, shared by the dispatcher and the request callbacks.

    A companion (see `run_load`) may read, from the run's own event loop: `recorder` (the
    live counts and histograms), `pacer`, `warmup`, `settings`, `start` (the perf_counter
    origin of the schedule), `scheduled`, `in_flight`; and call `stop()`.
    """

    def __init__(
        self,
        endpoint: SeldonEndpoint,
        replay: ReplayFile,
        pacer: Pacer,
        warmup: float,
        settings: EngineSettings,
    ) -> None:
        self.endpoint = endpoint
        self._judge = endpoint.speaks.judge  # bound once: called for every answer
        self.replay = replay
        self.pacer = pacer
        self.warmup = warmup
        self.settings = settings
        self.recorder = Recorder(warmup)
        self.recorder.health.lag_threshold_ms = settings.lag_threshold_ms
        self.recorder.health.late_fraction_allowed = settings.late_fraction_allowed
        self.recorder.health.busy_fraction_allowed = settings.busy_fraction_allowed
        self.in_flight = 0
        self.slot_waiter: asyncio.Future | None = None
        # When each free slot became free (perf_counter), oldest first: one entry per slot
        # not in flight, so a send takes the oldest and a completion adds its own time.
        self.free_slots: deque[float] = deque([0.0] * settings.in_flight_bound)
        self._busy_since: tuple[float, float] | None = None  # (thread CPU, wall) while sending
        self.scheduled = 0
        self.start = 0.0
        self.started_at = 0.0
        self.stopped_at: float | None = None
        self.interrupted = False
        self.drained: asyncio.Future | None = None
        self.retries = 0

    async def run(self, companion: Companion | None = None) -> None:
        self.pool = self.endpoint.speaks.transport(self.endpoint, self.settings)
        if hasattr(self.pool, "on_retry"):  # a transport that resends on stale connections
            self.pool.on_retry = self._on_retry
        async with companion(self) if companion else contextlib.nullcontext():
            dispatcher = self._dispatcher = asyncio.ensure_future(self._dispatch())
            self._busy_since = (time.thread_time(), time.perf_counter())
            steal = StealMeter()
            steal.start()
            try:
                await dispatcher
            except asyncio.CancelledError:
                if not self.interrupted:
                    raise
            except BaseException:  # a replay line the transport refuses, say: let go, then raise
                self.pool.close("cancelled")
                await self.pool.wait_closed()
                raise
            finally:
                self.recorder.health.busy_fraction = self.busy_fraction()
                self.recorder.health.steal_fraction = steal.stop()
                self._busy_since = None  # the sending period is over: the figure stays
            await self._drain()

    def busy_fraction(self) -> float:
        """Share of the sending period so far that this thread spent on a CPU (call it from
        the run's own loop: a companion may, for a live figure)."""
        if self._busy_since is None:
            return self.recorder.health.busy_fraction
        began_cpu, began = self._busy_since
        elapsed = time.perf_counter() - began
        return min(1.0, (time.thread_time() - began_cpu) / elapsed) if elapsed > 0 else 0.0

    def stop(self) -> None:
        """Stop sending now; keep everything measured so far (the result says interrupted)."""
        self.interrupt()

    def interrupt(self) -> None:
        """Stop sending now; keep everything measured so far."""
        if not self.interrupted:
            self.interrupted = True
            self.stopped_at = time.perf_counter()
            self._dispatcher.cancel()

    async def _drain(self) -> None:
        """Wait for in-flight requests (each ends by its own timeout), then close the pool
        and wait for it to let go (a gRPC channel closes on the loop).

        Interrupted, it does not wait: what is still in flight ends as `interrupted_in_flight`
        (see `_on_done`).
        """
        if self.in_flight and not self.interrupted:
            self.drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drained, self.settings.timeout + 2.0)
        self.pool.close("interrupted" if self.interrupted else "cancelled")
        await self.pool.wait_closed()

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        perf = time.perf_counter
        recorder = self.recorder
        settings = self.settings
        bound = settings.in_flight_bound
        part, parts = settings.part, settings.parts
        pool = self.pool
        submit = pool.submit
        on_done = self._on_done
        requests = _replay_cycle(pool, self.replay)
        warmup = self.warmup
        self.start = start = perf() + 0.01
        self.started_at = time.time() + 0.01
        send_deadline = start + self.pacer.duration + settings.timeout
        slot = -1
        free_slots = self.free_slots
        chunks = self.pacer.offsets()
        for chunk in chunks:
            offsets = chunk.tolist()
            for index, offset in enumerate(offsets):
                slot += 1
                request = next(requests)
                if slot % parts != part:
                    continue
                if offset >= warmup:
                    self.scheduled += 1
                intended = start + offset
                now = perf()
                while intended - now > EARLY_SEND_S:
                    await asyncio.sleep(intended - now)
                    now = perf()
                while True:
                    if now >= send_deadline:
                        self._count_unsent(offset, offsets[index + 1 :], chunks, slot, now)
                        return
                    if self.in_flight < bound:
                        break
                    waiter = self.slot_waiter = loop.create_future()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(waiter, send_deadline - now)
                    self.slot_waiter = None
                    now = perf()
                freed = free_slots.popleft() if free_slots else intended
                free_since = freed if freed > intended else intended
                recorder.sent(offset, now - start, max(0.0, now - free_since))
                self.in_flight += 1
                submit(request, on_done, offset)

    def _count_unsent(
        self, first: float, rest: list[float], chunks: Iterator, slot: int, now: float
    ) -> None:
        """The send deadline passed with the pool still full: the rest of the schedule is lost."""
        recorder, warmup, deadline = self.recorder, self.warmup, now - self.start
        part, parts = self.settings.part, self.settings.parts

        def mine() -> Iterator[float]:
            position = slot
            yield first
            for offset in rest:
                position += 1
                if position % parts == part:
                    yield offset
            for chunk in chunks:
                for offset in chunk.tolist():
                    position += 1
                    if position % parts == part:
                        yield offset

        for index, offset in enumerate(mine()):
            if offset >= warmup:
                if index:
                    self.scheduled += 1
                recorder.never_sent(offset, deadline)

    def _on_done(
        self,
        offset: float,
        status: int | None,
        body: bytes,
        error: str | None,
        written_at: float,
        done_at: float,
    ) -> None:
        start = self.start
        # A transport reports a status whenever it reports no error.
        kind = error if error is not None else self._judge(status, body)  # type: ignore[arg-type]
        if kind == "interrupted":
            self._unanswered_at_interrupt(offset, written_at, done_at)
        else:
            self.recorder.completed(offset, written_at - start, done_at - start, status, kind, body)
        self.in_flight -= 1
        self.free_slots.append(done_at)
        waiter = self.slot_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.in_flight == 0 and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _unanswered_at_interrupt(self, offset: float, written_at: float, done_at: float) -> None:
        """A request still waiting at the interrupt: its latency is at least its wait so far.

        One on the wire counts as sent and unanswered (`interrupted_in_flight`), its waits so
        far as latency and service time; one still queued for a connection never left, and
        counts as unsent with its wait so far. Dropping either would hide a stalled server.
        """
        start = self.start
        if written_at < done_at:
            self.recorder.completed(
                offset, written_at - start, done_at - start, None, "interrupted_in_flight"
            )
        else:
            self.recorder.withdrawn(offset)
            self.recorder.never_sent(offset, done_at - start)

    def _on_retry(self, offset: float) -> None:
        if offset >= self.warmup:
            self.retries += 1

    def result(self, **info: Any) -> LoadResult:
        duration = self.pacer.duration - self.warmup
        if self.interrupted and self.stopped_at is not None:
            duration = max(0.0, min(duration, self.stopped_at - self.start - self.warmup))
        return self.recorder.result(
            target_rate=self.pacer.profile.rate / self.settings.parts,
            duration=duration,
            scheduled=self.scheduled,
            engine="embedded",
            corrected=True,
            interrupted=self.interrupted,
            target=redact_url(self.endpoint.base_url),
            arrival=self.pacer.arrival,
            seed=self.pacer.seed,
            retries=self.retries,
            started_at=self.started_at,
            protocol=self.endpoint.protocol,
            warmup=self.warmup,
            connections=self.settings.connections,
            **info,
        )


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (less CPU per request), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_with_frozen_heap(run: ActiveRun, companion: Companion | None) -> None:
    # The host process (a pytest session) may hold millions of long-lived objects: a full
    # collection over them stalls the loop for tens of milliseconds. Frozen, they are not
    # traversed; what the run itself allocates is still collected.
    gc.freeze()
    try:
        _run_in_new_loop(run, companion)
    finally:
        gc.unfreeze()


def _run_in_new_loop(run: ActiveRun, companion: Companion | None) -> None:
    """Run on a loop of its own; Ctrl-C and SIGTERM stop the run (see `interrupts`)."""
    loop = _new_event_loop()
    with signal_handlers_restored():
        handled = STOP_SIGNALS if on_main_thread() else ()
        try:
            for number in handled:
                loop.add_signal_handler(number, run.interrupt)
            loop.run_until_complete(run.run(companion))
        finally:
            for number in handled:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(number)
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def run_load(
    endpoint: SeldonEndpoint,
    replay: ReplayFile,
    plan: RunPlan | None = None,
    *,
    companion: Companion | None = None,
    **options: Any,
) -> LoadResult:
    """Replay `replay` against `endpoint` as `plan` says, or as `options` say (the `RunPlan`
    fields: ``rate=200, duration="20s", warmup=5, ..., settings=EngineSettings(...)``).

    Blocks until done. Safe to call from inside a running event loop (it then runs in a
    thread of its own). Ctrl-C or SIGTERM stops the run and raises `RunInterrupted` carrying
    the partial result. `companion(run)` is an async context manager entered on the run's
    event loop before the first send and left after the last answer: a live view of the
    `ActiveRun` (an admin port serving its stats, say).
    """
    if plan is None:
        plan = RunPlan(**options)
    elif options:
        raise TypeError(f"run_load: give a plan or its options, not both ({', '.join(options)})")
    if plan.processes > 1:  # each process has its own loop: no companion can follow them all
        from .processes import run_in_processes

        return run_in_processes(endpoint, replay, plan)
    pacer = Pacer(
        plan.arrival,
        plan.rate,
        plan.total,
        ramp=plan.ramp,
        ramp_from=plan.ramp_from,
        seed=plan.seed,
    )
    run = ActiveRun(endpoint, replay, pacer, plan.warmup, plan.settings)
    try:
        asyncio.get_running_loop()
        inside_loop = True
    except RuntimeError:
        inside_loop = False
    if inside_loop:
        errors: list[BaseException] = []

        def target() -> None:
            try:
                _run_with_frozen_heap(run, companion)
            except BaseException as exc:  # handed to the caller's thread below
                errors.append(exc)

        thread = threading.Thread(target=target, name="seldon-load-engine", daemon=True)
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
    else:
        _run_with_frozen_heap(run, companion)
    result = run.result(label=plan.label)
    if run.interrupted:
        raise RunInterrupted(result)
    return result


class EmbeddedEngine:
    """The ``embedded`` engine: `run_load` in this process (see `engines`)."""

    name = "embedded"

    def __init__(self, context: EngineContext | None = None) -> None:
        self.context = context

    def run(self, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> LoadResult:
        companion = self.context.companion if self.context is not None else None
        return run_load(endpoint, replay, plan, companion=companion)
