"""What every Seldon resource kind tells the cluster layer, and the one wait loop they share.

A kind (SeldonDeployment, Model, Pipeline, Experiment) says where its objects live in the API,
how to read readiness and failure from an object's status, and how an endpoint reaches it. The
cluster layer reads, waits and builds endpoints through this interface only.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ...endpoint import SeldonEndpoint
from ..kube import ApiError, ClusterError, KubeConnection, call


class ResourceNotReady(ClusterError):
    """The resource failed, or was not ready by the deadline; the message shows its status."""


@dataclass(frozen=True)
class Resource:
    """One object as the API returned it."""

    kind: str
    namespace: str
    name: str
    body: Mapping[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def status(self) -> Mapping[str, Any]:
        status = self.body.get("status")
        return status if isinstance(status, Mapping) else {}

    @property
    def conditions(self) -> list[Mapping[str, Any]]:
        conditions = self.status.get("conditions")
        if not isinstance(conditions, Sequence) or isinstance(conditions, str):
            return []
        return [c for c in conditions if isinstance(c, Mapping)]

    def condition(self, kind: str) -> Mapping[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == kind), None)


def describe_conditions(resource: Resource) -> str:
    """Every condition with its reason and message, as a failure message shows them."""
    if not resource.conditions:
        return "conditions: none reported"
    lines = ["conditions:"]
    for condition in resource.conditions:
        reason, message = condition.get("reason"), condition.get("message")
        lines.append(
            f"  - {condition.get('type', '?')}={condition.get('status', '?')}"
            + (f" ({reason})" if reason else "")
            + (f": {message}" if message else "")
        )
    return "\n".join(lines)


class Reach(Protocol):
    """How endpoints are reached from this machine (the SeldonCluster provides it)."""

    @property
    def ingress(self) -> str | None: ...

    def mesh_url(self, namespace: str) -> str:
        """Where the Core 2 mesh answers from here (the ingress, else a port-forward)."""
        ...

    def mesh_in_cluster_url(self, namespace: str) -> str: ...

    def service_url(self, namespace: str, service: str, port: int) -> str:
        """A port-forward to `service`:`port`, held open until the cluster is closed."""
        ...


class ResourceKind(ABC):
    """One Seldon resource kind behind the interface the cluster layer uses."""

    kind: str
    """The API's kind, e.g. ``Model``."""
    target: str
    """How ``--seldon-deployment KIND/NAME`` names it, e.g. ``model``."""
    group: str
    version: str
    plural: str
    ready_word: str = "Ready"
    """What the wait is for, as messages say it ('Available' for SeldonDeployments)."""
    not_ready_error: type[ResourceNotReady] = ResourceNotReady

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @abstractmethod
    def is_ready(self, resource: Resource) -> bool:
        """Whether the resource serves now."""

    @abstractmethod
    def failure(self, resource: Resource) -> str | None:
        """How the resource failed for good (no wait can help), in its own words, as the rest
        of a sentence that begins with its kind and name ("failed: ..."); else None."""

    def describe(self, resource: Resource) -> str:
        """The status as a failure or deadline message shows it."""
        return describe_conditions(resource)

    @abstractmethod
    def endpoint(self, resource: Resource, reach: Reach) -> tuple[SeldonEndpoint, str]:
        """The endpoint reaching `resource` from here, and where a pod in the cluster reaches it."""

    def grpc_endpoint(
        self, endpoint: SeldonEndpoint, in_cluster: str
    ) -> tuple[SeldonEndpoint, str]:
        """`endpoint` (and its in-cluster URL) over gRPC, for a kind whose server speaks it."""
        raise ClusterError(
            f"{endpoint.name or self.kind}: gRPC (--seldon-protocol grpc, grpc=True) reaches "
            f"Core 2 Models, Pipelines and Experiments through the mesh; a {self.kind} is "
            f"reached over HTTP"
        )

    # --- reading and waiting, shared by every kind ----------------------------------------
    def objects(
        self, connection: KubeConnection, verb: str, namespace: str, *args: Any, what: str
    ) -> Any:
        """The custom-objects API's `verb` (get, list, create, delete) on this kind's objects
        in `namespace`; `args` follow the plural (a name, a body); errors name `what`."""
        method = getattr(connection.custom, f"{verb}_namespaced_custom_object")
        return call(
            connection, what, method, self.group, self.version, namespace, self.plural, *args
        )

    def read(self, connection: KubeConnection, namespace: str, name: str) -> Resource:
        """The object now; a missing one fails at once, naming kind, name, namespace."""
        try:
            body = self.objects(
                connection, "get", namespace, name, what=f"reading {self.kind} {namespace}/{name}"
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            present = ", ".join(self.list_names(connection, namespace)) or "none"
            raise ClusterError(
                f"no {self.kind} {name!r} in namespace {namespace!r} of {connection.where}; "
                f"{self.plural} there: {present}"
            ) from None
        if not isinstance(body, Mapping):
            raise ClusterError(f"{self.kind} {namespace}/{name}: the API returned no object")
        found = body.get("kind")
        if found and found != self.kind:
            raise ClusterError(
                f"{namespace}/{name}: expected a {self.kind}, the API returned a {found}"
            )
        return Resource(self.kind, namespace, name, body)

    def list_names(self, connection: KubeConnection, namespace: str) -> list[str]:
        try:
            listing = self.objects(
                connection, "list", namespace, what=f"listing {self.plural} in {namespace}"
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

    def wait_ready(
        self,
        connection: KubeConnection,
        namespace: str,
        name: str,
        *,
        timeout: float,
        poll_interval: float = 1.0,
    ) -> Resource:
        """Poll until ready; a failure raises at once, the deadline raises with the status."""
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        deadline = time.monotonic() + timeout
        max_polls = int(timeout / max(poll_interval, 0.01)) + 2
        resource = self.read(connection, namespace, name)
        for _ in range(max_polls):
            if self.is_ready(resource):
                return resource
            failure = self.failure(resource)
            if failure is not None:
                raise self.not_ready_error(f"{resource.ref} {failure}\n{self.describe(resource)}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(poll_interval, remaining))
            resource = self.read(connection, namespace, name)
        raise self.not_ready_error(
            f"{resource.ref} was not {self.ready_word} within {timeout:g}s\n"
            f"{self.describe(resource)}"
        )
