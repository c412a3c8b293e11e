"""The cluster side of the plugin: Kubernetes-backed fixtures and the Iago runner.

Options (the cluster and Iago sections of --help, each an ini key too): where the cluster is
(``--seldon-kubeconfig``, ``--seldon-context``, ``--seldon-namespace``), how deployments are
reached (``--seldon-deployment``, ``--seldon-ingress``, ``--seldon-wait``,
``--seldon-consumer-keys``) and how the Iago pod runs (``--iago-*``). Fixtures:
``seldon_cluster`` and ``iago`` (session: the runner the ``iago`` engine of `engines` asks the
session for), and ``seldon_pod_transport``, the seam a conftest overrides to run pods'
commands elsewhere.
The Kubernetes client is imported only when a cluster fixture is used; it comes with the
``cluster`` extra, and without it the cluster fixtures skip (or fail, when a cluster was asked
for) saying how to install it.
"""

from __future__ import annotations

import importlib.util
from typing import Any
from urllib.parse import urlsplit

import pytest

from ..durations import duration_option
from ..redact import redact_url
from .options import add_option, group


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must look like http://host[:port][/prefix], got {redact_url(text)!r}")
    return text.rstrip("/")


def _labels(text: str) -> dict[str, str]:
    from ..iago.pod import parse_labels

    return parse_labels(text, "")


def _key_source(text: str) -> str:
    from ..cluster.seldon_cluster import parse_key_source

    parse_key_source(text)
    return text


def _target(text: str) -> str:
    from ..cluster.resources import parse_target

    parse_target(text)
    return text


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"must be in 1..65535, got {text!r}")
    return int(text)


def pytest_addoption(parser: pytest.Parser) -> None:
    cluster = group(parser, "cluster")
    iago = group(parser, "iago")
    add_option(
        cluster,
        "--seldon-kubeconfig",
        env="SELDON_LOAD_KUBECONFIG",
        metavar="PATH",
        help="kubeconfig of the cluster running Seldon (enables seldon_cluster)",
    )
    add_option(
        cluster,
        "--seldon-context",
        env="SELDON_LOAD_CONTEXT",
        metavar="NAME",
        help="kubeconfig context (default: the current one; with no --seldon-kubeconfig, of "
        "$KUBECONFIG or ~/.kube/config)",
    )
    add_option(
        cluster,
        "--seldon-namespace",
        env="SELDON_LOAD_NAMESPACE",
        metavar="NS",
        help="namespace of the SeldonDeployments (default: the context's, else 'default')",
    )
    add_option(
        cluster,
        "--seldon-deployment",
        env="SELDON_LOAD_DEPLOYMENT",
        metavar="[KIND/]NAME",
        type=_target,
        help="make seldon_endpoint this resource of the cluster (unless --seldon-url): NAME or "
        "sdep/NAME (Core 1), model/NAME, pipeline/NAME, experiment/NAME (Core 2)",
    )
    add_option(
        cluster,
        "--seldon-mesh-service",
        default="seldon-mesh",
        metavar="NAME",
        help="Core 2's mesh Service, port-forwarded when no --seldon-ingress. Default: seldon-mesh",
    )
    add_option(
        cluster,
        "--seldon-ingress",
        env="SELDON_LOAD_INGRESS",
        metavar="URL",
        type=_url,
        help="Istio/Ambassador ingress: deployments are reached at URL/seldon/<ns>/<name> "
        "(default: status.address.url if it answers from here, else a port-forward)",
    )
    add_option(
        cluster,
        "--seldon-wait",
        default=300.0,
        metavar="DURATION",
        type=duration_option(),
        help="how long seldon_cluster.deployment() waits for state Available. Default: 5m",
    )
    add_option(
        cluster,
        "--seldon-consumer-keys",
        default=None,
        metavar="secret/NAME|configmap/NAME",
        type=_key_source,
        help="where seldon_cluster.consumer_key(client) reads legacy seldon-server keys: one "
        "entry per client (the key, or `seldon-cli keys` JSON)",
    )
    add_option(
        iago,
        "--iago-image",
        default=None,
        metavar="IMAGE",
        help="image of the Iago pod (default: seldon-load-iago:latest, built from "
        "docker/Dockerfile; Seldon's Iago image works too)",
    )
    add_option(
        iago,
        "--iago-pod-selector",
        default=None,
        metavar="KEY=VALUE[,...]",
        type=_labels,
        help="use an existing running pod with these labels (deploy/iago.yaml: app=iago) "
        "instead of creating one",
    )
    add_option(
        iago,
        "--iago-node-selector",
        default=None,
        metavar="KEY=VALUE[,...]",
        type=_labels,
        help="node selector of the created pod (Seldon's iago.json used role=iago)",
    )
    add_option(
        iago,
        "--iago-namespace",
        default=None,
        metavar="NS",
        help="namespace of the Iago pod (default: the cluster's)",
    )
    add_option(
        iago,
        "--iago-data-claim",
        default=None,
        metavar="PVC",
        help="mount this PersistentVolumeClaim at /seldon-data (default: an emptyDir)",
    )
    add_option(
        iago,
        "--iago-workdir",
        default="/seldon-data",
        metavar="PATH",
        help="where replays are uploaded in the pod. Default: /seldon-data",
    )
    add_option(
        iago,
        "--iago-target",
        default=None,
        metavar="URL",
        type=_url,
        help="the target as the pod sees it (default: the deployment's in-cluster address)",
    )
    add_option(
        iago,
        "--iago-ramp",
        default=240.0,
        metavar="DURATION",
        type=duration_option(),
        help="slow-start ramp when the arrival is slow-start-poisson and load_run gives no "
        "ramp. Default: 240s (Iago's)",
    )
    add_option(
        iago,
        "--iago-poll",
        default=5.0,
        metavar="DURATION",
        type=duration_option(),
        help="how often the admin port's /stats.json is read (the timeline). Default: 5s",
    )
    add_option(
        iago,
        "--iago-admin-port",
        default=9994,
        metavar="PORT",
        type=_port,
        help="the pod's admin port. Default: 9994",
    )
    add_option(
        iago,
        "--iago-startup-timeout",
        default=120.0,
        metavar="DURATION",
        type=duration_option(),
        help="how long the pod and its admin port may take to come up. Default: 2m",
    )


INSTALL_HINT = "pip install 'pytest-seldon-load[cluster]'"


def _require_kubernetes(config: pytest.Config) -> None:
    """Without the Kubernetes client: fail if a cluster was asked for, else skip."""
    if importlib.util.find_spec("kubernetes") is not None:
        return
    message = f"seldon_cluster needs the Kubernetes client: {INSTALL_HINT}"
    asked = [
        flag
        for flag in ("--seldon-kubeconfig", "--seldon-context", "--seldon-deployment")
        if config.getoption(flag.lstrip("-").replace("-", "_"))
    ]
    if asked:
        pytest.fail(f"{message} (asked for by {', '.join(asked)})", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def seldon_pod_transport() -> Any:
    """How commands run in pods and their ports are reached: None means the cluster's own
    exec/port-forward websockets. Override in a conftest (a LoopbackTransport, say)."""
    return None


@pytest.fixture(scope="session")
def seldon_cluster(pytestconfig: pytest.Config, seldon_pod_transport: Any):
    """A Kubernetes cluster running Seldon Core: ``.deployment(name)`` → an endpoint once
    Available; ``.consumer_key(client)``. Skipped when no cluster is configured."""
    option = pytestconfig.getoption
    _require_kubernetes(pytestconfig)
    from ..cluster.kube import NOT_CONFIGURED, ClusterError, KubeSettings, connect

    settings = KubeSettings(
        kubeconfig=option("seldon_kubeconfig"),
        context=option("seldon_context"),
        namespace=option("seldon_namespace"),
    )
    if not settings.configured:
        pytest.skip(f"seldon_cluster: {NOT_CONFIGURED}")
    try:
        connection = connect(settings)
    except ClusterError as exc:
        pytest.fail(f"seldon_cluster: {exc}", pytrace=False)
    from ..cluster.seldon_cluster import SeldonCluster
    from ..cluster.transport import KubernetesTransport

    transport = seldon_pod_transport or KubernetesTransport(connection)
    cluster = SeldonCluster(
        connection,
        transport,
        ingress=option("seldon_ingress"),
        wait_timeout=option("seldon_wait"),
        consumer_keys=option("seldon_consumer_keys"),
        mesh_service=option("seldon_mesh_service"),
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def iago(pytestconfig: pytest.Config, seldon_cluster: Any):
    """The Iago runner on the cluster: its pod is made on first use and removed at the end."""
    from ..iago.engine import IagoRunner, IagoSettings
    from ..iago.pod import DEFAULT_IMAGE

    option = pytestconfig.getoption
    try:
        settings = IagoSettings(
            image=option("iago_image") or DEFAULT_IMAGE,
            namespace=option("iago_namespace"),
            node_selector=option("iago_node_selector") or {},
            pod_selector=option("iago_pod_selector"),
            data_claim=option("iago_data_claim"),
            workdir=option("iago_workdir"),
            admin_port=option("iago_admin_port"),
            target=option("iago_target"),
            ramp=option("iago_ramp"),
            poll_interval=option("iago_poll"),
            startup_timeout=option("iago_startup_timeout"),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    runner = IagoRunner(seldon_cluster, settings)
    try:
        yield runner
    finally:
        runner.close()
