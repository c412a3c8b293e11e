"""The ``seldon_cluster`` fixture's object: Seldon resources as endpoints, and consumer keys.

Each resource kind (a SeldonDeployment of Core 1; a Model, Pipeline or Experiment of Core 2)
says how it is read, waited for and reached (`resources`); this object gives them the ways
out of the cluster: the ingress given by option, else port-forwards held open until `close()`.
Core 2 is reached through its mesh (``svc/seldon-mesh`` port 80, or the ingress in front of
it). Resources made by `apply()` are deleted by `close()`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..consumer_keys import ConsumerKeyError, key_from_json
from ..endpoint import SeldonEndpoint
from ..redact import register_secret
from .kube import ApiError, ClusterError, KubeConnection, call
from .manifest import ManifestObject, read_manifest
from .portforward import PortForwarder, service_target
from .resources import get, parse_target
from .resources.core2 import without_route_pins
from .transport import PodTransport

KEY_SOURCES = ("secret", "configmap")
MESH_SERVICE = "seldon-mesh"
MESH_PORT = 80
"""Core 2's mesh Service and its port (Envoy: REST and gRPC on one port)."""


def parse_key_source(text: str) -> tuple[str, str]:
    """``secret/NAME`` or ``configmap/NAME`` (the --seldon-consumer-keys option)."""
    kind, _, name = text.partition("/")
    if kind.lower() not in KEY_SOURCES or not name:
        raise ValueError(
            f"--seldon-consumer-keys: expected secret/NAME or configmap/NAME, got {text!r}"
        )
    return kind.lower(), name


class SeldonCluster:
    """A Kubernetes cluster running Seldon Core, seen through one connection."""

    def __init__(
        self,
        connection: KubeConnection,
        transport: PodTransport,
        *,
        ingress: str | None = None,
        wait_timeout: float = 300.0,
        poll_interval: float = 1.0,
        consumer_keys: str | None = None,
        mesh_service: str = MESH_SERVICE,
    ) -> None:
        self.connection = connection
        self.transport = transport
        self.ingress = ingress.rstrip("/") if ingress else None
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.consumer_keys = parse_key_source(consumer_keys) if consumer_keys else None
        self.mesh_service = mesh_service
        self._forwards: dict[tuple[str, str, int], PortForwarder] = {}
        self._in_cluster_urls: dict[str, str] = {}
        self._applied: list[ManifestObject] = []

    @property
    def namespace(self) -> str:
        return self.connection.namespace

    def __repr__(self) -> str:
        return f"SeldonCluster({self.connection.where}, namespace={self.namespace!r})"

    # --- resources as endpoints ---------------------------------------------------------
    def deployment(
        self, name: str, namespace: str | None = None, timeout: float | None = None
    ) -> SeldonEndpoint:
        """A Core 1 SeldonDeployment as an endpoint, once its status.state is Available."""
        return self.resource("sdep", name, namespace=namespace, timeout=timeout)

    def model(
        self, name: str, namespace: str | None = None, timeout: float | None = None, **more: Any
    ) -> SeldonEndpoint:
        """A Core 2 Model as an endpoint (through the mesh), once its Ready condition is True;
        `more` as `resource` takes it (``grpc=True``: over the mesh's gRPC)."""
        return self.resource("model", name, namespace=namespace, timeout=timeout, **more)

    def pipeline(
        self, name: str, namespace: str | None = None, timeout: float | None = None, **more: Any
    ) -> SeldonEndpoint:
        """A Core 2 Pipeline as an endpoint (``/v2/pipelines/NAME/infer``), once Ready."""
        return self.resource("pipeline", name, namespace=namespace, timeout=timeout, **more)

    def experiment(
        self, name: str, namespace: str | None = None, timeout: float | None = None, **more: Any
    ) -> SeldonEndpoint:
        """A Core 2 Experiment as an endpoint, once its Ready condition is True."""
        return self.resource("experiment", name, namespace=namespace, timeout=timeout, **more)

    def endpoint_for(
        self, target: str, timeout: float | None = None, *, grpc: bool = False
    ) -> SeldonEndpoint:
        """What ``--seldon-deployment`` names: ``NAME``, ``sdep/NAME``, ``model/NAME``,
        ``pipeline/NAME`` or ``experiment/NAME``."""
        kind, name = parse_target(target)
        return self.resource(kind, name, timeout=timeout, grpc=grpc)

    def resource(
        self,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        grpc: bool = False,
    ) -> SeldonEndpoint:
        """Any registered kind as an endpoint once ready; `headers` go with every request;
        `grpc` reaches it over gRPC (Core 2 kinds, through the mesh's gRPC)."""
        resource_kind = get(kind)
        resource = resource_kind.wait_ready(
            self.connection,
            namespace or self.namespace,
            name,
            timeout=self.wait_timeout if timeout is None else timeout,
            poll_interval=self.poll_interval,
        )
        endpoint, in_cluster = resource_kind.endpoint(resource, self)
        if grpc:
            endpoint, in_cluster = resource_kind.grpc_endpoint(endpoint, in_cluster)
        if headers or endpoint.headers:
            merged = without_route_pins({**endpoint.headers, **(headers or {})})
            endpoint = replace(endpoint, headers=merged)
        self._in_cluster_urls[endpoint.base_url] = in_cluster
        return endpoint

    def in_cluster_url(self, endpoint: SeldonEndpoint) -> str | None:
        """Where a pod in the cluster reaches `endpoint`, if this cluster made it."""
        return self._in_cluster_urls.get(endpoint.base_url)

    # --- the ways out of the cluster (resources.base.Reach) -------------------------------
    def mesh_url(self, namespace: str) -> str:
        if self.ingress:
            return self.ingress
        return self.service_url(namespace, self.mesh_service, MESH_PORT)

    def mesh_in_cluster_url(self, namespace: str) -> str:
        if self.ingress:
            return self.ingress
        return f"http://{self.mesh_service}.{namespace}.svc.cluster.local:{MESH_PORT}"

    def service_url(self, namespace: str, service: str, port: int) -> str:
        key = (namespace, service, port)
        forwarder = self._forwards.get(key)
        if forwarder is None:
            pod, pod_port = service_target(self.connection, namespace, service, port)
            forwarder = PortForwarder(self.transport, namespace, pod, pod_port).start()
            self._forwards[key] = forwarder
        return forwarder.url

    # --- lifecycle -----------------------------------------------------------------------
    def apply(
        self,
        manifest: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]],
        timeout: float | None = None,
    ) -> list[SeldonEndpoint]:
        """Create the manifest's Seldon resources for this session, wait until each is ready,
        and return their endpoints in order. `close()` deletes them (also after a failure)."""
        objects = read_manifest(manifest, self.namespace)
        for item in objects:
            self._create(item)
        return [
            self.resource(
                item.kind.target,
                item.resource.name,
                namespace=item.resource.namespace,
                timeout=timeout,
            )
            for item in objects
        ]

    def _create(self, item: ManifestObject) -> None:
        kind, resource = item.kind, item.resource
        try:
            what = f"{item.where}: creating {resource.ref}"
            kind.objects(
                self.connection, "create", resource.namespace, dict(resource.body), what=what
            )
        except ApiError as exc:
            if exc.status == 409:
                raise ClusterError(
                    f"{item.where}: {resource.ref} already exists; "
                    f"apply() creates resources for the session and deletes them after it: "
                    f"delete it first, or use seldon_cluster.{kind.target}({resource.name!r})"
                ) from None
            raise
        self._applied.append(item)

    def delete_applied(self) -> list[str]:
        """Delete what `apply()` created, newest first; returns the problems met."""
        problems = []
        applied, self._applied = self._applied, []
        for item in reversed(applied):
            kind, resource = item.kind, item.resource
            try:
                what = f"deleting {resource.ref}"
                kind.objects(
                    self.connection, "delete", resource.namespace, resource.name, what=what
                )
            except ApiError as exc:
                if exc.status != 404:
                    problems.append(str(exc))
            except ClusterError as exc:
                problems.append(str(exc))
        return problems

    def consumer_key(self, client: str, namespace: str | None = None) -> str:
        """The legacy seldon-server consumer key of `client`, from the Secret or ConfigMap
        named by --seldon-consumer-keys (an entry per client: the key, or the JSON that
        ``seldon-cli keys`` prints). The key is registered as a secret: reports mask it."""
        if self.consumer_keys is None:
            raise ClusterError(
                "consumer_key: no key store configured; pass --seldon-consumer-keys "
                "secret/NAME or configmap/NAME"
            )
        kind, name = self.consumer_keys
        namespace = namespace or self.namespace
        where = f"{kind} {namespace}/{name}"
        read = (
            self.connection.core.read_namespaced_secret
            if kind == "secret"
            else self.connection.core.read_namespaced_config_map
        )
        try:
            body = call(self.connection, f"reading {where}", read, name, namespace)
        except ApiError as exc:
            if exc.status == 404:
                raise ClusterError(f"--seldon-consumer-keys: there is no {where}") from None
            raise
        data: Mapping[str, str] = getattr(body, "data", None) or {}
        if client not in data:
            raise ClusterError(
                f"--seldon-consumer-keys: {where} has no entry {client!r} "
                f"(entries: {', '.join(sorted(data)) or 'none'})"
            )
        raw = data[client]
        if kind == "secret":
            try:
                raw = base64.b64decode(raw, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise ClusterError(
                    f"--seldon-consumer-keys: entry {client!r} of {where} is not base64 text"
                ) from None
        register_secret(raw.strip())
        try:
            return key_from_json(raw, f"entry {client!r} of {where}")
        except ConsumerKeyError as exc:
            raise ClusterError(f"--seldon-consumer-keys: {exc}") from None

    def close(self) -> None:
        """Delete what `apply()` created and end every port-forward this cluster opened."""
        self.delete_applied()
        forwards, self._forwards = list(self._forwards.values()), {}
        for forwarder in forwards:
            with contextlib.suppress(Exception):
                forwarder.close()
        close_transport = getattr(self.transport, "close", None)
        if close_transport is not None:
            close_transport()
        self.connection.close()
