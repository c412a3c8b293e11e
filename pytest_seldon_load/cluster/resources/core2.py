"""What Seldon Core 2's kinds share: ``mlops.seldon.io/v1alpha1``, a ``Ready`` condition, and
inference through the ``seldon-mesh`` service, routed by the ``Seldon-Model`` header.

Core 2 writes a failed state into one field of a condition and its explanation into the other,
and which is which depends on the kind; a failure message shows both, as the resource wrote them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ...endpoint import SeldonEndpoint
from ...redact import redact_url
from ...replay import NEVER_REPLAYED
from ..kube import ClusterError
from .base import Reach, Resource, ResourceKind

GROUP = "mlops.seldon.io"
VERSION = "v1alpha1"
ROUTE_HEADER = "Seldon-Model"


def grpc_url(url: str, what: str) -> str:
    """The mesh's HTTP URL as a gRPC target: http → grpc://, https → grpcs://, the port
    spelled out (gRPC has no default port); a URL with a path cannot carry gRPC."""
    parts = urlsplit(url)
    scheme = {"http": "grpc", "https": "grpcs"}.get(parts.scheme)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port out of range or not a number
        port = 0
    extra = parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc
    if scheme is None or extra or not parts.hostname or not port:
        raise ClusterError(
            f"{what}: gRPC needs the mesh at a bare http(s)://HOST[:PORT], got {redact_url(url)}"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}"


def without_route_pins(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` less those the mesh sets on responses (``x-seldon-route``)."""
    return {k: v for k, v in headers.items() if k.lower() not in NEVER_REPLAYED}


class Core2Kind(ResourceKind):
    """A Core 2 resource: ready when its ``Ready`` condition is True. Core 2 names things
    after the kind: a ``Model`` is ``seldon_cluster.model(...)`` and lives at ``models``."""

    group = GROUP
    version = VERSION
    route_suffix = ""
    """Appended to the name in the ``Seldon-Model`` header (``.pipeline``, ``.experiment``)."""
    state_field = "message"
    """The condition field holding the state (``ModelFailed``); the other holds the text."""
    failed_states: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            cls.target = cls.__dict__.get("target", cls.kind.lower())
            cls.plural = cls.__dict__.get("plural", cls.target + "s")

    def is_ready(self, resource: Resource) -> bool:
        ready = resource.condition("Ready")
        return ready is not None and str(ready.get("status")).lower() == "true"

    def failure(self, resource: Resource) -> str | None:
        text_field = "reason" if self.state_field == "message" else "message"
        for condition in resource.conditions:
            state = str(condition.get(self.state_field) or "")
            if str(condition.get("status")).lower() != "true" and state in self.failed_states:
                text = str(condition.get(text_field) or "").strip()
                return (
                    f"failed: {condition.get('type', '?')}={condition.get('status', '?')}, "
                    f"{state}" + (f": {text}" if text else "")
                )
        return None

    def infer_model(self, resource: Resource) -> str:
        """The model name the infer path carries."""
        return resource.name

    def infer_path(self, resource: Resource) -> str:
        return f"/v2/models/{self.infer_model(resource)}/infer"

    def grpc_endpoint(
        self, endpoint: SeldonEndpoint, in_cluster: str
    ) -> tuple[SeldonEndpoint, str]:
        """The mesh serves gRPC on its HTTP port and routes it by the same header (as
        ``seldon-model`` metadata); the model name in the call is the resource's."""
        over_grpc = SeldonEndpoint(
            grpc_url(endpoint.base_url, endpoint.name),
            protocol="grpc",
            model=endpoint.model,
            headers=endpoint.headers,
            name=endpoint.name,
        )
        return over_grpc, grpc_url(in_cluster, endpoint.name)

    def endpoint(self, resource: Resource, reach: Reach) -> tuple[SeldonEndpoint, str]:
        endpoint = SeldonEndpoint(
            reach.mesh_url(resource.namespace),
            protocol="v2",
            model=self.infer_model(resource),
            headers={ROUTE_HEADER: resource.name + self.route_suffix},
            name=resource.ref,
            infer_path_override=self.infer_path(resource),
        )
        return endpoint, reach.mesh_in_cluster_url(resource.namespace)


class RoutedByKind(Core2Kind):
    """Pipelines and Experiments: the mesh routes ``Seldon-Model: NAME.pipeline`` (or
    ``.experiment``), and their conditions hold the failed state in ``reason``."""

    state_field = "reason"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.route_suffix = "." + cls.target
