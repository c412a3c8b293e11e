"""The kubernetes engine against the emulated API (kmock, through the official client), with
a small Job controller that runs each load pod as a local ``seldon-load run`` process."""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import signal
import threading
import time

import numpy as np
import pytest
from emulated_cluster.api import EmulatedKubernetes
from emulated_cluster.jobs import EmulatedJobController
from servers import V2_OK, ServerThread, by_path, fixed

from pytest_seldon_load import hdr
from pytest_seldon_load.cluster.kube import ClusterError, KubeSettings, connect
from pytest_seldon_load.cluster.kubernetes_engine import KubernetesEngine
from pytest_seldon_load.cluster.load_job import (
    MAX_CONFIGMAP_REPLAY_BYTES,
    PART_VARIABLE,
    LoadJobSettings,
    manifests,
    pod_arguments,
)
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engines import ENGINES, EngineContext, EngineUnavailable
from pytest_seldon_load.interrupts import RunInterrupted
from pytest_seldon_load.plan import RunPlan
from pytest_seldon_load.pod_result import result_from_log
from pytest_seldon_load.replay import ReplayFile, ReplayRequest, write_replay

_namespaces = itertools.count(1)


@pytest.fixture(scope="module")
def emulator():
    with EmulatedKubernetes(pod_start_delay=0.05) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def jobs(emulator):
    with EmulatedJobController(emulator) as controller:
        yield controller


@pytest.fixture
def namespace() -> str:
    return f"load{next(_namespaces)}"


@pytest.fixture
def connection(emulator, tmp_path, namespace):
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    connection = connect(KubeSettings(kubeconfig=str(kubeconfig)))
    yield connection
    connection.close()


@pytest.fixture
def replay(tmp_path):
    request = ReplayRequest("POST", "/v2/models/iris/infer", (), b'{"inputs":[]}')
    return write_replay(tmp_path / "iris.replay", [request])


def engine_on(connection, namespace: str, pods: int = 3) -> KubernetesEngine:
    settings = LoadJobSettings(pods=pods, namespace=namespace, poll_interval=0.2)
    return KubernetesEngine.on(connection, settings, pods_on_this_host=True)


def leftovers(emulator, jobs, namespace: str) -> dict[str, list[str]]:
    batch = jobs.batch
    return {
        "jobs": [j.metadata.name for j in batch.list_namespaced_job(namespace).items],
        "pods": [p.metadata.name for p in emulator.core.list_namespaced_pod(namespace).items],
        "configmaps": [
            c.metadata.name for c in emulator.core.list_namespaced_config_map(namespace).items
        ],
    }


def test_three_pods_send_one_schedule_and_merge_exactly(
    emulator, jobs, connection, namespace, replay
) -> None:
    engine = engine_on(connection, namespace)
    with ServerThread(by_path) as server:
        endpoint = SeldonEndpoint(server.url, "v2", "iris")
        plan = RunPlan(rate=150, duration=2, seed=11, label="three pods")
        result = engine.run(endpoint, replay, plan)
    assert result.engine == "kubernetes"
    assert result.processes == 3
    assert result.scheduled == 300
    assert result.ok + result.errors == 300
    assert result.label == "three pods"
    # Each pod's own result, read again from its log: the merge is their exact sum.
    logs = {name: text for (ns, name), text in emulator.pod_logs.items() if ns == namespace}
    assert len(logs) == 3
    parts = [result_from_log(text, name) for name, text in sorted(logs.items())]
    assert sorted(p.scheduled for p in parts) == [100, 100, 100]
    pooled = np.sum([hdr.slot_counts(p.latency) for p in parts], axis=0)
    assert result.p99 == float(hdr.percentiles(pooled, 99.0))
    assert result.p50 == float(hdr.percentiles(pooled, 50.0))
    assert sum(w.ok for w in result.windows) == result.ok
    assert leftovers(emulator, jobs, namespace) == {"jobs": [], "pods": [], "configmaps": []}


def test_a_failed_pod_fails_the_run_with_its_log_and_everything_is_removed(
    emulator, jobs, connection, namespace, replay
) -> None:
    engine = engine_on(connection, namespace, pods=2)
    with ServerThread(fixed(500, V2_OK)) as server:
        endpoint = SeldonEndpoint(server.url, "v2", "iris")
        with pytest.raises(ClusterError, match=r"load pod .* failed: .*every request failed"):
            engine.run(endpoint, replay, RunPlan(rate=20, duration=1, seed=1))
    assert leftovers(emulator, jobs, namespace) == {"jobs": [], "pods": [], "configmaps": []}


def test_ctrl_c_removes_the_job_its_pods_and_the_replay(
    emulator, jobs, connection, namespace, replay
) -> None:
    engine = engine_on(connection, namespace, pods=2)
    started = jobs.pods_started
    with ServerThread(by_path) as server:
        endpoint = SeldonEndpoint(server.url, "v2", "iris")

        def interrupt_once_running() -> None:
            deadline = time.monotonic() + 20
            while jobs.pods_started < started + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=interrupt_once_running, daemon=True).start()
        with pytest.raises(RunInterrupted) as interrupted:
            engine.run(endpoint, replay, RunPlan(rate=20, duration=60, seed=1))
    assert interrupted.value.result.interrupted
    assert leftovers(emulator, jobs, namespace) == {"jobs": [], "pods": [], "configmaps": []}
    deadline = time.monotonic() + 5
    while jobs.running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jobs.running() == []


def test_the_job_is_indexed_and_each_pod_takes_its_part_from_its_index() -> None:
    endpoint = SeldonEndpoint("http://iris.models:8000", "v2", "iris", {"Seldon-Model": "iris"})
    arguments = pod_arguments(endpoint.base_url, endpoint, RunPlan(rate=900, duration=60), 3)
    settings = LoadJobSettings(pods=3, namespace="perf", image="registry/seldon-load:1")
    config_map, job = manifests("seldon-load-x", settings, arguments, "H4sIAAAA", 500)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "registry/seldon-load:1"
    args = container["args"]
    assert args[args.index("--part") + 1] == f"$({PART_VARIABLE})"
    assert args[args.index("--parts") + 1] == "3"
    assert "--result-to-stdout" in args and "Seldon-Model:iris" in args
    assert container["env"][0]["name"] == PART_VARIABLE
    assert config_map["binaryData"] == {"requests.replay.gz": "H4sIAAAA"}
    assert args[args.index("--replay") + 1].endswith("/requests.replay.gz")


def test_the_replay_travels_gzip_compressed_and_comes_back_whole(tmp_path) -> None:
    from pytest_seldon_load.cluster.load_job import _replay_gzip

    padding = b"x" * 250  # JSON-like lines that compress well, as prediction replays do
    lines = [
        ReplayRequest(
            "POST", "/v2/models/iris/infer", (), b'{"inputs": [%d], "p": "%s"}' % (i, padding)
        )
        for i in range(8_000)
    ]
    replay = write_replay(tmp_path / "many.replay", lines)
    assert replay.size_bytes() > 2 * MAX_CONFIGMAP_REPLAY_BYTES  # too big as text
    packed = base64.b64decode(_replay_gzip(replay))
    assert len(packed) < MAX_CONFIGMAP_REPLAY_BYTES
    copy = tmp_path / "copy.replay.gz"
    copy.write_bytes(packed)
    assert [r.body for r in ReplayFile(copy)] == [r.body for r in ReplayFile(replay.path)]


def test_what_cannot_travel_into_pods_is_refused_by_name(tmp_path, connection) -> None:
    secret = SeldonEndpoint("http://iris:8000", "v2", "iris", {"Authorization": "Bearer s3cr3t"})
    with pytest.raises(ClusterError, match=r"secret header.*Authorization") as refused:
        pod_arguments(secret.base_url, secret, RunPlan(rate=1, duration=1), 2)
    assert "s3cr3t" not in str(refused.value)
    big = tmp_path / "big.replay"
    line = ReplayRequest("POST", "/v2/models/iris/infer", (), b"x" * 1000)
    noise = [  # random text: it does not compress below the limit
        ReplayRequest("POST", "/v2/models/iris/infer", (), secrets.token_urlsafe(750).encode())
        for _ in range(MAX_CONFIGMAP_REPLAY_BYTES // 700)
    ]
    write_replay(big, noise)
    engine = KubernetesEngine.on(connection, LoadJobSettings(), pods_on_this_host=False)
    local = SeldonEndpoint("http://127.0.0.1:9000", "v2", "iris")
    with pytest.raises(ClusterError, match="loopback"):
        engine.run(local, write_replay(tmp_path / "s.replay", [line]), RunPlan(rate=1, duration=1))
    far = SeldonEndpoint("http://iris.models:8000", "v2", "iris")
    with pytest.raises(ClusterError, match=r"bytes gzip-compressed.*ConfigMap holds 1 MiB"):
        engine.run(far, ReplayFile(big), RunPlan(rate=1, duration=1))
    with pytest.raises(ValueError, match="--load-pods"):
        LoadJobSettings(pods=0)


def test_outside_a_pytest_session_the_engine_says_what_it_needs() -> None:
    with pytest.raises(EngineUnavailable, match="kubernetes engine runs a Job"):
        ENGINES.create("kubernetes", EngineContext(caller="seldon-load run"))


def test_a_pytest_session_with_the_kubernetes_engine_judges_the_merged_result(
    pytester, emulator, jobs, namespace, tmp_path
) -> None:
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    pytester.makeconftest(
        """
import pytest
from pytest_seldon_load.cluster.loopback import LoopbackTransport

@pytest.fixture(scope="session")
def seldon_pod_transport():
    return LoopbackTransport()  # the emulated cluster's pods run on this machine
"""
    )
    pytester.makepyfile(
        test_pods="""
import pytest

@pytest.mark.load(rate=90, duration=1, budgets={"error_rate": 0})
def test_two_pods(seldon_endpoint, replay_file, load_run):
    result = load_run(seldon_endpoint, replay_file.prediction(seldon_endpoint, num=20))
    assert result.engine == "kubernetes" and result.processes == 2
    assert result.scheduled == 90
"""
    )
    with ServerThread(by_path) as server:
        outcome = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            f"--seldon-kubeconfig={kubeconfig}",
            f"--seldon-url={server.url}",
            "--load-engine=kubernetes",
            "--load-pods=2",  # three pods: test_three_pods_send_one_schedule_and_merge_exactly
            "--load-allow-lag",
        )
    outcome.assert_outcomes(passed=1)
    assert leftovers(emulator, jobs, namespace) == {"jobs": [], "pods": [], "configmaps": []}
