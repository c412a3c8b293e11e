"""Where load sent from pods (Iago's, or a Job's) must go: the same endpoint, as a pod sees it."""

from __future__ import annotations

from ..endpoint import SeldonEndpoint, is_loopback_url
from ..redact import redact_url
from .kube import ClusterError


def pod_target_url(
    endpoint: SeldonEndpoint, in_cluster: str | None, *, pods_here: bool, sender: str, remedy: str
) -> str:
    """`in_cluster` (the address the cluster gave a deployment it resolved), else the
    endpoint's own URL, unless that is this machine's loopback and the pods run elsewhere:
    then a ClusterError saying that `sender` cannot reach it and what to do (`remedy`)."""
    if in_cluster:
        return in_cluster
    if is_loopback_url(endpoint.base_url) and not pods_here:
        raise ClusterError(
            f"{sender}, and {redact_url(endpoint.base_url)} is this machine's loopback: {remedy}"
        )
    return endpoint.base_url
