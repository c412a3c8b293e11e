"""The ``iago`` engine: the same replay, sent by an Iago pod in the cluster instead of this process.

One run: upload the replay into the pod, start ``start-load-test.sh <replay> <rate>`` there,
read the admin port's ``/stats.json`` through a port-forward every few seconds (the
timeline) for warm-up + duration, then stop the load and remove the upload. The result is
summary-only (see `stats.SummaryLoadResult`). Whatever happens (a failure, Ctrl-C, SIGTERM),
the load is stopped and the upload removed; the pod, if we made it, goes at the end of the
session. `IagoEngine` puts the session's runner behind the `engines.Engine` interface.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..cluster.kube import ClusterError, KubeConnection
from ..cluster.pod_target import pod_target_url
from ..cluster.portforward import PortForwarder
from ..cluster.transport import PodTransport
from ..endpoint import SeldonEndpoint
from ..engines import EngineContext, EngineUnavailable
from ..interrupts import RunInterrupted, terminate_as_interrupt
from ..plan import RunPlan
from ..redact import SECRET_HEADERS, redact_url
from ..replay import ReplayFile
from .control import log_tail, process_alive, remove_run_dir, start_load, stop_load, upload_replay
from .pod import (
    ADMIN_PORT,
    DATA_PATH,
    DEFAULT_IMAGE,
    IagoPod,
    IagoPodSpec,
    create_pod,
    delete_pod,
    find_pod,
)
from .scraper import StatsScraper, StatsUnavailable
from .stats import OstrichStats, SummaryLoadResult, poll_entry, result_from_stats

FAILED_POLLS_ALLOWED = 3
"""Consecutive unanswered stats polls before the run is declared lost."""
POD_LIFETIME_MARGIN_S = 120.0
"""The pod's load stops by itself this long after our run should have ended (if we vanish)."""


class ClusterAccess(Protocol):
    """What the engine needs of `seldon_cluster`."""

    connection: KubeConnection
    transport: PodTransport

    def in_cluster_url(self, endpoint: SeldonEndpoint) -> str | None: ...


@dataclass(frozen=True)
class IagoSettings:
    """The ``--iago-*`` options."""

    image: str = DEFAULT_IMAGE
    namespace: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    pod_selector: Mapping[str, str] | None = None
    data_claim: str | None = None
    workdir: str = DATA_PATH
    admin_port: int = ADMIN_PORT
    target: str | None = None
    ramp: float = 240.0
    poll_interval: float = 5.0
    startup_timeout: float = 120.0
    stop_grace: float = 5.0

    def __post_init__(self) -> None:
        if not self.poll_interval > 0:
            raise ValueError(f"--iago-poll must be positive, got {self.poll_interval!r}")
        if not self.startup_timeout > 0:
            raise ValueError(
                f"--iago-startup-timeout must be positive, got {self.startup_timeout!r}"
            )
        if not self.workdir.startswith("/") or self.workdir.rstrip("/") == "":
            raise ValueError(
                f"--iago-workdir must be an absolute directory other than /, got {self.workdir!r}"
            )


class IagoRunner:
    """The session's Iago pod and the runs made with it (the ``iago`` fixture)."""

    def __init__(self, cluster: ClusterAccess, settings: IagoSettings | None = None) -> None:
        self.cluster = cluster
        self.settings = settings or IagoSettings()
        self.namespace = self.settings.namespace or cluster.connection.namespace
        self._pod: IagoPod | None = None

    @property
    def transport(self) -> PodTransport:
        return self.cluster.transport

    def pod(self) -> IagoPod:
        """The pod: found by --iago-pod-selector, or created (once per session)."""
        if self._pod is None:
            settings = self.settings
            if settings.pod_selector:
                self._pod = find_pod(self.cluster.connection, self.namespace, settings.pod_selector)
            else:
                spec = IagoPodSpec(
                    image=settings.image,
                    namespace=self.namespace,
                    node_selector=dict(settings.node_selector),
                    data_claim=settings.data_claim,
                )
                self._pod = create_pod(
                    self.cluster.connection,
                    spec,
                    timeout=settings.startup_timeout,
                    poll_interval=min(1.0, settings.poll_interval),
                )
        return self._pod

    def close(self) -> None:
        """Remove the pod if this runner made it."""
        pod, self._pod = self._pod, None
        if pod is not None:
            delete_pod(self.cluster.connection, pod)

    def target_url(self, endpoint: SeldonEndpoint) -> str:
        """The endpoint as the pod sees it: --iago-target, the cluster's own address for a
        deployment it resolved, or the endpoint's URL when it is not this machine's loopback."""
        if self.settings.target:
            return self.settings.target.rstrip("/")
        return pod_target_url(
            endpoint,
            self.cluster.in_cluster_url(endpoint),
            pods_here=self.transport.runs_on_this_host,
            sender="the iago engine sends from a pod",
            remedy="give --iago-target URL (the target as the pod sees it), or take the "
            "endpoint from seldon_cluster.deployment(...)",
        )

    def _environment(
        self, endpoint: SeldonEndpoint, target: str, plan: RunPlan, *, total: float
    ) -> dict[str, str]:
        secret = sorted(name for name in endpoint.headers if name.lower() in SECRET_HEADERS)
        if secret:
            raise ClusterError(
                f"the iago engine cannot carry the secret header(s) {', '.join(secret)} into the "
                f"pod (a command line is not a secret store); target an address that needs none"
            )
        settings = plan.settings
        env = {
            "SELDON_LOAD_URL": target,
            "SELDON_LOAD_PROTOCOL": endpoint.protocol,
            "SELDON_LOAD_MODEL": endpoint.model,
            "SELDON_LOAD_ARRIVAL": plan.arrival,
            "SELDON_LOAD_DURATION": f"{math.ceil(total + POD_LIFETIME_MARGIN_S)}s",
            "SELDON_LOAD_CONNECTIONS": str(settings.connections),
            "SELDON_LOAD_TIMEOUT": f"{settings.timeout:g}s",
        }
        if plan.ramp is not None:
            env["SELDON_LOAD_RAMP"] = f"{plan.ramp:g}s"
        elif plan.arrival == "slow-start-poisson":
            env["SELDON_LOAD_RAMP"] = f"{self.settings.ramp:g}s"
        if plan.ramp_from is not None:
            env["SELDON_LOAD_RAMP_FROM"] = f"{plan.ramp_from:g}"
        if plan.seed is not None:
            env["SELDON_LOAD_SEED"] = str(plan.seed)
        if endpoint.headers:
            env["SELDON_LOAD_HEADERS"] = "\n".join(f"{k}:{v}" for k, v in endpoint.headers.items())
        return env

    def run(self, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> SummaryLoadResult:
        """One load through the pod; Ctrl-C or SIGTERM raises RunInterrupted with what was
        measured (the load is stopped and the upload removed either way)."""
        target = self.target_url(endpoint)
        env = self._environment(
            endpoint, target, plan, total=plan.total + self.settings.startup_timeout
        )
        pod = self.pod()
        run_dir = f"{self.settings.workdir.rstrip('/')}/seldon-load-{secrets.token_hex(4)}"
        info: dict[str, Any] = {
            "label": plan.label,
            "target": redact_url(target),
            "arrival": plan.arrival,
            "seed": plan.seed,
            "protocol": endpoint.protocol,
        }
        pid: int | None = None
        with terminate_as_interrupt():
            try:
                remote_replay = upload_replay(self.transport, pod, run_dir, replay.path)
                pid = start_load(self.transport, pod, run_dir, remote_replay, plan.rate, env)
                info["started_at"] = time.time()
                with PortForwarder(
                    self.transport, pod.namespace, pod.name, self.settings.admin_port
                ) as forward:
                    scraper = StatsScraper(forward.url)
                    try:
                        return _Measurement(self, pod, pid, run_dir, scraper).measure(
                            rate=plan.rate, duration=plan.duration, warmup=plan.warmup, info=info
                        )
                    finally:
                        scraper.shutdown()
                        scraper.close()
            finally:
                try:
                    if pid is not None:
                        stop_load(self.transport, pod, pid, grace=self.settings.stop_grace)
                finally:
                    remove_run_dir(self.transport, pod, run_dir)


NEEDS_A_SESSION = (
    "the iago engine sends from a pod in the cluster, made and removed by a pytest session "
    "(pytest --load-engine=iago --seldon-kubeconfig=...); {caller} has no such session: use "
    "the embedded engine, or run seldon-load run inside the pod (docker/start-load-test.sh)"
)


class IagoEngine:
    """The ``iago`` engine: each run goes through the session's `IagoRunner` (the pytest
    fixture ``iago``, whose pod is made on first use and removed with the session)."""

    name = "iago"

    def __init__(self, context: EngineContext) -> None:
        if context.resources is None:
            raise EngineUnavailable(NEEDS_A_SESSION.format(caller=context.caller))
        self.context = context

    def run(self, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> SummaryLoadResult:
        if endpoint.protocol == "grpc":
            raise EngineUnavailable(
                f"the iago engine sends HTTP only; {endpoint.name or endpoint.base_url} speaks "
                "gRPC: use the embedded engine (--load-engine embedded)"
            )
        runner: IagoRunner = self.context.resource("iago", engine=self.name)
        return runner.run(endpoint, replay, plan)


class _Measurement:
    """Polling one run's stats from its start to its end."""

    def __init__(
        self, runner: IagoRunner, pod: IagoPod, pid: int, run_dir: str, scraper: StatsScraper
    ) -> None:
        self.runner = runner
        self.pod = pod
        self.pid = pid
        self.run_dir = run_dir
        self.scraper = scraper

    def _lost(self, why: str) -> ClusterError:
        tail = log_tail(self.runner.transport, self.pod, self.run_dir)
        return ClusterError(
            f"the load in pod {self.pod.ref} (admin port {self.runner.settings.admin_port}) "
            f"{why}\nlast lines of its log:\n{tail}"
        )

    def _first_stats(self) -> OstrichStats:
        """Wait for the admin port to answer (a JVM takes seconds); fail if the load died."""
        settings = self.runner.settings
        deadline = time.monotonic() + settings.startup_timeout
        pause = min(0.5, settings.poll_interval)
        for _ in range(int(settings.startup_timeout / pause) + 2):
            try:
                return self.scraper.stats()
            except StatsUnavailable:
                pass
            if not process_alive(self.runner.transport, self.pod, self.pid):
                raise self._lost("exited before its admin port answered")
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
        raise self._lost(f"did not answer on its admin port within {settings.startup_timeout:g}s")

    def _poll(self) -> OstrichStats | None:
        try:
            return self.scraper.stats()
        except StatsUnavailable:
            return None

    def measure(
        self, *, rate: float, duration: float, warmup: float, info: dict[str, Any]
    ) -> SummaryLoadResult:
        poll = self.runner.settings.poll_interval
        info = {**info, "target_rate": rate, "warmup": warmup}  # the result's, as asked
        first = self._first_stats()
        began = time.monotonic()
        measured_from = began + warmup
        end = measured_from + duration
        baseline: OstrichStats | None = first if warmup == 0 else None
        baseline_at = began if warmup == 0 else None
        previous = last = first
        last_at = began
        polls: list[dict[str, Any]] = []
        misses = 0
        next_poll = began + poll
        try:
            for _ in range(int((warmup + duration) / poll) + 8):
                now = time.monotonic()
                if now >= end:
                    break
                due = min(next_poll, end)
                if baseline is None:
                    due = min(due, measured_from)
                time.sleep(max(0.0, due - now))
                stats = self._poll()
                at = time.monotonic()
                if stats is None:
                    misses += 1
                    if misses >= FAILED_POLLS_ALLOWED:
                        raise self._lost(f"stopped answering ({misses} polls in a row)")
                    next_poll = at + poll
                    continue
                misses = 0
                if baseline is None and at >= measured_from:
                    baseline, baseline_at = stats, at
                elif baseline is not None:
                    polls.append(poll_entry(at - (baseline_at or began), stats, previous))
                previous = last = stats
                last_at = at
                if at >= next_poll:
                    next_poll = at + poll
            time.sleep(max(0.0, end - time.monotonic()))
            final = self._poll() or self._poll()
            if final is None:
                raise self._lost("did not answer the final stats poll")
            final_at = time.monotonic()
        except KeyboardInterrupt:
            # The load still runs until the caller stops it: one more poll keeps what it
            # measured since the last one (a second interrupt gives that up).
            with contextlib.suppress(KeyboardInterrupt):
                stats = self._poll()
                if stats is not None:
                    last, last_at = stats, time.monotonic()
            result = self._result(
                last, baseline, baseline_at, last_at, polls, info, interrupted=True
            )
            raise RunInterrupted(result) from None
        polls.append(poll_entry(final_at - (baseline_at or began), final, previous))
        return self._result(final, baseline, baseline_at, final_at, polls, info)

    def _result(
        self,
        final: OstrichStats,
        baseline: OstrichStats | None,
        baseline_at: float | None,
        final_at: float,
        polls: list[dict[str, Any]],
        info: dict[str, Any],
        *,
        interrupted: bool = False,
    ) -> SummaryLoadResult:
        measured = max(0.0, final_at - baseline_at) if baseline_at is not None else 0.0
        warming = baseline is None
        if warming:
            baseline = final
        result = result_from_stats(
            final,
            baseline=baseline,
            duration=measured,
            polls=polls,
            interrupted=interrupted,
            **info,
        )
        if not final.by_seldon_load:
            result.notes.append(
                "the pod's start-load-test.sh chose the target and arrivals (Seldon's Iago "
                "image: victims seldon-server:80, SlowStartPoisson over 240 s)"
            )
        if warming:
            result.notes.append("interrupted during the warm-up: nothing was measured")
        return result
