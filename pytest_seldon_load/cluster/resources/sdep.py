"""SeldonDeployment resources (Seldon Core v1 CRD): read one, wait for it, and read its spec.

What a load test needs from a deployment: is it `Available` (and if not, why), which protocol
it speaks, which model a V2 path names, and where it answers. Its URL is resolved in order: the
ingress given by option (Seldon Core v1 routes ``<ingress>/seldon/<namespace>/<name>``); else
``status.address.url`` when it answers from this machine; else a port-forward to the
predictor's Service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ...endpoint import SeldonEndpoint
from ..kube import ClusterError, KubeConnection
from .base import Reach, Resource, ResourceKind, ResourceNotReady, describe_conditions

GROUP = "machinelearning.seldon.io"
VERSION = "v1"
PLURAL = "seldondeployments"
KIND = "SeldonDeployment"

DEFAULT_SERVICE_PORT = 8000
"""The HTTP port Seldon Core v1 gives a predictor's Service (its executor)."""

_PROTOCOLS = {"": "v1", "seldon": "v1", "v2": "v2", "kfserving": "v2"}
"""spec.protocol → the protocol our engine speaks (Seldon's 'kfserving' is the old name of v2)."""
_ROUTE_MARKERS = ("/api/v1.0/", "/v2/models/", "/v2/")
PROBE_TIMEOUT_S = 2.0


class DeploymentNotReady(ResourceNotReady):
    """The deployment is Failed, or not Available by the deadline; the message shows its status."""


@dataclass(frozen=True)
class SeldonDeployment(Resource):
    """One SeldonDeployment as the API returned it."""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def state(self) -> str:
        return str(self.status.get("state") or "")

    @property
    def description(self) -> str:
        return str(self.status.get("description") or "")

    def describe_status(self) -> str:
        """State, description and conditions, as a failure message shows them."""
        lines = [f"state: {self.state or '(none yet)'}"]
        if self.description:
            lines.append(f"description: {self.description}")
        lines.append(describe_conditions(self))
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


def _answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` from here (any status counts)."""
    try:
        requests.get(url, timeout=PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException:
        return False
    return True


class SeldonDeploymentKind(ResourceKind):
    """Seldon Core 1: ready when status.state is Available, failed when it is Failed."""

    kind = KIND
    target = "sdep"
    group = GROUP
    version = VERSION
    plural = PLURAL
    ready_word = "Available"
    not_ready_error = DeploymentNotReady

    @staticmethod
    def view(resource: Resource) -> SeldonDeployment:
        return SeldonDeployment(KIND, resource.namespace, resource.name, resource.body)

    def is_ready(self, resource: Resource) -> bool:
        return self.view(resource).state == "Available"

    def failure(self, resource: Resource) -> str | None:
        return "is Failed" if self.view(resource).state == "Failed" else None

    def describe(self, resource: Resource) -> str:
        return self.view(resource).describe_status()

    def endpoint(self, resource: Resource, reach: Reach) -> tuple[SeldonEndpoint, str]:
        deployment = self.view(resource)
        protocol = deployment.protocol  # a spec we cannot speak fails before any forwarding
        if reach.ingress:
            base = in_cluster = f"{reach.ingress}/seldon/{deployment.namespace}/{deployment.name}"
        else:
            base = self._reachable_address(deployment) or reach.service_url(
                deployment.namespace, *deployment.service
            )
            in_cluster = deployment.in_cluster_base_url
        endpoint = SeldonEndpoint(
            base, protocol=protocol, model=deployment.model, name=deployment.ref
        )
        return endpoint, in_cluster

    @staticmethod
    def _reachable_address(deployment: SeldonDeployment) -> str | None:
        address = deployment.address_base_url
        if not address:
            return None
        probe = SeldonEndpoint(address, protocol=deployment.protocol, model=deployment.model)
        return address if _answers(probe.url_for(probe.ready_path)) else None


def read_deployment(connection: KubeConnection, namespace: str, name: str) -> SeldonDeployment:
    """The deployment now; a missing one fails at once, listing what the namespace holds."""
    return SeldonDeploymentKind.view(SeldonDeploymentKind().read(connection, namespace, name))
