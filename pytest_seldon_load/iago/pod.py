"""The Iago pod: its manifest (Seldon's ``iago.json`` in today's API), creation, and removal.

Seldon ran Iago from a ReplicationController: one container idling (``sleep infinity``) on a
node labelled ``role=iago``, with the shared ``/seldon-data`` volume, into which a user
``kubectl exec``-ed to start a load. The pod here is the same, made per test session (or an
existing one found by label), and removed at the end if we made it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cluster.kube import ApiError, ClusterError, KubeConnection, call
from ..cluster.portforward import label_selector, ready_pods

DEFAULT_IMAGE = "seldon-load-iago:latest"
"""Built from docker/Dockerfile; Seldon's own Iago image works too (same script, same port)."""
CONTAINER = "iago"
DATA_VOLUME = "seldon-data"
DATA_PATH = "/seldon-data"
ADMIN_PORT = 9994
APP_LABELS = {
    "app.kubernetes.io/name": "seldon-load-iago",
    "app.kubernetes.io/part-of": "seldon-load",
}
HOPELESS_WAITS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CrashLoopBackOff"}
)
"""Container waiting reasons that no amount of waiting fixes."""


def parse_labels(text: str, option: str) -> dict[str, str]:
    """``key=value[,key=value]`` (a node or pod selector option)."""
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{option}: expected key=value[,key=value], got {text!r}")
        labels[key.strip()] = value.strip()
    if not labels:
        raise ValueError(f"{option}: expected key=value[,key=value], got {text!r}")
    return labels


@dataclass(frozen=True)
class IagoPodSpec:
    """What the pod runs and where: image, node selector, data volume (emptyDir or a claim)."""

    image: str = DEFAULT_IMAGE
    namespace: str = "default"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    data_claim: str | None = None
    name_prefix: str = "seldon-load-iago"

    def manifest(self, name: str) -> dict[str, Any]:
        volume: dict[str, Any] = (
            {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": self.data_claim}}
            if self.data_claim
            else {"name": DATA_VOLUME, "emptyDir": {}}
        )
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": CONTAINER,
                    "image": self.image,
                    "command": ["sleep", "infinity"],
                    "ports": [{"name": "admin", "containerPort": ADMIN_PORT}],
                    "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_PATH}],
                }
            ],
            "volumes": [volume],
        }
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": dict(APP_LABELS)},
            "spec": spec,
        }


@dataclass(frozen=True)
class IagoPod:
    """A running Iago pod; `created` says whether we made it (and so remove it)."""

    namespace: str
    name: str
    created: bool

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def _waiting_reasons(pod: Any) -> list[tuple[str, str, str]]:
    reasons = []
    for status in (pod.status.container_statuses or []) if pod.status else []:
        waiting = status.state.waiting if status.state else None
        if waiting is not None and waiting.reason:
            reasons.append((status.name, waiting.reason, waiting.message or ""))
    return reasons


def _describe(pod: Any) -> str:
    phase = (pod.status.phase if pod.status else None) or "(no status yet)"
    parts = [f"phase {phase}"]
    for container, reason, message in _waiting_reasons(pod):
        detail = f" ({message})" if message else ""
        parts.append(f"container {container} waiting: {reason}{detail}")
    for condition in (pod.status.conditions or []) if pod.status else []:
        if condition.status != "True" and (condition.reason or condition.message):
            text = f"{condition.type}: {condition.reason or ''} {condition.message or ''}"
            parts.append(text.strip())
    return "; ".join(parts)


def create_pod(
    connection: KubeConnection,
    spec: IagoPodSpec,
    *,
    timeout: float,
    poll_interval: float = 1.0,
) -> IagoPod:
    """Create the pod and wait until it runs; on failure, remove it and say why."""
    name = f"{spec.name_prefix}-{secrets.token_hex(3)}"
    call(
        connection,
        f"creating the Iago pod {spec.namespace}/{name}",
        connection.core.create_namespaced_pod,
        spec.namespace,
        spec.manifest(name),
    )
    pod = IagoPod(spec.namespace, name, created=True)
    try:
        wait_running(
            connection, pod, timeout=timeout, poll_interval=poll_interval, image=spec.image
        )
    except BaseException:
        delete_pod(connection, pod)
        raise
    return pod


def wait_running(
    connection: KubeConnection,
    pod: IagoPod,
    *,
    timeout: float,
    poll_interval: float = 1.0,
    image: str = "",
) -> None:
    deadline = time.monotonic() + timeout
    max_polls = int(timeout / max(poll_interval, 0.01)) + 2
    body = None
    for _ in range(max_polls):
        body = call(
            connection,
            f"reading the Iago pod {pod.ref}",
            connection.core.read_namespaced_pod,
            pod.name,
            pod.namespace,
        )
        phase = body.status.phase if body.status else None
        if phase == "Running":
            return
        if phase in ("Failed", "Succeeded"):
            raise ClusterError(f"Iago pod {pod.ref} ended before any load: {_describe(body)}")
        hopeless = [r for r in _waiting_reasons(body) if r[1] in HOPELESS_WAITS]
        if hopeless:
            raise ClusterError(
                f"Iago pod {pod.ref} cannot start: {_describe(body)}"
                + (f"; image {image} (--iago-image)" if image else "")
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(poll_interval, remaining))
    hint = f"; image {image} (--iago-image)" if image else ""
    raise ClusterError(
        f"Iago pod {pod.ref} was not Running within {timeout:g}s: "
        f"{_describe(body) if body is not None else 'never read'}{hint}"
    )


def find_pod(connection: KubeConnection, namespace: str, selector: Mapping[str, str]) -> IagoPod:
    """An existing running pod with these labels (deploy/iago.yaml's, say); never removed."""
    pods = ready_pods(connection, namespace, selector)
    if not pods:
        raise ClusterError(
            f"--iago-pod-selector: no running pod matches {label_selector(selector)} in "
            f"namespace {namespace!r}"
        )
    return IagoPod(namespace, pods[0].metadata.name, created=False)


def delete_pod(connection: KubeConnection, pod: IagoPod) -> None:
    """Remove a pod we created (a pod found by label is left alone)."""
    if not pod.created:
        return
    try:
        call(
            connection,
            f"deleting the Iago pod {pod.ref}",
            connection.core.delete_namespaced_pod,
            pod.name,
            pod.namespace,
            grace_period_seconds=0,
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
