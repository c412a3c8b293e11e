"""SeldonDeployment resources (Seldon Core v1 CRD): read one, wait for it, and read its spec.

What a load test needs from a deployment: is it `Available` (and if not, why), which protocol
it speaks, which model a V2 path names, and where it answers (`status.address.url`, its
predictor's Service).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .kube import ApiError, ClusterError, KubeConnection, call

GROUP = "machinelearning.seldon.io"
VERSION = "v1"
PLURAL = "seldondeployments"
KIND = "SeldonDeployment"

DEFAULT_SERVICE_PORT = 8000
"""The HTTP port Seldon Core v1 gives a predictor's Service (its executor)."""

_PROTOCOLS = {"": "v1", "seldon": "v1", "v2": "v2", "kfserving": "v2"}
"""spec.protocol → the protocol our engine speaks (Seldon's 'kfserving' is the old name of v2)."""
_ROUTE_MARKERS = ("/api/v1.0/", "/v2/models/", "/v2/")


class DeploymentNotReady(ClusterError):
    """The deployment is Failed, or not Available by the deadline; the message shows its status."""


@dataclass(frozen=True)
class SeldonDeployment:
    """One SeldonDeployment as the API returned it."""

    namespace: str
    name: str
    body: Mapping[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def status(self) -> Mapping[str, Any]:
        status = self.body.get("status")
        return status if isinstance(status, Mapping) else {}

    @property
    def state(self) -> str:
        return str(self.status.get("state") or "")

    @property
    def description(self) -> str:
        return str(self.status.get("description") or "")

    @property
    def conditions(self) -> list[Mapping[str, Any]]:
        conditions = self.status.get("conditions")
        return (
            [c for c in conditions if isinstance(c, Mapping)]
            if isinstance(conditions, Sequence)
            else []
        )

    def describe_status(self) -> str:
        """State, description and conditions, as a failure message shows them."""
        lines = [f"state: {self.state or '(none yet)'}"]
        if self.description:
            lines.append(f"description: {self.description}")
        if self.conditions:
            lines.append("conditions:")
            for condition in self.conditions:
                reason = condition.get("reason")
                message = condition.get("message")
                lines.append(
                    f"  - {condition.get('type', '?')}={condition.get('status', '?')}"
                    + (f" ({reason})" if reason else "")
                    + (f": {message}" if message else "")
                )
        else:
            lines.append("conditions: none reported")
        return "\n".join(lines)

    @property
    def predictor(self) -> Mapping[str, Any]:
        """The first predictor (the one the deployment's address routes to by default)."""
        predictors = self.spec.get("predictors")
        if isinstance(predictors, Sequence) and predictors and isinstance(predictors[0], Mapping):
            return predictors[0]
        return {}

    @property
    def protocol(self) -> str:
        """'v1' or 'v2', from spec.protocol; an error naming the field for anything else."""
        raw = self.spec.get("protocol") or ""
        if not isinstance(raw, str) or raw.lower() not in _PROTOCOLS:
            raise ClusterError(
                f"SeldonDeployment {self.ref}: spec.protocol {raw!r} is not supported; the load "
                f"engine speaks 'seldon' (Seldon Core v1) and 'v2' (Open Inference Protocol)"
            )
        return _PROTOCOLS[raw.lower()]

    @property
    def model(self) -> str:
        """The model a V2 path names: the predictor graph's root node, else the deployment."""
        graph = self.predictor.get("graph")
        if isinstance(graph, Mapping) and isinstance(graph.get("name"), str) and graph["name"]:
            return graph["name"]
        return self.name

    @property
    def address_base_url(self) -> str | None:
        """status.address.url without its prediction route: the deployment's base URL."""
        address = self.status.get("address")
        url = address.get("url") if isinstance(address, Mapping) else None
        if not isinstance(url, str) or not url:
            return None
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        path = parts.path
        for marker in _ROUTE_MARKERS:
            index = path.find(marker)
            if index >= 0:
                path = path[:index]
                break
        return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))

    @property
    def service(self) -> tuple[str, int]:
        """The predictor's Service name and HTTP port, from status.serviceStatus if reported."""
        predictor_name = self.predictor.get("name") or "default"
        expected = f"{self.name}-{predictor_name}"
        entries = self.status.get("serviceStatus")
        candidates = list(entries.values()) if isinstance(entries, Mapping) else []
        candidates = [c for c in candidates if isinstance(c, Mapping) and c.get("svcName")]
        chosen = next((c for c in candidates if c.get("svcName") == expected), None)
        if chosen is None and candidates:
            chosen = next((c for c in candidates if c.get("httpEndpoint")), candidates[0])
        if chosen is None:
            return expected, DEFAULT_SERVICE_PORT
        port = DEFAULT_SERVICE_PORT
        endpoint = str(chosen.get("httpEndpoint") or "")
        if endpoint.rpartition(":")[2].isdigit():
            port = int(endpoint.rpartition(":")[2])
        return str(chosen["svcName"]), port

    @property
    def in_cluster_base_url(self) -> str:
        """Where pods in the cluster reach the deployment: its address, else its Service DNS."""
        base = self.address_base_url
        if base:
            return base
        service, port = self.service
        return f"http://{service}.{self.namespace}.svc.cluster.local:{port}"


def read_deployment(connection: KubeConnection, namespace: str, name: str) -> SeldonDeployment:
    """The deployment now; a missing one fails at once, listing what the namespace holds."""
    try:
        body = call(
            connection,
            f"reading SeldonDeployment {namespace}/{name}",
            connection.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
        present = ", ".join(list_deployments(connection, namespace)) or "none"
        raise ClusterError(
            f"no SeldonDeployment {name!r} in namespace {namespace!r} of "
            f"{connection.where}; there: {present}"
        ) from None
    if not isinstance(body, Mapping):
        raise ClusterError(f"SeldonDeployment {namespace}/{name}: the API returned no object")
    return SeldonDeployment(namespace, name, body)


def list_deployments(connection: KubeConnection, namespace: str) -> list[str]:
    try:
        listing = call(
            connection,
            f"listing SeldonDeployments in {namespace}",
            connection.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
        )
    except ApiError:
        return []
    items = listing.get("items", []) if isinstance(listing, Mapping) else []
    names = [
        str(item.get("metadata", {}).get("name"))
        for item in items
        if isinstance(item, Mapping)
        and item.get("metadata", {}).get("namespace", namespace) == namespace
    ]
    return sorted(n for n in names if n and n != "None")


def wait_available(
    connection: KubeConnection,
    namespace: str,
    name: str,
    *,
    timeout: float,
    poll_interval: float = 1.0,
) -> SeldonDeployment:
    """Poll until status.state is Available; Failed or the deadline raise with the status."""
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    deadline = time.monotonic() + timeout
    max_polls = int(timeout / max(poll_interval, 0.01)) + 2
    deployment = read_deployment(connection, namespace, name)
    for _ in range(max_polls):
        state = deployment.state
        if state == "Available":
            return deployment
        if state == "Failed":
            raise DeploymentNotReady(
                f"SeldonDeployment {deployment.ref} is Failed\n{deployment.describe_status()}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(poll_interval, remaining))
        deployment = read_deployment(connection, namespace, name)
    raise DeploymentNotReady(
        f"SeldonDeployment {deployment.ref} was not Available within {timeout:g}s\n"
        f"{deployment.describe_status()}"
    )
