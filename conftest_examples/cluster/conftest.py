"""Cluster examples: load tests of a SeldonDeployment, from this machine and from an Iago pod.

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
    """The deployment under test, once Available (--seldon-deployment, default iris)."""
    return seldon_cluster.deployment(pytestconfig.getoption("seldon_deployment") or "iris")
