"""The cluster fixtures against an emulated Kubernetes API (kmock, a real HTTP server on
127.0.0.1) through the official client: SeldonDeployments going Available or Failed, URL
resolution (ingress, address, port-forward), consumer keys, kubeconfig handling.

Only exec/port-forward's websocket is substituted (LoopbackTransport): the port-forward's
listener, its Service → pod → port resolution and the bytes it pipes are all real.
"""

from __future__ import annotations

import base64
import itertools
import json
import time

import pytest
import requests
from emulated_cluster.api import EmulatedKubernetes
from servers import V2_OK, ClosedPort, ServerThread, fixed

from pytest_seldon_load.cluster.kube import ClusterError, KubeSettings, connect
from pytest_seldon_load.cluster.loopback import LoopbackTransport
from pytest_seldon_load.cluster.resources.sdep import DeploymentNotReady
from pytest_seldon_load.cluster.seldon_cluster import SeldonCluster
from pytest_seldon_load.redact import redact_text

pytest_plugins = ["pytester"]

TOKEN = "kube-token-0123456789abcdef"
_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def emulator():
    with EmulatedKubernetes(pod_start_delay=0.05) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def model_server():
    with ServerThread(fixed(200, V2_OK)) as server:
        yield server


@pytest.fixture
def namespace() -> str:
    """Each test works in a namespace of its own on the shared emulator."""
    return f"ns{next(_namespaces)}"


@pytest.fixture
def kubeconfig(emulator, tmp_path, namespace):
    return emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace, token=TOKEN)


@pytest.fixture
def transport() -> LoopbackTransport:
    return LoopbackTransport()


@pytest.fixture
def cluster(kubeconfig, transport):
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    cluster = SeldonCluster(connection, transport, wait_timeout=5.0, poll_interval=0.05)
    yield cluster
    cluster.close()


def wait_until_running(emulator: EmulatedKubernetes, namespace: str, pod: str) -> None:
    """The emulated kubelet marks new pods Running within a few ticks."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = emulator.core.read_namespaced_pod(pod, namespace).status
        if status is not None and status.phase == "Running":
            return
        time.sleep(0.05)
    raise AssertionError(f"pod {namespace}/{pod} never ran")


def test_a_deployment_is_returned_once_available_and_answers(
    emulator, cluster, namespace, model_server
):
    emulator.create_deployment(
        "iris",
        namespace,
        protocol="v2",
        model="iris-model",
        state="Creating",
        address_url=f"{model_server.url}/v2/models/iris-model/infer",
    )
    emulator.set_deployment_status_later(0.4, "iris", namespace, state="Available")
    started = time.monotonic()
    endpoint = cluster.deployment("iris")
    assert time.monotonic() - started >= 0.35, "returned before the state was Available"
    assert endpoint.base_url == model_server.url
    assert (endpoint.protocol, endpoint.model) == ("v2", "iris-model")
    answer = requests.post(endpoint.url_for(endpoint.infer_path), json={}, timeout=5)
    assert answer.status_code == 200
    assert cluster.in_cluster_url(endpoint) == model_server.url


def test_a_failed_deployment_fails_with_its_state_description_and_conditions(
    emulator, cluster, namespace
):
    emulator.create_deployment(
        "broken",
        namespace,
        state="Failed",
        description="Deployment has errors: container iris crashed",
        conditions=[
            {
                "type": "DeploymentsReady",
                "status": "False",
                "reason": "CrashLoopBackOff",
                "message": "iris-default-0 keeps restarting",
            }
        ],
    )
    with pytest.raises(DeploymentNotReady) as failure:
        cluster.deployment("broken")
    message = str(failure.value)
    assert f"SeldonDeployment {namespace}/broken is Failed" in message
    assert "description: Deployment has errors: container iris crashed" in message
    assert "DeploymentsReady=False (CrashLoopBackOff): iris-default-0 keeps restarting" in message


def test_a_deployment_that_stays_creating_fails_at_the_deadline(emulator, cluster, namespace):
    emulator.create_deployment("slow", namespace, state="Creating", description="Creating pods")
    started = time.monotonic()
    with pytest.raises(DeploymentNotReady) as failure:
        cluster.deployment("slow", timeout=0.5)
    assert 0.45 <= time.monotonic() - started < 3.0
    message = str(failure.value)
    assert "was not Available within 0.5s" in message
    assert "state: Creating" in message and "description: Creating pods" in message
    assert "conditions: none reported" in message


def test_a_deployment_that_goes_failed_while_waited_for_stops_the_wait(
    emulator, cluster, namespace
):
    emulator.create_deployment("flaky", namespace, state="Creating")
    emulator.set_deployment_status_later(
        0.2, "flaky", namespace, state="Failed", description="image pull failed"
    )
    started = time.monotonic()
    with pytest.raises(DeploymentNotReady, match="is Failed"):
        cluster.deployment("flaky", timeout=5)
    assert time.monotonic() - started < 2.0


def test_a_missing_deployment_fails_at_once_naming_those_that_exist(emulator, cluster, namespace):
    emulator.create_deployment("iris", namespace, state="Available")
    emulator.create_deployment("income", namespace, state="Available")
    with pytest.raises(ClusterError) as failure:
        cluster.deployment("irsi", timeout=5)
    assert f"no SeldonDeployment 'irsi' in namespace '{namespace}'" in str(failure.value)
    assert "there: income, iris" in str(failure.value)


def test_the_protocol_comes_from_the_spec(emulator, cluster, namespace):
    emulator.create_deployment("classic", namespace, protocol=None, state="Available")
    emulator.create_deployment(
        "renamed", namespace, protocol="kfserving", model="m", state="Available"
    )
    emulator.create_deployment("tf", namespace, protocol="tensorflow", state="Available")
    with pytest.raises(ClusterError, match=r"spec\.protocol 'tensorflow' is not supported"):
        cluster.deployment("tf")
    # No ingress, no address, no Service: the port-forward fails, naming what is missing.
    with pytest.raises(ClusterError, match=f"there is no Service {namespace}/classic-default"):
        cluster.deployment("classic")
    ingress = SeldonCluster(
        cluster.connection, cluster.transport, ingress="http://127.0.0.1:9/", poll_interval=0.05
    )
    classic, renamed = ingress.deployment("classic"), ingress.deployment("renamed")
    assert (classic.protocol, renamed.protocol, renamed.model) == ("v1", "v2", "m")
    assert classic.base_url == f"http://127.0.0.1:9/seldon/{namespace}/classic"
    assert ingress.in_cluster_url(classic) == classic.base_url


def test_an_address_that_does_not_answer_falls_back_to_a_port_forward(
    emulator, kubeconfig, namespace, model_server
):
    pod = emulator.create_service_with_pod(
        "iris-default", namespace, port=8000, target_port="http", container_port=9000
    )
    transport = LoopbackTransport(ports={9000: model_server.port})
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    cluster = SeldonCluster(connection, transport, wait_timeout=5.0, poll_interval=0.05)
    with ClosedPort() as closed:
        emulator.create_deployment(
            "iris",
            namespace,
            state="Available",
            address_url=f"http://127.0.0.1:{closed.port}/v2/models/iris/infer",
        )
        wait_until_running(emulator, namespace, pod)
        endpoint = cluster.deployment("iris")
    assert endpoint.base_url.startswith("http://127.0.0.1:")
    assert endpoint.base_url not in (model_server.url, f"http://127.0.0.1:{closed.port}")
    with requests.Session() as session:
        for _ in range(3):  # one keep-alive connection, piped both ways
            answer = session.post(endpoint.url_for(endpoint.infer_path), json={}, timeout=5)
            assert answer.status_code == 200 and answer.content == V2_OK
    cluster.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoint.base_url, timeout=2)


def test_a_service_without_running_pods_cannot_be_forwarded(emulator, cluster, namespace):
    emulator.core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "lonely-default"},
            "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 8000}]},
        },
    )
    emulator.create_deployment("lonely", namespace, state="Available")
    with pytest.raises(ClusterError, match=r"no running pod matches Service .*app=nobody"):
        cluster.deployment("lonely")


def test_consumer_keys_come_from_a_secret_or_a_configmap_and_stay_secret(
    emulator, kubeconfig, namespace
):
    cli_json = json.dumps(
        [
            {
                "db": "ml",
                "client": "iris",
                "key": "KeyFromSecret123",
                "secret": "s3cr3tvalue",
                "scope": "js",
            }
        ]
    )
    emulator.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "seldon-keys"},
            "data": {"iris": base64.b64encode(cli_json.encode()).decode()},
        },
    )
    emulator.core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "plain-keys"},
            "data": {"income": "PlainKey456"},
        },
    )
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    by_secret = SeldonCluster(connection, LoopbackTransport(), consumer_keys="secret/seldon-keys")
    by_map = SeldonCluster(connection, LoopbackTransport(), consumer_keys="configmap/plain-keys")
    assert by_secret.consumer_key("iris") == "KeyFromSecret123"
    assert by_map.consumer_key("income") == "PlainKey456"
    shown = redact_text("GET /js/predict?consumer_key=x&k=KeyFromSecret123 PlainKey456")
    assert "KeyFromSecret123" not in shown and "PlainKey456" not in shown
    with pytest.raises(ClusterError) as missing:
        by_secret.consumer_key("income")
    assert f"secret {namespace}/seldon-keys has no entry 'income' (entries: iris)" in str(
        missing.value
    )
    with pytest.raises(ClusterError, match=r"there is no secret .*/nothing"):
        SeldonCluster(connection, LoopbackTransport(), consumer_keys="secret/nothing").consumer_key(
            "iris"
        )
    with pytest.raises(ClusterError, match="no key store configured"):
        SeldonCluster(connection, LoopbackTransport()).consumer_key("iris")
    with pytest.raises(ValueError, match="--seldon-consumer-keys: expected secret/NAME"):
        SeldonCluster(connection, LoopbackTransport(), consumer_keys="vault/keys")


def test_kubeconfig_problems_name_the_option_and_never_the_token(emulator, tmp_path):
    with pytest.raises(ClusterError, match="--seldon-kubeconfig: no such file"):
        connect(KubeSettings(kubeconfig=str(tmp_path / "missing")))
    path = emulator.write_kubeconfig(tmp_path / "kc", token=TOKEN, context="kind-seldon")
    with pytest.raises(ClusterError) as unknown:
        connect(KubeSettings(kubeconfig=str(path), context="prod"))
    assert "--seldon-context: no context 'prod'" in str(unknown.value)
    assert "contexts there: kind-seldon" in str(unknown.value)
    with ClosedPort() as closed:
        document = json.loads(path.read_text())
        document["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{closed.port}"
        path.write_text(json.dumps(document))
        connection = connect(KubeSettings(kubeconfig=str(path), namespace="seldon"))
        assert TOKEN not in repr(connection) and TOKEN not in connection.where
        cluster = SeldonCluster(connection, LoopbackTransport(), poll_interval=0.05)
        with pytest.raises(ClusterError) as unreachable:
            cluster.deployment("iris", timeout=1)
    message = str(unreachable.value)
    assert "cannot reach the Kubernetes API of context 'kind-seldon'" in message
    assert TOKEN not in message
    assert TOKEN not in redact_text(f"Authorization: Bearer {TOKEN}")


def test_the_namespace_comes_from_the_option_else_the_context(emulator, tmp_path):
    path = emulator.write_kubeconfig(tmp_path / "kc", namespace="from-context")
    assert connect(KubeSettings(kubeconfig=str(path))).namespace == "from-context"
    assert connect(KubeSettings(kubeconfig=str(path), namespace="given")).namespace == "given"


def test_in_cluster_configuration_is_used_inside_a_pod(monkeypatch, tmp_path):
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("in-cluster-token-abcdef")
    (account / "ca.crt").write_text("not really a certificate")
    (account / "namespace").write_text("seldon-system\n")
    settings = KubeSettings(service_account_dir=account)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert not settings.configured
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert settings.source == "in-cluster"
    connection = connect(settings)
    assert connection.namespace == "seldon-system"
    assert connection.where == "in-cluster service account (https://10.0.0.1:443)"
    assert "in-cluster-token-abcdef" not in redact_text(str(connection.configuration.api_key))


# --- the fixtures as a user meets them -------------------------------------------------
@pytest.fixture
def inner(pytester):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_seldon_cluster_skips_with_a_clear_reason_when_nothing_is_configured(inner, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    inner.makepyfile(test_it="def test_needs_a_cluster(seldon_cluster):\n    pass\n")
    result = inner.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no Kubernetes cluster configured: pass --seldon-kubeconfig*"])


def test_a_new_users_cluster_test_passes_against_the_emulated_api(
    inner, emulator, namespace, kubeconfig, model_server
):
    emulator.create_deployment(
        "iris",
        namespace,
        protocol="v2",
        state="Creating",
        address_url=f"{model_server.url}/v2/models/iris/infer",
    )
    emulator.set_deployment_status_later(0.3, "iris", namespace, state="Available")
    inner.makepyfile(
        test_iris="""
import pytest
from pytest_seldon_load import assert_error_rate_below, assert_p99_below

def test_deployment_is_available(seldon_cluster):
    endpoint = seldon_cluster.deployment("iris")
    assert endpoint.protocol == "v2"

@pytest.mark.load(rate=40, duration="1s")
def test_iris_holds_its_budget(seldon_endpoint, replay_file, load_run):
    result = load_run(seldon_endpoint, replay_file.prediction(seldon_endpoint, num=50))
    assert_p99_below(result, "500ms")
    assert_error_rate_below(result, 0.01)
"""
    )
    # In a process of its own, as a user runs it: the emulator's threads stay here. Whether
    # the generator kept up on a machine shared with parallel tests is not this test's
    # business (40 sends: one late send would void the run).
    result = inner.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--seldon-kubeconfig={kubeconfig}",
        "--seldon-deployment=iris",
        "--load-allow-lag",
    )
    result.assert_outcomes(passed=2)
    assert TOKEN not in result.stdout.str()


def test_a_failed_deployment_errors_the_test_with_its_status(
    inner, emulator, namespace, kubeconfig
):
    emulator.create_deployment("iris", namespace, state="Failed", description="no model found")
    inner.makepyfile(test_iris="def test_it(seldon_endpoint):\n    pass\n")
    result = inner.runpytest(
        "-p", "no:cacheprovider", f"--seldon-kubeconfig={kubeconfig}", "--seldon-deployment=iris"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*SeldonDeployment {namespace}/iris is Failed*", "*description: no model found*"]
    )


def test_cluster_options_are_checked_and_named(inner):
    bad = inner.runpytest("--seldon-ingress=ingress.example.com")
    assert bad.ret != 0
    bad.stderr.fnmatch_lines(["*--seldon-ingress: must look like http://host*"])
    bad = inner.runpytest("--seldon-consumer-keys=keys")
    bad.stderr.fnmatch_lines(["*--seldon-consumer-keys: expected secret/NAME or configmap/NAME*"])
    bad = inner.runpytest("--iago-node-selector=role")
    bad.stderr.fnmatch_lines(["*--iago-node-selector: expected key=value*"])
    assert inner.runpytest("--load-engine=iago", "--co").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_an_api_server_without_exec_websockets_is_named_as_such(kubeconfig, namespace):
    """The cluster's own transport against an API that answers exec with plain HTTP."""
    from kubernetes import client as k8s

    from pytest_seldon_load.cluster.transport import KubernetesTransport, PodCommand

    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    k8s.CoreV1Api(connection.api).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "idle"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        },
    )
    transport = KubernetesTransport(connection)
    with pytest.raises(ClusterError) as failure:
        transport.exec(PodCommand(namespace, "idle", ["true"], timeout=10))
    message = str(failure.value)
    assert message.startswith(f"exec 'true' in pod {namespace}/idle: Handshake status 200")
    assert "does not serve exec/port-forward" in message, message
