"""The ``seldon_cluster`` fixture's object: deployments as endpoints, and consumer keys.

A deployment's URL is resolved in order: the ingress given by option (Seldon Core v1 routes
``<ingress>/seldon/<namespace>/<name>``); else ``status.address.url`` when it answers from
this machine; else a port-forward to the predictor's Service, held open until `close()`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping

import requests

from ..consumer_keys import ConsumerKeyError, key_from_json
from ..endpoint import SeldonEndpoint
from ..redact import register_secret
from .kube import ApiError, ClusterError, KubeConnection, call
from .portforward import PortForwarder, service_target
from .seldon import SeldonDeployment, wait_available
from .transport import PodTransport

PROBE_TIMEOUT_S = 2.0
KEY_SOURCES = ("secret", "configmap")


def parse_key_source(text: str) -> tuple[str, str]:
    """``secret/NAME`` or ``configmap/NAME`` (the --seldon-consumer-keys option)."""
    kind, _, name = text.partition("/")
    if kind.lower() not in KEY_SOURCES or not name:
        raise ValueError(
            f"--seldon-consumer-keys: expected secret/NAME or configmap/NAME, got {text!r}"
        )
    return kind.lower(), name


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` from here (any status counts)."""
    try:
        requests.get(url, timeout=PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException:
        return False
    return True


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
    ) -> None:
        self.connection = connection
        self.transport = transport
        self.ingress = ingress.rstrip("/") if ingress else None
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.consumer_keys = parse_key_source(consumer_keys) if consumer_keys else None
        self._forwards: dict[tuple[str, str, int], PortForwarder] = {}
        self._in_cluster_urls: dict[str, str] = {}

    @property
    def namespace(self) -> str:
        return self.connection.namespace

    def __repr__(self) -> str:
        return f"SeldonCluster({self.connection.where}, namespace={self.namespace!r})"

    def deployment(
        self, name: str, namespace: str | None = None, timeout: float | None = None
    ) -> SeldonEndpoint:
        """The deployment as an endpoint, once its status.state is Available."""
        namespace = namespace or self.namespace
        deployment = wait_available(
            self.connection,
            namespace,
            name,
            timeout=self.wait_timeout if timeout is None else timeout,
            poll_interval=self.poll_interval,
        )
        protocol = deployment.protocol  # a spec we cannot speak fails before any forwarding
        endpoint = SeldonEndpoint(
            self._base_url(deployment),
            protocol=protocol,
            model=deployment.model,
            name=f"{namespace}/{name}",
        )
        self._in_cluster_urls[endpoint.base_url] = self._in_cluster_url(deployment)
        return endpoint

    def in_cluster_url(self, endpoint: SeldonEndpoint) -> str | None:
        """Where a pod in the cluster reaches `endpoint`, if this cluster made it."""
        return self._in_cluster_urls.get(endpoint.base_url)

    def _in_cluster_url(self, deployment: SeldonDeployment) -> str:
        if self.ingress:
            return f"{self.ingress}/seldon/{deployment.namespace}/{deployment.name}"
        return deployment.in_cluster_base_url

    def _base_url(self, deployment: SeldonDeployment) -> str:
        if self.ingress:
            return f"{self.ingress}/seldon/{deployment.namespace}/{deployment.name}"
        address = deployment.address_base_url
        if address:
            probe = SeldonEndpoint(address, protocol=deployment.protocol, model=deployment.model)
            if _answers(probe.url_for(probe.ready_path)):
                return address
        service, port = deployment.service
        return self._forward(deployment.namespace, service, port).url

    def _forward(self, namespace: str, service: str, port: int) -> PortForwarder:
        key = (namespace, service, port)
        forwarder = self._forwards.get(key)
        if forwarder is None:
            pod, pod_port = service_target(self.connection, namespace, service, port)
            forwarder = PortForwarder(self.transport, namespace, pod, pod_port).start()
            self._forwards[key] = forwarder
        return forwarder

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
        data: Mapping[str, str] = body.data or {}
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
        """End every port-forward this cluster opened."""
        forwards, self._forwards = list(self._forwards.values()), {}
        for forwarder in forwards:
            with contextlib.suppress(Exception):
                forwarder.close()
        close_transport = getattr(self.transport, "close", None)
        if close_transport is not None:
            close_transport()
        self.connection.close()
