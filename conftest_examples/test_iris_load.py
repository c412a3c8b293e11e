"""Example load suite: the iris model on a Seldon server, judged by budgets.

Run it with ``scripts/examples`` (a local MLServer is started for you), or against your own
server with ``pytest conftest_examples -m load --seldon-url=http://host:port``.
Quick pre-merge run: add ``--load-scale=0.2`` (every duration × 0.2).
"""

import pytest
import requests

from pytest_seldon_load import (
    assert_error_rate_below,
    assert_p50_below,
    assert_p99_below,
)

IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


@pytest.mark.load
def test_iris_p99_within_budget(seldon_endpoint, replay_file, load_run):
    replay = replay_file.prediction(seldon_endpoint, features=IRIS, num=1_000, seed=1)
    result = load_run(seldon_endpoint, replay, rate=100, duration="5s", warmup="1s")
    assert_p50_below(result, "25ms")
    assert_p99_below(result, "100ms")


@pytest.mark.load
def test_iris_error_budget_at_poisson_arrivals(seldon_endpoint, replay_file, load_run):
    replay = replay_file.prediction(seldon_endpoint, features=IRIS, num=1_000, seed=2)
    result = load_run(
        seldon_endpoint, replay, rate=100, duration="5s", warmup="1s", arrival="poisson"
    )
    assert_error_rate_below(result, 0.001)


@pytest.mark.load(rate=100, duration="5s", warmup="1s", budgets={"p99": "100ms", "error_rate": 0})
def test_iris_marker_budgets(seldon_endpoint, replay_file, load_run):
    # No assertion here: the marker's budgets are checked after the test body.
    load_run(seldon_endpoint, replay_file.prediction(seldon_endpoint, features=IRIS, num=500))


def test_iris_answers_one_prediction(seldon_endpoint):
    """Not a load test: `-m load` deselects it; a plain `pytest conftest_examples` runs it."""
    if seldon_endpoint.protocol != "v2":
        pytest.skip("this smoke test speaks V2")
    response = requests.post(
        seldon_endpoint.url_for(seldon_endpoint.infer_path),
        json={
            "inputs": [
                {
                    "name": "predict",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "data": [5.1, 3.5, 1.4, 0.2],
                }
            ]
        },
        headers=dict(seldon_endpoint.headers),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0]
