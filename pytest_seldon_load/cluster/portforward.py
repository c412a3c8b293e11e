"""Port-forwarding, as ``kubectl port-forward svc/NAME``: a loopback port piped to a pod port.

A Service is resolved to one ready pod behind it and the pod's container port; the forwarder
listens on 127.0.0.1 and pipes each accepted connection through its own transport stream, for
as long as it is held open (a session, for a deployment's URL; one run, for Iago's stats).
Like kubectl's, it stays on the pod it chose: a pod that goes away ends the forwarding.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Mapping
from typing import Any

from .kube import ApiError, ClusterError, KubeConnection, call
from .transport import PodStream, PodTransport

MAX_CONNECTIONS = 256
"""Connections piped at once; one more is refused (a load test uses its pool size, 64)."""
IO_TIMEOUT_S = 30.0
"""A side that does not take bytes for this long ends its pipe."""
ACCEPT_POLL_S = 0.25
CHUNK = 64 * 1024


class PortForwarder:
    """Listens on 127.0.0.1 and pipes every connection to `pod`:`port` through `transport`."""

    def __init__(
        self,
        transport: PodTransport,
        namespace: str,
        pod: str,
        port: int,
        *,
        connect_timeout: float = 10.0,
    ) -> None:
        self.transport = transport
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self.connect_timeout = connect_timeout
        self.failures: list[str] = []
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._accepting: threading.Thread | None = None
        self._pipes: set[threading.Thread] = set()
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    @property
    def local_port(self) -> int:
        if self._listener is None:
            raise RuntimeError("PortForwarder: local_port is known after start()")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def start(self) -> PortForwarder:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL_S)
        self._listener = listener
        self._accepting = threading.Thread(
            target=self._accept_loop,
            name=f"port-forward {self.namespace}/{self.pod}:{self.port}",
            daemon=True,
        )
        self._accepting.start()
        return self

    def close(self) -> None:
        """Stop listening and end every pipe; returns within a few seconds."""
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._accepting is not None:
            self._accepting.join(5.0)
        with self._lock:
            open_ends, pipes = list(self._open), list(self._pipes)
        for end in open_ends:
            with contextlib.suppress(OSError):
                end.close()
        for pipe in pipes:
            pipe.join(2.0)

    def __enter__(self) -> PortForwarder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                crowded = len(self._pipes) >= MAX_CONNECTIONS
            if crowded:
                client.close()
                continue
            pipe = threading.Thread(target=self._pipe, args=(client,), daemon=True)
            with self._lock:
                self._pipes.add(pipe)
            pipe.start()

    def _pipe(self, client: socket.socket) -> None:
        remote: PodStream | None = None
        try:
            client.settimeout(IO_TIMEOUT_S)
            try:
                remote = self.transport.connect(
                    self.namespace, self.pod, self.port, timeout=self.connect_timeout
                )
            except ClusterError as exc:
                self.failures.append(str(exc))
                return
            settimeout = getattr(remote, "settimeout", None)
            if settimeout is not None:
                settimeout(IO_TIMEOUT_S)
            with self._lock:
                self._open.update((client, remote))
            self._shuttle(client, remote)
        finally:
            for end in (client, remote):
                if end is not None:
                    with contextlib.suppress(OSError):
                        end.close()
            with self._lock:
                self._open.discard(client)
                self._open.discard(remote)
                self._pipes.discard(threading.current_thread())

    def _shuttle(self, client: socket.socket, remote: PodStream) -> None:
        """Copy bytes both ways until either side ends (HTTP needs no half-close)."""
        peer = {client.fileno(): (client, remote), remote.fileno(): (remote, client)}
        with selectors.DefaultSelector() as selector:
            selector.register(client.fileno(), selectors.EVENT_READ)
            selector.register(remote.fileno(), selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=0.5):
                    source, sink = peer[key.fd]
                    try:
                        data = source.recv(CHUNK)
                        if not data:
                            return
                        sink.sendall(data)
                    except OSError:
                        return


def _matches(labels: Mapping[str, str] | None, selector: Mapping[str, str]) -> bool:
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())


def label_selector(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


def ready_pods(connection: KubeConnection, namespace: str, selector: Mapping[str, str]) -> list:
    """Running, not terminating pods matching every label (checked here too), ready ones first."""
    listing = call(
        connection,
        f"listing pods {label_selector(selector)} in {namespace}",
        connection.core.list_namespaced_pod,
        namespace,
        label_selector=label_selector(selector),
    )
    items: list[Any] = list(listing.items)
    pods = [
        pod
        for pod in items
        if _matches(pod.metadata.labels, selector)
        and pod.metadata.deletion_timestamp is None
        and pod.status is not None
        and pod.status.phase == "Running"
    ]

    def ready(pod: Any) -> bool:
        conditions = pod.status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    return sorted(pods, key=lambda pod: (not ready(pod), pod.metadata.name))


def service_target(
    connection: KubeConnection, namespace: str, service: str, port: int
) -> tuple[str, int]:
    """The pod behind `service` and the container port its `port` leads to."""
    what = f"Service {namespace}/{service}"
    try:
        body = call(
            connection,
            f"reading {what}",
            connection.core.read_namespaced_service,
            service,
            namespace,
        )
    except ApiError as exc:
        if exc.status == 404:
            raise ClusterError(f"port-forward: there is no {what}") from None
        raise
    spec: Any = body.spec
    selector = dict(spec.selector or {}) if spec else {}
    if not selector:
        raise ClusterError(f"port-forward: {what} has no spec.selector (no pods to forward to)")
    ports = list(spec.ports or [])
    chosen = (
        next((p for p in ports if p.port == port), None)
        or next((p for p in ports if p.name == "http"), None)
        or (ports[0] if ports else None)
    )
    if chosen is None:
        raise ClusterError(f"port-forward: {what} declares no spec.ports")
    pods = ready_pods(connection, namespace, selector)
    if not pods:
        raise ClusterError(
            f"port-forward: no running pod matches {what}'s selector {label_selector(selector)}"
        )
    pod = pods[0]
    target = chosen.target_port if chosen.target_port is not None else chosen.port
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return pod.metadata.name, int(target)
    for container in pod.spec.containers or []:
        for container_port in container.ports or []:
            if container_port.name == target:
                return pod.metadata.name, int(container_port.container_port)
    raise ClusterError(
        f"port-forward: {what} targets port {target!r}, which no container of pod "
        f"{namespace}/{pod.metadata.name} names"
    )
