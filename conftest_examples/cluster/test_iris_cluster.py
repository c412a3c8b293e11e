"""The iris SeldonDeployment under load: once from this machine (the embedded engine, through
the deployment's address or a port-forward), once from an Iago pod in the cluster, once from a
Job of load pods (the kubernetes engine, --load-pods N)."""

import pytest

from pytest_seldon_load import assert_error_rate_below, assert_p99_below

IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


def test_the_deployment_is_available_and_speaks_its_protocol(iris):
    assert iris.protocol in ("v1", "v2")


@pytest.mark.load(rate=20, duration="20s", warmup="5s", connections=8)
def test_iris_from_here(iris, replay_file, load_run):
    result = load_run(iris, replay_file.prediction(iris, features=IRIS, num=1_000, seed=1))
    assert_error_rate_below(result, 0.01)
    assert_p99_below(result, "1s")


@pytest.mark.load(rate=20, duration="30s", warmup="10s", engine="iago", arrival="constant")
def test_iris_from_an_iago_pod(iris, replay_file, load_run):
    result = load_run(iris, replay_file.prediction(iris, features=IRIS, num=1_000, seed=2))
    assert result.engine == "iago"
    assert_error_rate_below(result, 0.01)
    assert_p99_below(result, "1s")


@pytest.mark.load(rate=30, duration="20s", warmup="5s", engine="kubernetes", connections=8)
def test_iris_from_a_job_of_load_pods(iris, replay_file, load_run, pytestconfig):
    result = load_run(iris, replay_file.prediction(iris, features=IRIS, num=1_000, seed=3))
    assert result.engine == "kubernetes"
    assert result.processes == pytestconfig.getoption("load_pods")
    assert result.scheduled == 600
    assert_error_rate_below(result, 0.01)
    assert_p99_below(result, "1s")
