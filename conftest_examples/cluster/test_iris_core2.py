"""Seldon Core 2 under load, as Core 2's own load tests do it: create the iris Model and a
one-step Pipeline, wait until both are Ready, load them through the mesh, delete them.

    pytest conftest_examples/cluster/test_iris_core2.py \\
        --seldon-kubeconfig ~/.kube/config --seldon-namespace seldon-mesh

The mesh is reached by --seldon-ingress if given, else a port-forward to svc/seldon-mesh.
"""

from pathlib import Path

import pytest

from pytest_seldon_load import assert_error_rate_below, assert_p99_below

MANIFEST = Path(__file__).with_name("iris-core2.yaml")
IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


@pytest.fixture(scope="session")
def iris_core2(seldon_cluster):
    """The Model and the Pipeline, once Ready; deleted when the session ends."""
    model, pipeline = seldon_cluster.apply(MANIFEST)
    return {"model": model, "pipeline": pipeline}


def test_requests_are_routed_by_the_seldon_model_header(iris_core2):
    assert iris_core2["model"].headers["Seldon-Model"] == "iris"
    assert iris_core2["pipeline"].headers["Seldon-Model"] == "iris-pipeline.pipeline"


@pytest.mark.parametrize("kind", ["model", "pipeline"])
@pytest.mark.load(rate=20, duration="20s", warmup="5s", connections=8)
def test_iris_through_the_mesh(kind, iris_core2, replay_file, load_run):
    endpoint = iris_core2[kind]
    result = load_run(endpoint, replay_file.prediction(endpoint, features=IRIS, num=500, seed=3))
    assert_error_rate_below(result, 0.01)
    assert_p99_below(result, "1s")
