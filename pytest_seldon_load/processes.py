"""A run split over worker processes: one Python process sends a few thousand requests a
second at most, N processes send N times that.

Process j of N runs the embedded engine on part ``part + j * parts`` of ``parts * N`` of the
same seeded schedule (see `EngineSettings.part`), with its own event loop and connection pool.
Every process loads and connects first, then all start their schedules together (one event),
so their per-second windows line up. Each sends back its full result (HDR histograms and
windows included) and `merge.merge_results` adds them exactly.

Ctrl-C or SIGTERM stops every process: each keeps what it measured, and the merged partial
result is raised in `RunInterrupted`, as for one process. Processes are started with
"spawn" (never fork: the parent may be a pytest session with threads of its own).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .interrupts import RunInterrupted, terminate_as_interrupt
from .merge import merge_results
from .result import LoadResult

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

    from .endpoint import SeldonEndpoint
    from .plan import RunPlan
    from .replay import ReplayFile

START_TIMEOUT_S = 60.0
"""How long the processes may take to start and load before the run is given up."""
ALREADY_STOPPING_S = 1.0
"""How long stopping processes get to report before they are asked to stop."""
STOP_GRACE_S = 10.0
"""After a stop, how long a process may take to hand in its partial result."""


class ProcessFailed(RuntimeError):
    """A worker process died or failed; the message names it and why."""


def part_plans(plan: RunPlan) -> list[RunPlan]:
    """The plan of each of `plan.processes` processes: every one a slice of `plan`'s part."""
    count = plan.processes
    settings = plan.settings
    return [
        replace(
            plan,
            processes=1,
            settings=replace(
                settings,
                part=settings.part + index * settings.parts,
                parts=settings.parts * count,
            ),
        )
        for index in range(count)
    ]


def _endpoint_fields(endpoint: SeldonEndpoint) -> dict[str, Any]:
    """What makes the endpoint again in a worker (its own fields; its header mapping is
    read-only and does not pickle)."""
    return {
        "base_url": endpoint.base_url,
        "protocol": endpoint.protocol,
        "model": endpoint.model,
        "headers": dict(endpoint.headers),
        "name": endpoint.name,
        "infer_path_override": endpoint.infer_path_override,
    }


def _process_main(
    endpoint_fields: dict[str, Any],
    replay: ReplayFile,
    plan: RunPlan,
    index: int,
    messages: multiprocessing.Queue,
    go: Event,
) -> None:
    """One worker: report ready, wait for the common start, run, hand in the result."""
    from .endpoint import SeldonEndpoint
    from .engine import run_load
    from .redact import SECRET_HEADERS, register_secret

    endpoint = SeldonEndpoint(**endpoint_fields)
    for name, value in endpoint.headers.items():
        if name.lower() in SECRET_HEADERS and value:
            register_secret(value)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.default_int_handler)
    try:
        messages.put(("ready", index, None))
        while not go.wait(0.1):
            pass
        try:
            result = run_load(endpoint, replay, plan)
        except RunInterrupted as interrupted:
            result = interrupted.result
        # The run is over: a second Ctrl-C (the parent's, after the terminal's) must not
        # lose what it measured on the way to the parent.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
        messages.put(("result", index, result.to_dict()))
    except KeyboardInterrupt:
        messages.put(("stopped", index, None))
    except BaseException as exc:  # reported to the parent, which names the process
        messages.put(("error", index, f"{type(exc).__name__}: {exc}"))


class _Workers:
    """The running processes and what they have reported so far."""

    def __init__(self, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> None:
        context = multiprocessing.get_context("spawn")
        self.messages: multiprocessing.Queue = context.Queue()
        self.go = context.Event()
        self.plans = part_plans(plan)
        self.processes = [
            context.Process(
                target=_process_main,
                args=(_endpoint_fields(endpoint), replay, each, index, self.messages, self.go),
                name=f"seldon-load-process-{index}",
                daemon=True,
            )
            for index, each in enumerate(self.plans)
        ]
        self.ready: set[int] = set()
        self.results: dict[int, LoadResult] = {}
        self.done: set[int] = set()

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def _receive(self, timeout: float) -> None:
        try:
            kind, index, payload = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        if kind == "ready":
            self.ready.add(index)
            return
        self.done.add(index)
        if kind == "result":
            self.results[index] = LoadResult.from_dict(payload)
        elif kind == "error":
            raise ProcessFailed(f"load process {index} of {len(self.processes)} failed: {payload}")

    def _check_alive(self, what: str) -> None:
        for index, process in enumerate(self.processes):
            if index not in self.done and not process.is_alive():
                # Its last message may still be in the queue: read before judging.
                self._receive(0.5)
                if index not in self.done:
                    raise ProcessFailed(
                        f"load process {index} of {len(self.processes)} exited "
                        f"(code {process.exitcode}) {what}"
                    )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(self.ready) < len(self.processes):
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{len(self.processes) - len(self.ready)} load process(es) did not start "
                    f"within {START_TIMEOUT_S:g}s"
                )
            self._receive(0.2)
            self._check_alive("before the run started")
        self.go.set()

    def wait_results(self, deadline: float) -> None:
        while len(self.done) < len(self.processes) and time.monotonic() < deadline:
            self._receive(0.2)
            self._check_alive("during the run")
        if len(self.done) < len(self.processes):
            missing = sorted(set(range(len(self.processes))) - self.done)
            raise ProcessFailed(f"load process(es) {missing} gave no result in time")

    def stop(self) -> None:
        """Ask every running process to stop (as Ctrl-C would) and keep its partial result."""
        # A Ctrl-C at the terminal reaches the whole process group: processes that got it are
        # already stopping, and a second signal could cut their report short. Ask only those
        # still silent after a moment.
        with contextlib.suppress(ProcessFailed):
            self.wait_results(time.monotonic() + ALREADY_STOPPING_S)
        for index, process in enumerate(self.processes):
            if index not in self.done and process.pid is not None and process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGINT)
        with contextlib.suppress(ProcessFailed):
            self.wait_results(time.monotonic() + STOP_GRACE_S)

    def close(self) -> None:
        """Let finished processes exit by themselves (they flush their queue first); end
        the others."""
        for index, process in enumerate(self.processes):
            if process.pid is None:  # never started
                continue
            process.join(5.0 if index in self.done else 0.0)
            if process.is_alive():
                process.terminate()
                process.join(5)
        self.messages.close()

    def merged(self, interrupted: bool = False) -> LoadResult:
        if not self.results:
            raise ProcessFailed("no load process handed in a result")
        merged = merge_results(self.results[i] for i in sorted(self.results))
        merged.processes = len(self.processes)
        merged.interrupted = merged.interrupted or interrupted
        return merged


def run_in_processes(endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> LoadResult:
    """Run `plan` split over `plan.processes` processes; one merged result
    (`result.processes == plan.processes`). Raises `RunInterrupted` with the merged partial
    result on Ctrl-C or SIGTERM, `ProcessFailed` when a process dies."""
    workers = _Workers(endpoint, replay, plan)
    try:
        with terminate_as_interrupt():
            try:
                workers.start()
                workers.wait_ready()
                workers.wait_results(time.monotonic() + plan.total + plan.settings.timeout + 30.0)
            except KeyboardInterrupt:
                workers.stop()
                if not workers.results:  # stopped before any process measured: say so
                    raise RunInterrupted(plan.stopped_before_start(endpoint)) from None
                raise RunInterrupted(workers.merged(interrupted=True)) from None
    finally:
        workers.close()
    return workers.merged()
