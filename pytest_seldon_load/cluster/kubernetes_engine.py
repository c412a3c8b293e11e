"""The ``kubernetes`` engine: each run is a Job of load pods in the session's cluster
(`load_job.LoadJob`), for loads one machine cannot send.

Under pytest it takes the session's cluster (``seldon_cluster``: kubeconfig, namespace) and
its options: ``--load-pods N`` and ``--load-image IMAGE``. The pods reach the target at the
address the cluster knows for a deployment it resolved, else at the endpoint's URL; this
machine's loopback is refused unless the session's pods run on this machine (an emulated
cluster whose "pods" are local processes).
"""

from __future__ import annotations

from typing import Any

from ..endpoint import SeldonEndpoint
from ..engines import EngineContext, EngineUnavailable
from ..plan import RunPlan
from ..replay import ReplayFile
from ..result import LoadResult
from .kube import ClusterError, KubeConnection
from .load_job import DEFAULT_IMAGE, LoadJob, LoadJobSettings
from .pod_target import pod_target_url

NEEDS_A_SESSION = (
    "the kubernetes engine runs a Job in the session's cluster (pytest --load-engine kubernetes "
    "--seldon-kubeconfig ...); {caller} has no cluster: use the embedded engine, with "
    "--part/--parts in a Job of your own"
)


class KubernetesEngine:
    """Runs each plan as an Indexed Job of load pods and merges their results exactly."""

    name = "kubernetes"

    def __init__(self, context: EngineContext | None = None) -> None:
        self.context = context
        self.connection: KubeConnection | None = None
        self.settings: LoadJobSettings | None = None
        self.cluster: Any = None
        self.pods_on_this_host = False
        if context is not None and context.resources is None:
            raise EngineUnavailable(NEEDS_A_SESSION.format(caller=context.caller))

    @classmethod
    def on(
        cls, connection: KubeConnection, settings: LoadJobSettings, *, pods_on_this_host: bool
    ) -> KubernetesEngine:
        """The engine on a connection of your own (outside a pytest session)."""
        engine = cls()
        engine.connection, engine.settings = connection, settings
        engine.pods_on_this_host = pods_on_this_host
        return engine

    def _from_session(self) -> None:
        assert self.context is not None
        cluster = self.context.resource("seldon_cluster", engine=self.name)
        config = self.context.resource("pytestconfig", engine=self.name)
        try:
            self.settings = LoadJobSettings(
                pods=int(config.getoption("load_pods")),
                image=config.getoption("load_image") or DEFAULT_IMAGE,
                namespace=cluster.connection.namespace,
            )
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
        self.cluster, self.connection = cluster, cluster.connection
        self.pods_on_this_host = bool(getattr(cluster.transport, "runs_on_this_host", False))

    def target_url(self, endpoint: SeldonEndpoint) -> str:
        in_cluster = self.cluster.in_cluster_url(endpoint) if self.cluster is not None else None
        return pod_target_url(
            endpoint,
            str(in_cluster) if in_cluster else None,
            pods_here=self.pods_on_this_host,
            sender="the kubernetes engine sends from pods",
            remedy="take the endpoint from seldon_cluster.deployment(...) or give --seldon-url "
            "as the pods reach it",
        )

    def run(self, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> LoadResult:
        if self.connection is None:
            self._from_session()
        assert self.connection is not None and self.settings is not None
        job = LoadJob(self.connection, self.settings)
        return job.run(endpoint, self.target_url(endpoint), replay, plan)
