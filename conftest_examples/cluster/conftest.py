"""Cluster examples: load tests of a SeldonDeployment (Core 1), from this machine and from an
Iago pod; and of a Core 2 Model and Pipeline made for the session (test_iris_core2.py).

Nothing here is needed by the plugin; the options say where the cluster is:

    pytest conftest_examples/cluster -m load \\
        --seldon-kubeconfig ~/.kube/config --seldon-namespace seldon \\
        --seldon-deployment iris --iago-pod-selector app=iago

Without a cluster configured, every test here is skipped (seldon_cluster says why).
.github/workflows/cluster.yml runs them on a kind cluster with Seldon Core.
"""

import pytest


@pytest.fixture(scope="session")
def iris(seldon_cluster, pytestconfig):
    """The resource under test, once ready (--seldon-deployment, default the SeldonDeployment
    iris; model/NAME, pipeline/NAME or experiment/NAME for Core 2)."""
    return seldon_cluster.endpoint_for(pytestconfig.getoption("seldon_deployment") or "iris")
