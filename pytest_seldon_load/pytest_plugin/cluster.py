"""The cluster side of the plugin: Kubernetes-backed fixtures and the Iago runner.

Options (group "seldon-load"): where the cluster is (``--seldon-kubeconfig``, ``--seldon-context``,
``--seldon-namespace``), how deployments are reached (``--seldon-deployment``,
``--seldon-ingress``, ``--seldon-wait``, ``--seldon-consumer-keys``) and how the Iago pod runs
(``--iago-*``). Fixtures: ``seldon_cluster`` and ``iago`` (session: the runner the ``iago``
engine of `engines` asks the session for), and ``seldon_pod_transport``, the seam a conftest
overrides to run pods' commands elsewhere.
The Kubernetes client is imported only when a cluster fixture is used.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

import pytest

from ..durations import duration_option

GROUP_DESCRIPTION = "seldon-load (load tests of Seldon deployments)"


def _url(option: str):
    def parse(text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise argparse.ArgumentTypeError(
                f"{option} must look like http://host[:port][/prefix], got {text!r}"
            )
        return text.rstrip("/")

    return parse


def _labels(option: str):
    def parse(text: str) -> dict[str, str]:
        from ..iago.pod import parse_labels

        try:
            return parse_labels(text, option)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _key_source(text: str) -> str:
    from ..cluster.seldon_cluster import parse_key_source

    try:
        parse_key_source(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _target(text: str) -> str:
    from ..cluster.resources import UnknownKind, parse_target

    try:
        parse_target(text)
    except UnknownKind as exc:
        raise argparse.ArgumentTypeError(f"--seldon-deployment: {exc}") from None
    return text


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"--iago-admin-port must be in 1..65535, got {text!r}")
    return int(text)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seldon-load", GROUP_DESCRIPTION)
    add = group.addoption
    add(
        "--seldon-kubeconfig",
        default=None,
        metavar="PATH",
        help="kubeconfig of the cluster running Seldon (enables seldon_cluster)",
    )
    add(
        "--seldon-context",
        default=None,
        metavar="NAME",
        help="kubeconfig context (default: the current one; with no --seldon-kubeconfig, of "
        "$KUBECONFIG or ~/.kube/config)",
    )
    add(
        "--seldon-namespace",
        default=None,
        metavar="NS",
        help="namespace of the SeldonDeployments (default: the context's, else 'default')",
    )
    add(
        "--seldon-deployment",
        default=None,
        metavar="[KIND/]NAME",
        type=_target,
        help="make seldon_endpoint this resource of the cluster (unless --seldon-url): NAME or "
        "sdep/NAME (Core 1), model/NAME, pipeline/NAME, experiment/NAME (Core 2)",
    )
    add(
        "--seldon-mesh-service",
        default="seldon-mesh",
        metavar="NAME",
        help="Core 2's mesh Service, port-forwarded when no --seldon-ingress. Default: seldon-mesh",
    )
    add(
        "--seldon-ingress",
        default=None,
        metavar="URL",
        type=_url("--seldon-ingress"),
        help="Istio/Ambassador ingress: deployments are reached at URL/seldon/<ns>/<name> "
        "(default: status.address.url if it answers from here, else a port-forward)",
    )
    add(
        "--seldon-wait",
        default=300.0,
        metavar="DURATION",
        type=duration_option("--seldon-wait"),
        help="how long seldon_cluster.deployment() waits for state Available. Default: 5m",
    )
    add(
        "--seldon-consumer-keys",
        default=None,
        metavar="secret/NAME|configmap/NAME",
        type=_key_source,
        help="where seldon_cluster.consumer_key(client) reads legacy seldon-server keys: one "
        "entry per client (the key, or `seldon-cli keys` JSON)",
    )
    add(
        "--iago-image",
        default=None,
        metavar="IMAGE",
        help="image of the Iago pod (default: seldon-load-iago:latest, built from "
        "docker/Dockerfile; Seldon's Iago image works too)",
    )
    add(
        "--iago-pod-selector",
        default=None,
        metavar="KEY=VALUE[,...]",
        type=_labels("--iago-pod-selector"),
        help="use an existing running pod with these labels (deploy/iago.yaml: app=iago) "
        "instead of creating one",
    )
    add(
        "--iago-node-selector",
        default=None,
        metavar="KEY=VALUE[,...]",
        type=_labels("--iago-node-selector"),
        help="node selector of the created pod (Seldon's iago.json used role=iago)",
    )
    add(
        "--iago-namespace",
        default=None,
        metavar="NS",
        help="namespace of the Iago pod (default: the cluster's)",
    )
    add(
        "--iago-data-claim",
        default=None,
        metavar="PVC",
        help="mount this PersistentVolumeClaim at /seldon-data (default: an emptyDir)",
    )
    add(
        "--iago-workdir",
        default="/seldon-data",
        metavar="PATH",
        help="where replays are uploaded in the pod. Default: /seldon-data",
    )
    add(
        "--iago-target",
        default=None,
        metavar="URL",
        type=_url("--iago-target"),
        help="the target as the pod sees it (default: the deployment's in-cluster address)",
    )
    add(
        "--iago-ramp",
        default=240.0,
        metavar="DURATION",
        type=duration_option("--iago-ramp"),
        help="slow-start ramp when the arrival is slow-start-poisson and load_run gives no "
        "ramp. Default: 240s (Iago's)",
    )
    add(
        "--iago-poll",
        default=5.0,
        metavar="DURATION",
        type=duration_option("--iago-poll"),
        help="how often the admin port's /stats.json is read (the timeline). Default: 5s",
    )
    add(
        "--iago-admin-port",
        default=9994,
        metavar="PORT",
        type=_port,
        help="the pod's admin port. Default: 9994",
    )
    add(
        "--iago-startup-timeout",
        default=120.0,
        metavar="DURATION",
        type=duration_option("--iago-startup-timeout"),
        help="how long the pod and its admin port may take to come up. Default: 2m",
    )


@pytest.fixture(scope="session")
def seldon_pod_transport() -> Any:
    """How commands run in pods and their ports are reached: None means the cluster's own
    exec/port-forward websockets. Override in a conftest (a LoopbackTransport, say)."""
    return None


@pytest.fixture(scope="session")
def seldon_cluster(pytestconfig: pytest.Config, seldon_pod_transport: Any):
    """A Kubernetes cluster running Seldon Core: ``.deployment(name)`` → an endpoint once
    Available; ``.consumer_key(client)``. Skipped when no cluster is configured."""
    from ..cluster.kube import NOT_CONFIGURED, ClusterError, KubeSettings, connect

    option = pytestconfig.getoption
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
