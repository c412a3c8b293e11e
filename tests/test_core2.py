"""Seldon Core 2 through the cluster layer: Models, Pipelines and Experiments on an emulated
Kubernetes API (kmock, through the official client), reached through a stand-in mesh that
routes ONLY by the ``Seldon-Model`` header to a real local MLServer (404 otherwise), so a load
run with zero errors proves every request carried its route.

Only exec/port-forward's websocket is substituted (LoopbackTransport).
"""

from __future__ import annotations

import itertools
import time

import pytest
import requests
import yaml
from emulated_cluster.api import EmulatedKubernetes

from pytest_seldon_load.cluster.kube import ClusterError, KubeSettings, connect
from pytest_seldon_load.cluster.loopback import LoopbackTransport
from pytest_seldon_load.cluster.manifest import ManifestError
from pytest_seldon_load.cluster.resources import UnknownKind, get, parse_target
from pytest_seldon_load.cluster.resources.base import ResourceNotReady
from pytest_seldon_load.cluster.resources.core2 import grpc_url
from pytest_seldon_load.cluster.seldon_cluster import SeldonCluster
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import run_load
from pytest_seldon_load.generate import write_prediction_replay
from pytest_seldon_load.protocols import v2_request
from pytest_seldon_load.replay import ReplayRequest, write_replay

pytest_plugins = ["pytester"]

_namespaces = itertools.count(1)
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture(scope="module")
def emulator():
    with EmulatedKubernetes(pod_start_delay=0.05, core2_ready_delay=0.3) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def mlserver(seldon_local_server):
    """The session's local MLServer (the plugin's fixture): one start serves every module."""
    return seldon_local_server


@pytest.fixture(scope="module")
def mesh(emulator, mlserver):
    """HTTP and gRPC on one port, as Core 2's Envoy serves them."""
    return emulator.start_mesh(mlserver.base_url, mlserver.model, grpc_upstream=mlserver.grpc_url)


@pytest.fixture
def namespace() -> str:
    return f"core2-{next(_namespaces)}"


@pytest.fixture
def kubeconfig(emulator, tmp_path, namespace):
    return emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)


@pytest.fixture
def cluster(kubeconfig):
    """Reaches the mesh by a port-forward to svc/seldon-mesh (no ingress)."""
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    cluster = SeldonCluster(connection, LoopbackTransport(), wait_timeout=5.0, poll_interval=0.05)
    yield cluster
    cluster.close()


@pytest.fixture
def via_ingress(kubeconfig, mesh):
    """Reaches the mesh as --seldon-ingress gives it."""
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    cluster = SeldonCluster(
        connection, LoopbackTransport(), ingress=mesh.url, wait_timeout=5.0, poll_interval=0.05
    )
    yield cluster
    cluster.close()


def short_load(endpoint, tmp_path):
    """1.5 s at 30 req/s of iris predictions at the endpoint's own infer path."""
    lines = []
    for row in IRIS_ROWS:
        request = v2_request(endpoint.model, [row], datatype="FP32")
        lines.append(ReplayRequest("POST", endpoint.infer_path, request.headers, request.body))
    replay = write_replay(tmp_path / "core2.replay", lines)
    return run_load(endpoint, replay, rate=30, duration=1.5)


def assert_clean(result):
    assert result.requests >= 30, result
    assert result.errors == 0, (result.status_codes, result.error_kinds)


# --- load through the mesh -------------------------------------------------------------
def test_a_model_pipeline_and_experiment_take_load_through_the_mesh(
    emulator, mesh, via_ingress, namespace, tmp_path
):
    emulator.create_core2("Model", "iris", namespace)
    emulator.create_core2("Pipeline", "iris-pipeline", namespace)
    emulator.create_core2("Experiment", "iris-split", namespace)
    model = via_ingress.model("iris")
    pipeline = via_ingress.pipeline("iris-pipeline")
    experiment = via_ingress.experiment("iris-split")
    assert dict(model.headers) == {"Seldon-Model": "iris"}
    assert dict(pipeline.headers) == {"Seldon-Model": "iris-pipeline.pipeline"}
    assert dict(experiment.headers) == {"Seldon-Model": "iris-split.experiment"}
    assert pipeline.infer_path == "/v2/pipelines/iris-pipeline/infer"
    assert experiment.infer_path == "/v2/models/iris/infer"  # the experiment's default
    before = mesh.seen.copy()
    for endpoint in (model, pipeline, experiment):
        assert_clean(short_load(endpoint, tmp_path))
    arrived = mesh.seen - before
    assert arrived[("iris-pipeline.pipeline", "/v2/pipelines/iris-pipeline/infer")] >= 30
    assert arrived[("iris-split.experiment", "/v2/models/iris/infer")] >= 30
    assert arrived[("iris", "/v2/models/iris/infer")] >= 30
    assert via_ingress.in_cluster_url(model) == mesh.url


def test_without_an_ingress_the_mesh_service_is_port_forwarded(
    emulator, mesh, cluster, namespace, tmp_path
):
    emulator.create_mesh_service(namespace)
    emulator.create_core2("Model", "iris", namespace)
    endpoint = cluster.endpoint_for("model/iris")
    assert endpoint.base_url.startswith("http://127.0.0.1:") and endpoint.base_url != mesh.url
    assert_clean(short_load(endpoint, tmp_path))
    assert cluster.in_cluster_url(endpoint) == (
        f"http://seldon-mesh.{namespace}.svc.cluster.local:80"
    )


# --- gRPC through the mesh ------------------------------------------------------------
IRIS_FEATURES = [
    {"name": name, "type": "numeric", "min": 0.1, "max": 7.9}
    for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
]
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def short_grpc_load(endpoint, tmp_path):
    """1.5 s at 30 req/s of gRPC iris predictions named for the endpoint's model."""
    replay = write_prediction_replay(
        tmp_path / f"{endpoint.model}-grpc.replay",
        protocol="grpc",
        features=IRIS_FEATURES,
        num=30,
        model=endpoint.model,
    )
    return run_load(endpoint, replay, rate=30, duration=1.5)


def test_models_pipelines_and_experiments_answer_grpc_through_the_mesh(
    emulator, mesh, via_ingress, namespace, tmp_path
):
    emulator.create_core2("Model", "iris", namespace)
    emulator.create_core2("Pipeline", "iris-pipeline", namespace)
    emulator.create_core2("Experiment", "iris-split", namespace)
    model = via_ingress.model("iris", grpc=True)
    pipeline = via_ingress.pipeline("iris-pipeline", grpc=True)
    experiment = via_ingress.experiment("iris-split", grpc=True)
    for endpoint in (model, pipeline, experiment):
        assert endpoint.protocol == "grpc"
        assert endpoint.base_url == f"grpc://127.0.0.1:{mesh.port}"
    assert (pipeline.model, experiment.model) == ("iris-pipeline", "iris")  # the call's name
    assert dict(pipeline.headers) == {"Seldon-Model": "iris-pipeline.pipeline"}
    before = mesh.seen.copy()
    for endpoint in (model, pipeline, experiment):
        assert_clean(short_grpc_load(endpoint, tmp_path))
    arrived = mesh.seen - before
    for route in ("iris", "iris-pipeline.pipeline", "iris-split.experiment"):
        assert arrived[(route, MODEL_INFER)] >= 30, arrived
    assert via_ingress.in_cluster_url(model) == f"grpc://127.0.0.1:{mesh.port}"


def test_grpc_without_an_ingress_rides_the_mesh_port_forward(
    emulator, mesh, cluster, namespace, tmp_path
):
    emulator.create_mesh_service(namespace)
    emulator.create_core2("Model", "iris", namespace)
    endpoint = cluster.endpoint_for("model/iris", grpc=True)
    assert endpoint.base_url.startswith("grpc://127.0.0.1:")
    assert endpoint.base_url != f"grpc://127.0.0.1:{mesh.port}"  # the forward's own port
    assert_clean(short_grpc_load(endpoint, tmp_path))
    assert (
        cluster.in_cluster_url(endpoint) == f"grpc://seldon-mesh.{namespace}.svc.cluster.local:80"
    )


def test_a_route_the_mesh_does_not_know_fails_every_grpc_call(
    emulator, mesh, via_ingress, namespace, tmp_path
):
    emulator.create_core2("Model", "iris", namespace)
    endpoint = via_ingress.model("iris", grpc=True)
    stray = SeldonEndpoint(
        endpoint.base_url, protocol="grpc", model="iris", headers={"Seldon-Model": "nope"}
    )
    result = short_grpc_load(stray, tmp_path)
    assert result.ok == 0 and result.errors == result.requests >= 30
    assert set(result.status_codes) == {5}  # NOT_FOUND, as the stand-in answers


def test_a_seldon_deployment_is_not_offered_over_grpc():
    deployment = SeldonEndpoint("http://127.0.0.1:9000", name="SeldonDeployment ns/iris")
    with pytest.raises(ClusterError, match=r"SeldonDeployment ns/iris: gRPC \(--seldon-protocol"):
        get("sdep").grpc_endpoint(deployment, "http://iris.ns.svc:8000")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://mesh.example:8080", "grpc://mesh.example:8080"),
        ("http://10.0.0.5", "grpc://10.0.0.5:80"),
        ("https://mesh.example", "grpcs://mesh.example:443"),
        ("http://[::1]:9000/", "grpc://[::1]:9000"),
    ],
)
def test_the_mesh_url_becomes_a_grpc_target(url, expected):
    assert grpc_url(url, "Model ns/iris") == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://ingress.example/seldon/mesh",
        "ftp://mesh.example",
        "http://user:tok@/",
        "http://user:tok@mesh.example",
        "http://mesh.example:99999",
        "http://mesh.example:port",
        "http://mesh.example/?route=x",
    ],
)
def test_a_mesh_url_grpc_cannot_use_is_named(url):
    with pytest.raises(ClusterError, match=r"^Model ns/iris: gRPC needs the mesh at a bare") as e:
        grpc_url(url, "Model ns/iris")
    assert "tok" not in str(e.value)


def test_a_renamed_mesh_service_is_used(emulator, mesh, kubeconfig, namespace):
    emulator.create_mesh_service(namespace, service="core2-mesh")
    emulator.create_core2("Model", "iris", namespace)
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    default = SeldonCluster(connection, LoopbackTransport(), poll_interval=0.05)
    with pytest.raises(ClusterError, match=f"there is no Service {namespace}/seldon-mesh"):
        default.model("iris", timeout=2)
    renamed = SeldonCluster(
        connection, LoopbackTransport(), poll_interval=0.05, mesh_service="core2-mesh"
    )
    try:
        endpoint = renamed.model("iris", timeout=2)
        answer = requests.post(
            endpoint.url_for(endpoint.infer_path),
            data=v2_request("iris", [IRIS_ROWS[0]], datatype="FP32").body,
            headers=dict(endpoint.headers),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-seldon-route"] == ":iris_1:"
    finally:
        renamed.close()


def test_a_mesh_without_the_route_answers_404_and_the_run_says_so(
    emulator, mesh, via_ingress, namespace, tmp_path
):
    emulator.create_core2("Model", "iris", namespace)
    endpoint = via_ingress.model("iris")
    unrouted = type(endpoint)(endpoint.base_url, model="iris", headers={"Seldon-Model": "nope"})
    result = short_load(unrouted, tmp_path)
    assert result.ok == 0 and result.status_codes == {404: result.requests}
    pinned = requests.post(
        endpoint.url_for(endpoint.infer_path),
        headers={**endpoint.headers, "x-seldon-route": ":iris_1:"},
        timeout=5,
    )
    assert pinned.status_code == 404
    assert (
        "no route for Seldon-Model: 'nope'"
        in requests.post(
            endpoint.url_for(endpoint.infer_path), headers={"Seldon-Model": "nope"}, timeout=5
        ).text
    )


def test_x_seldon_route_never_joins_the_endpoint_headers(emulator, mesh, via_ingress, namespace):
    emulator.create_core2("Model", "iris", namespace)
    endpoint = via_ingress.resource(
        "model", "iris", headers={"X-Seldon-Route": ":iris_1:", "Authorization": "Bearer t0k"}
    )
    assert dict(endpoint.headers) == {"Seldon-Model": "iris", "Authorization": "Bearer t0k"}


# --- readiness and failure -------------------------------------------------------------
def test_a_model_in_model_progressing_is_waited_for(emulator, cluster, namespace):
    emulator.create_core2("Model", "slow", namespace, state="progressing", text="loading")
    emulator.set_core2_state_later(0.4, "Model", "slow", namespace, "ready")
    started = time.monotonic()
    resource = get("model").wait_ready(
        cluster.connection, namespace, "slow", timeout=5, poll_interval=0.05
    )
    assert time.monotonic() - started >= 0.35, "returned before Ready was True"
    assert resource.condition("Ready") == {"type": "Ready", "status": "True"}


def test_a_new_model_goes_through_progressing_to_ready_by_itself(emulator, cluster, namespace):
    emulator.create_core2("Model", "fresh", namespace, state=None)
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        resource = get("model").read(cluster.connection, namespace, "fresh")
        model_ready = resource.condition("ModelReady")
        seen.add(model_ready.get("message") if model_ready else None)
        if get("model").is_ready(resource):
            break
        time.sleep(0.05)
    assert {"ModelProgressing", "ModelAvailable"} <= seen


def test_a_failed_model_fails_at_once_with_its_own_words(emulator, cluster, namespace):
    emulator.create_core2(
        "Model",
        "broken",
        namespace,
        state="failed",
        text="Failed to download from gs://seldon-models/nothing any files",
    )
    with pytest.raises(ResourceNotReady) as failure:
        cluster.model("broken", timeout=30)  # "failed", not "was not Ready within 30s"
    message = str(failure.value)
    assert message.startswith(
        f"Model {namespace}/broken failed: ModelReady=False, ModelFailed: "
        "Failed to download from gs://seldon-models/nothing any files"
    )
    assert "  - Ready=False" in message


def test_a_model_that_cannot_be_scheduled_fails_at_once(emulator, cluster, namespace):
    emulator.create_core2(
        "Model", "big", namespace, state="failed", text="failed to schedule model big. [no server]"
    )
    with pytest.raises(ResourceNotReady, match=r"ScheduleFailed: failed to schedule model big"):
        cluster.model("big", timeout=30)


def test_a_failed_pipeline_shows_its_state_and_text_the_other_way_round(
    emulator, cluster, namespace
):
    emulator.create_core2(
        "Pipeline", "p", namespace, state="failed", text="step iris: model not found"
    )
    with pytest.raises(ResourceNotReady) as failure:
        cluster.pipeline("p", timeout=30)
    message = str(failure.value)
    assert (
        f"Pipeline {namespace}/p failed: PipelineReady=False, PipelineFailed: step iris" in message
    )
    assert "PipelineReady=False (PipelineFailed): step iris: model not found" in message


def test_the_deadline_shows_every_condition(emulator, cluster, namespace):
    emulator.create_core2("Experiment", "ab", namespace, state="progressing", text="waiting")
    started = time.monotonic()
    with pytest.raises(ResourceNotReady) as failure:
        cluster.experiment("ab", timeout=0.5)
    assert time.monotonic() - started >= 0.45
    message = str(failure.value)
    assert f"Experiment {namespace}/ab was not Ready within 0.5s" in message
    assert "ExperimentReady=False (CandidatesNotReady): waiting" in message
    assert "Ready=False" in message.splitlines()[-1]


def test_a_missing_resource_names_kind_name_and_namespace(emulator, cluster, namespace):
    emulator.create_core2("Model", "iris", namespace)
    with pytest.raises(ClusterError) as failure:
        cluster.model("irsi", timeout=5)
    assert f"no Model 'irsi' in namespace '{namespace}'" in str(failure.value)
    assert "models there: iris" in str(failure.value)
    with pytest.raises(ClusterError, match=f"no Pipeline 'iris' in namespace '{namespace}'"):
        cluster.pipeline("iris", timeout=5)


# --- naming targets --------------------------------------------------------------------
def test_targets_name_a_kind_and_a_name():
    assert parse_target("iris") == ("sdep", "iris")
    assert parse_target("sdep/iris") == ("sdep", "iris")
    assert parse_target("model/iris") == ("model", "iris")
    assert parse_target("pipeline/p") == ("pipeline", "p")
    assert parse_target("experiment/ab") == ("experiment", "ab")
    assert parse_target("Model/iris") == ("model", "iris")
    with pytest.raises(UnknownKind) as unknown:
        parse_target("server/mlserver")
    assert str(unknown.value) == (
        "unknown Seldon resource kind 'server'; kinds: sdep, model, pipeline, experiment"
    )
    for bad in ("", "model/", "/iris", "a/b/c"):
        with pytest.raises(UnknownKind, match="expected NAME or KIND/NAME"):
            parse_target(bad)


# --- apply(): resources for the session -------------------------------------------------
MANIFEST = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris
spec:
  storageUri: gs://seldon-models/scv2/samples/mlserver_1.6.0/iris-sklearn
  requirements: [sklearn]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: iris-pipeline
spec:
  steps: [{name: iris}]
  output: {steps: [iris]}
"""


def test_apply_creates_waits_and_close_deletes(emulator, mesh, kubeconfig, namespace, tmp_path):
    path = tmp_path / "iris.yaml"
    path.write_text(MANIFEST)
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    cluster = SeldonCluster(
        connection, LoopbackTransport(), ingress=mesh.url, wait_timeout=30, poll_interval=0.05
    )
    model, pipeline = cluster.apply(path)
    assert (dict(model.headers), pipeline.infer_path) == (
        {"Seldon-Model": "iris"},
        "/v2/pipelines/iris-pipeline/infer",
    )
    assert get("model").list_names(connection, namespace) == ["iris"]
    assert_clean(short_load(pipeline, tmp_path))
    with pytest.raises(ClusterError, match="already exists; apply\\(\\) creates"):
        cluster.apply(yaml.safe_load(MANIFEST.split("---")[0]))
    cluster.close()
    check = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    assert get("model").list_names(check, namespace) == []
    assert get("pipeline").list_names(check, namespace) == []


def test_apply_deletes_what_it_made_even_when_the_wait_fails(
    emulator, cluster, kubeconfig, namespace
):
    manifest = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "never"},
        "spec": {"storageUri": "gs://x"},
    }
    emulator.core2_ready_delay, delay = 60.0, emulator.core2_ready_delay
    try:
        with pytest.raises(ResourceNotReady, match=r"was not Ready within 0\.4s"):
            cluster.apply(manifest, timeout=0.4)
    finally:
        emulator.core2_ready_delay = delay
    assert get("model").list_names(cluster.connection, namespace) == ["never"]
    cluster.close()
    check = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    assert get("model").list_names(check, namespace) == []


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}},
            "manifest document 1: kind 'ConfigMap' is not a Seldon resource apply() knows "
            "(SeldonDeployment, Model, Pipeline, Experiment)",
        ),
        (
            {"apiVersion": "mlops.seldon.io/v1", "kind": "Model", "metadata": {"name": "x"}},
            "manifest document 1: a Model has apiVersion 'mlops.seldon.io/v1alpha1', "
            "got 'mlops.seldon.io/v1'",
        ),
        (
            {"apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Model", "spec": {}},
            "manifest document 1: Model has no metadata.name",
        ),
        ({"metadata": {"name": "x"}}, "manifest document 1: no 'kind'"),
        (
            [
                {
                    "apiVersion": "mlops.seldon.io/v1alpha1",
                    "kind": "Model",
                    "metadata": {"name": "fine"},
                    "spec": {"storageUri": "gs://x"},
                },
                "text",
            ],
            "manifest document 2: expected a mapping, got str",
        ),
        (42, "manifest: expected a YAML path, a dict or a list of dicts, got int"),
    ],
)
def test_bad_manifests_are_named_before_anything_is_made(cluster, namespace, manifest, expected):
    with pytest.raises(ManifestError) as failure:
        cluster.apply(manifest)
    assert str(failure.value) == expected
    assert get("model").list_names(cluster.connection, namespace) == []


def test_a_malformed_yaml_file_names_its_line(cluster, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata: {name: [x\n")
    with pytest.raises(ManifestError, match=rf"manifest {path} line \d+: not valid YAML"):
        cluster.apply(path)
    with pytest.raises(ManifestError, match="cannot read it"):
        cluster.apply(tmp_path / "missing.yaml")


def test_a_resource_of_the_wrong_kind_is_named(emulator, cluster, namespace):
    emulator.create_deployment("iris", namespace, state="Available")
    with pytest.raises(ClusterError, match=f"no Model 'iris' in namespace '{namespace}'"):
        cluster.model("iris", timeout=2)
    with pytest.raises(UnknownKind, match="kinds: sdep, model, pipeline, experiment"):
        cluster.endpoint_for("seldondeployments/iris")


# --- as a user meets it -----------------------------------------------------------------
def run_against_the_cluster(pytester, kubeconfig, mesh, *options: str):
    """The suite pytester made, in a subprocess, with the cluster and mesh as a user gives them."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester.runpytest(
        *("-p", "no:cacheprovider", "--load-allow-lag", f"--seldon-kubeconfig={kubeconfig}"),
        *(f"--seldon-ingress={mesh.url}", *options),
    )


@pytest.mark.parametrize(
    ("kind", "name", "options", "expected"),
    [
        (
            "Pipeline",
            "iris-pipeline",
            ("--seldon-deployment=pipeline/iris-pipeline",),
            'seldon_endpoint.infer_path == "/v2/pipelines/iris-pipeline/infer"',
        ),
        (
            "Model",
            "iris",
            ("--seldon-deployment=model/iris", "--seldon-protocol=grpc"),
            'seldon_endpoint.base_url.startswith("grpc://127.0.0.1:")',
        ),
    ],
    ids=["pipeline-over-http", "model-over-grpc"],
)
def test_seldon_deployment_names_a_core2_resource_for_seldon_endpoint(
    pytester, emulator, mesh, kubeconfig, namespace, kind, name, options, expected
):
    emulator.create_core2(kind, name, namespace)
    pytester.makepyfile(
        test_as_a_user=f"""
import pytest
from pytest_seldon_load import assert_error_rate_below

@pytest.mark.load(rate=25, duration="1500ms")
def test_the_resource_holds(seldon_endpoint, replay_file, load_run):
    assert {expected}, seldon_endpoint
    result = load_run(seldon_endpoint, replay_file.prediction(seldon_endpoint, num=30))
    assert result.ok >= 30 and result.errors == 0, result.status_codes
    assert_error_rate_below(result, 0.001)
"""
    )
    before = mesh.seen.copy()
    result = run_against_the_cluster(pytester, kubeconfig, mesh, *options)
    result.assert_outcomes(passed=1)
    route = name + (".pipeline" if kind == "Pipeline" else "")
    assert sum(n for (seen, _), n in (mesh.seen - before).items() if seen == route) >= 30


def test_an_unknown_kind_is_a_usage_error_listing_the_kinds(pytester):
    result = pytester.runpytest("-p", "no:cacheprovider", "--seldon-deployment=server/mlserver")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--seldon-deployment: unknown Seldon resource kind 'server'; kinds: sdep, model,*"]
    )
