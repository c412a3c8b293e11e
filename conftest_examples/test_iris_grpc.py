"""Example load test over gRPC: the Open Inference Protocol's ModelInfer call.

With ``scripts/examples`` it runs against the local MLServer's gRPC port, beside the HTTP
examples. Against your own server or a Seldon Core 2 mesh::

    pytest conftest_examples -m load --seldon-url grpc://host:9000 --seldon-protocol grpc \\
        --seldon-header Seldon-Model:iris

(``--seldon-protocol grpc`` with no URL runs every example of this folder over gRPC.)
"""

import pytest

from pytest_seldon_load import SeldonEndpoint, assert_error_rate_below, assert_p99_below

IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]


@pytest.fixture(scope="session")
def grpc_endpoint(seldon_endpoint: SeldonEndpoint, request: pytest.FixtureRequest):
    """The target over gRPC: the target itself when it speaks gRPC, else the local server's
    gRPC port when the target is the local server."""
    if seldon_endpoint.protocol == "grpc":
        return seldon_endpoint
    if seldon_endpoint.name == "seldon-local":
        return request.getfixturevalue("seldon_local_server").endpoint("grpc")
    pytest.skip("the target is not a gRPC one: give --seldon-url grpc://... --seldon-protocol grpc")


@pytest.mark.load
def test_iris_over_grpc_within_budget(grpc_endpoint, replay_file, load_run):
    # The same prediction replay as over HTTP, written as gRPC lines (`replay check` reads them).
    replay = replay_file.prediction(grpc_endpoint, features=IRIS, num=500, seed=4, batch=2)
    result = load_run(grpc_endpoint, replay, rate=100, duration="3s", warmup="1s")
    # Every call ended OK (gRPC status 0); a failed call is counted by its code name.
    assert result.status_codes == {0: result.requests}, result.error_kinds
    assert_error_rate_below(result, 0)
    assert_p99_below(result, "100ms")
