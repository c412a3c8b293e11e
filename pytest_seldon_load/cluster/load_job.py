"""A load sent by Kubernetes itself: an Indexed Job of N load pods, one merged result.

Pod i of the Job runs ``seldon-load run --part i --parts N`` with the same seed, replay and
plan, so the pods send disjoint slices of one schedule (see `EngineSettings.part`). Each pod
prints its full result (HDR histograms and per-second windows) between marker lines
(`pod_result`); the pods' logs are read once they have finished and the results are merged
exactly (`merge.merge_results`), so budgets and baselines judge the whole load.

The replay travels gzip-compressed in a ConfigMap mounted into every pod (the pods read it
as it is): a ConfigMap holds at most 1 MiB, so replays up to `MAX_CONFIGMAP_REPLAY_BYTES`
compressed are supported (JSON lines compress several times over); a larger one is refused
with that limit named (put it on a volume and use ``seldon-load run`` in your own Job).

The Job, its pods and the ConfigMap are deleted when the run ends, fails or is interrupted
(Ctrl-C, SIGTERM). Secret headers are refused: a Job's spec is not a secret store.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from ..endpoint import SeldonEndpoint
from ..interrupts import RunInterrupted, terminate_as_interrupt
from ..merge import merge_results
from ..plan import RunPlan
from ..pod_result import result_from_log
from ..redact import SECRET_HEADERS, redact_url
from ..replay import ReplayFile
from ..result import LoadResult
from .kube import ApiError, ClusterError, KubeConnection, call

DEFAULT_IMAGE = "seldon-load-iago:latest"
"""The image of docker/Dockerfile, which has ``seldon-load`` on its path."""
MAX_CONFIGMAP_REPLAY_BYTES = 900 * 1024
"""A ConfigMap holds 1 MiB in all: the replay gets this much of it."""
REPLAY_DIR = "/etc/seldon-load/replay"
REPLAY_KEY = "requests.replay.gz"
PART_VARIABLE = "SELDON_LOAD_PART"
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_LABEL = "job-name"
APP_LABELS = {"app.kubernetes.io/name": "seldon-load", "app.kubernetes.io/component": "load-pod"}
FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class LoadJobSettings:
    """How the Job is made: `pods` load pods of `image` in `namespace`; how long they may
    take to start (image pulls included) and how often their state is read."""

    pods: int = 3
    image: str = DEFAULT_IMAGE
    namespace: str = "default"
    startup_timeout: float = 300.0
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.pods, bool) or not isinstance(self.pods, int) or self.pods < 1:
            raise ValueError(
                f"--load-pods: must be a whole number of at least 1, got {self.pods!r}"
            )
        if not self.image:
            raise ValueError("--load-image: must name an image")


def _seconds(value: float) -> str:
    return f"{value!r}s"


def pod_arguments(target: str, endpoint: SeldonEndpoint, plan: RunPlan, pods: int) -> list[str]:
    """``seldon-load run`` arguments of every pod; the part comes from the pod's index."""
    secret = sorted(name for name in endpoint.headers if name.lower() in SECRET_HEADERS)
    if secret:
        raise ClusterError(
            f"the kubernetes engine cannot carry the secret header(s) {', '.join(secret)} into "
            f"its pods (a Job's spec is not a secret store); target an address that needs none"
        )
    if endpoint.infer_path_override:
        raise ClusterError(
            "the kubernetes engine sends the replay's own paths; an endpoint with its own "
            "prediction path (a pipeline) needs a replay written for that path"
        )
    settings = plan.settings
    if settings.parts > 1:
        raise ClusterError("the kubernetes engine splits the schedule itself: give no part")
    arguments = [
        "run",
        "--url",
        target,
        "--replay",
        f"{REPLAY_DIR}/{REPLAY_KEY}",
        "--rate",
        repr(plan.rate),
        "--duration",
        _seconds(plan.duration),
        "--warmup",
        _seconds(plan.warmup),
        "--arrival",
        plan.arrival,
        "--seed",
        str(plan.seed),
        "--protocol",
        endpoint.protocol,
        "--model",
        endpoint.model,
        "--connections",
        str(settings.connections),
        "--timeout",
        _seconds(settings.timeout),
        "--processes",
        str(plan.processes),
        "--part",
        f"$({PART_VARIABLE})",
        "--parts",
        str(pods),
        "--no-progress",
        "--result-to-stdout",
    ]
    if plan.ramp is not None:
        arguments += ["--ramp", _seconds(plan.ramp)]
    if plan.ramp_from is not None:
        arguments += ["--ramp-from", repr(plan.ramp_from)]
    for name, value in endpoint.headers.items():
        arguments += ["--header", f"{name}:{value}"]
    return arguments


def manifests(
    name: str, settings: LoadJobSettings, arguments: list[str], replay_gzip: str, deadline_s: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ConfigMap holding the replay and the Indexed Job whose pods send the load."""
    labels = {**APP_LABELS, "app.kubernetes.io/instance": name}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "binaryData": {REPLAY_KEY: replay_gzip},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": settings.pods,
            "parallelism": settings.pods,
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline_s,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "load",
                            "image": settings.image,
                            # A locally built image loaded into the nodes (kind) is used as is.
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["seldon-load"],
                            "args": arguments,
                            "env": [
                                {
                                    "name": PART_VARIABLE,
                                    "valueFrom": {"fieldRef": {"fieldPath": INDEX_FIELD}},
                                }
                            ],
                            "volumeMounts": [
                                {"name": "replay", "mountPath": REPLAY_DIR, "readOnly": True}
                            ],
                        }
                    ],
                    "volumes": [{"name": "replay", "configMap": {"name": name}}],
                },
            },
        },
    }
    return config_map, job


def _replay_gzip(replay: ReplayFile) -> str:
    """The replay gzip-compressed, base64 as a ConfigMap's binaryData holds it; compressed as
    it is read, and refused as soon as it is past the limit (a huge replay is never held)."""
    limit = MAX_CONFIGMAP_REPLAY_BYTES

    def refused(size: str) -> ClusterError:
        return ClusterError(
            f"{replay.path}: {size} bytes gzip-compressed; the kubernetes engine carries "
            f"replays of up to {limit} bytes compressed (a ConfigMap holds 1 MiB)"
        )

    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=9, mtime=0) as writer:
        for chunk in replay.chunks():
            writer.write(chunk)
            if packed.tell() > limit:
                raise refused(f"over {limit}")
    if packed.tell() > limit:
        raise refused(str(packed.tell()))
    return base64.b64encode(packed.getvalue()).decode("ascii")


class LoadJob:
    """One run as a Job: made, waited for, collected, and always deleted."""

    def __init__(self, connection: KubeConnection, settings: LoadJobSettings) -> None:
        self.connection = connection
        self.settings = settings
        self.name = f"seldon-load-{secrets.token_hex(4)}"

    @property
    def batch(self) -> k8s.BatchV1Api:
        return k8s.BatchV1Api(self.connection.api)

    def pods(self) -> list[Any]:
        """This Job's pods in index order (the selector is checked here too)."""
        listed: list[Any] = call(
            self.connection,
            f"listing the pods of Job {self.name}",
            self.connection.core.list_namespaced_pod,
            self.settings.namespace,
            label_selector=f"{JOB_LABEL}={self.name}",
        ).items
        mine = [p for p in listed if (p.metadata.labels or {}).get(JOB_LABEL) == self.name]
        return sorted(mine, key=_index)

    def run(
        self, endpoint: SeldonEndpoint, target: str, replay: ReplayFile, plan: RunPlan
    ) -> LoadResult:
        if plan.seed is None:  # every pod must draw the same schedule
            plan = _with_seed(plan, secrets.randbelow(2**31))
        arguments = pod_arguments(target, endpoint, plan, self.settings.pods)
        patience = self.settings.startup_timeout + plan.total + plan.settings.timeout + 60.0
        config_map, job = manifests(
            self.name, self.settings, arguments, _replay_gzip(replay), int(patience) + 60
        )
        with terminate_as_interrupt(), self._removed_at_end():
            try:
                self._create(config_map, job)
                self._wait(time.monotonic() + patience)
                results = [self._result(pod) for pod in self.pods()]
            except KeyboardInterrupt:
                stopped = plan.stopped_before_start(endpoint, engine="kubernetes")
                stopped.processes = self.settings.pods
                raise RunInterrupted(stopped) from None
        merged = merge_results(results)
        merged.engine = "kubernetes"
        merged.label = plan.label
        merged.target = redact_url(endpoint.base_url)
        return merged

    def _create(self, config_map: dict[str, Any], job: dict[str, Any]) -> None:
        namespace = self.settings.namespace
        call(
            self.connection,
            f"creating ConfigMap {namespace}/{self.name} (the replay)",
            self.connection.core.create_namespaced_config_map,
            namespace,
            config_map,
        )
        call(
            self.connection,
            f"creating Job {namespace}/{self.name}",
            self.batch.create_namespaced_job,
            namespace,
            job,
        )

    def _wait(self, deadline: float) -> None:
        """Until every pod has finished; a failed pod fails the run with its log's tail."""
        while True:
            pods = self.pods()
            for pod in pods:
                if _phase(pod) == "Failed":
                    raise ClusterError(
                        f"load pod {pod.metadata.name} of Job {self.name} failed: "
                        f"{self._log_tail(pod)}"
                    )
            done = [p for p in pods if _phase(p) in FINISHED]
            if len(done) == self.settings.pods:
                return
            if time.monotonic() > deadline:
                states = ", ".join(f"{p.metadata.name}: {_phase(p) or 'Pending'}" for p in pods)
                raise ClusterError(
                    f"Job {self.name}: {len(done)} of {self.settings.pods} load pods finished in "
                    f"time ({states or 'no pods were made'})"
                )
            time.sleep(self.settings.poll_interval)

    def _log(self, pod: Any) -> str:
        return call(
            self.connection,
            f"reading the log of load pod {pod.metadata.name}",
            self.connection.core.read_namespaced_pod_log,
            pod.metadata.name,
            self.settings.namespace,
            container="load",
        )

    def _log_tail(self, pod: Any, lines: int = 10) -> str:
        try:
            text = self._log(pod)
        except ClusterError as exc:
            return f"(no log: {exc})"
        return redact_url(" | ".join(text.strip().splitlines()[-lines:])) or "(empty log)"

    def _result(self, pod: Any) -> LoadResult:
        try:
            return result_from_log(self._log(pod), f"load pod {pod.metadata.name}")
        except ValueError as exc:
            raise ClusterError(str(exc)) from None

    @contextlib.contextmanager
    def _removed_at_end(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.delete()

    def delete(self) -> None:
        """Remove the Job, its pods and the ConfigMap (what is already gone is fine)."""
        namespace = self.settings.namespace
        removals: list[tuple[str, Any, str, dict[str, Any]]] = [
            (
                f"deleting Job {self.name}",
                self.batch.delete_namespaced_job,
                self.name,
                {"propagation_policy": "Background"},
            ),
        ]
        with contextlib.suppress(ClusterError):
            for pod in self.pods():
                removals.append(
                    (
                        f"deleting load pod {pod.metadata.name}",
                        self.connection.core.delete_namespaced_pod,
                        pod.metadata.name,
                        {"grace_period_seconds": 0},
                    )
                )
        removals.append(
            (
                f"deleting ConfigMap {self.name}",
                self.connection.core.delete_namespaced_config_map,
                self.name,
                {},
            )
        )
        for what, method, name, options in removals:
            try:
                call(self.connection, what, method, name, namespace, **options)
            except ApiError as exc:
                if exc.status != 404:
                    raise


def _with_seed(plan: RunPlan, seed: int) -> RunPlan:
    from dataclasses import replace

    return replace(plan, seed=seed)


def _phase(pod: Any) -> str:
    return (pod.status.phase if pod.status is not None else None) or ""


def _index(pod: Any) -> int:
    annotations = pod.metadata.annotations or {}
    labels = pod.metadata.labels or {}
    text = annotations.get(INDEX_ANNOTATION) or labels.get(INDEX_ANNOTATION) or "0"
    return int(text) if text.isdigit() else 0
