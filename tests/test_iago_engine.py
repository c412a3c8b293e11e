"""The ``iago`` engine: Ostrich stats into a LoadResult, the pod's manifest and lifecycle
(through an emulated Kubernetes API), and whole runs through a pod whose commands run here
(LoopbackTransport: the only substitute, for exec/port-forward's websockets). The pod runs
the real docker/start-load-test.sh, hence the real ``seldon-load run --admin-port``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from emulated_cluster.api import EmulatedKubernetes
from servers import Recording, ServerThread

from pytest_seldon_load import BudgetExceeded, InvalidMeasurement, LoadResult, SeldonEndpoint
from pytest_seldon_load.assertions import assert_error_rate_below, assert_p99_below
from pytest_seldon_load.cluster.kube import ClusterError, KubeSettings, connect
from pytest_seldon_load.cluster.loopback import LoopbackTransport
from pytest_seldon_load.engine import EngineSettings, RunInterrupted
from pytest_seldon_load.iago.engine import IagoRunner, IagoSettings
from pytest_seldon_load.iago.pod import IagoPodSpec, create_pod, delete_pod, find_pod
from pytest_seldon_load.iago.stats import (
    OstrichStats,
    StatsError,
    SummaryLoadResult,
    result_from_stats,
)
from pytest_seldon_load.plan import RunPlan
from pytest_seldon_load.replay import write_replay

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "docker"

IAGO_STATS = json.loads("""
{"counters": {"client/requests": 1000, "client/success": 990, "client/failures": 10,
              "client/failures/com.twitter.finagle.ChannelClosedException": 6,
              "client/failures/com.twitter.finagle.IndividualRequestTimeoutException": 4,
              "client/connects": 12, "requests_sent": 1000, "200": 985, "503": 5,
              "records-read": 1000, "bad_lines": 0},
 "gauges": {"client/pending": 3, "client/connections": 12, "queue_depth": 0,
            "clock_error": 0.0},
 "labels": {},
 "metrics": {"client/request_latency_ms": {"count": 990, "sum": 12870, "average": 13,
             "minimum": 2, "maximum": 480, "p50": 10, "p90": 22, "p95": 31, "p99": 95,
             "p999": 410, "p9999": 480}}}
""")
"""What Iago's admin port (Ostrich) answers on /stats.json, in IAGO.md's shape and names."""


# --- Ostrich stats → LoadResult ---------------------------------------------------------
def iago_result(**overrides) -> SummaryLoadResult:
    options = {
        "baseline": None,
        "duration": 10.0,
        "target_rate": 100.0,
        "polls": [],
        "warmup": 0.0,
        "label": "iago run",
        "target": "http://seldon-server:80",
    }
    options.update(overrides)
    return result_from_stats(OstrichStats.parse(IAGO_STATS), **options)


def test_iago_stats_become_a_summary_only_uncorrected_result():
    result = iago_result()
    assert (result.engine, result.corrected) == ("iago", False)
    assert (result.requests, result.errors, result.ok) == (1000, 15, 985)
    assert result.error_kinds == {
        "com.twitter.finagle.ChannelClosedException": 6,
        "com.twitter.finagle.IndividualRequestTimeoutException": 4,
        "http_503": 5,
    }
    assert result.status_codes == {200: 985, 503: 5}
    assert (result.p50, result.p90, result.p95, result.p99, result.p999) == (10, 22, 31, 95, 410)
    assert result.percentile(99.99) == 480 and result.max == 480 and result.mean == 13
    assert result.percentile(0) == 2
    assert result.percentile(75) == 22, "between reported percentiles: the next one up"
    assert result.service_percentile(99) == 95, "Iago times from the actual send"
    assert result.achieved_rate == 100.0
    notes = " | ".join(result.notes)
    assert "summary-only" in notes and "NOT corrected for coordinated omission" in notes
    assert "±5%" in notes


def test_budgets_judge_an_iago_result_and_say_it_is_uncorrected():
    result = iago_result()
    assert_p99_below(result, "100ms")
    with pytest.raises(BudgetExceeded) as failure:
        assert_p99_below(result, "50ms")
    assert "latency (uncorrected)" in str(failure.value)
    with pytest.raises(BudgetExceeded):
        assert_error_rate_below(result, 0.01)


def test_a_warm_up_baseline_is_subtracted_from_the_counts():
    before = json.loads(json.dumps(IAGO_STATS))
    before["counters"].update(
        {
            "client/requests": 200,
            "client/failures": 2,
            "200": 198,
            "503": 0,
            "client/failures/com.twitter.finagle.ChannelClosedException": 2,
        }
    )
    result = iago_result(baseline=OstrichStats.parse(before), warmup=5.0)
    assert (result.requests, result.errors) == (800, 13)
    assert result.status_codes == {200: 787, 503: 5}
    assert any("percentiles cover the whole run, warm-up included" in n for n in result.notes)


def test_no_latencies_reported_means_no_percentiles():
    empty = {
        "counters": {"client/requests": 0},
        "metrics": {"client/request_latency_ms": {"count": 0}},
    }
    result = result_from_stats(
        OstrichStats.parse(empty),
        baseline=None,
        duration=1.0,
        target_rate=1.0,
        polls=[],
        warmup=0.0,
    )
    assert math.isnan(result.p99) and math.isnan(result.max)
    with pytest.raises(InvalidMeasurement):
        assert_p99_below(result, "1s")


def test_a_summary_result_round_trips_through_json_and_refuses_to_merge():
    result = iago_result(
        polls=[
            {
                "second": 5.0,
                "sent": 500,
                "ok": 495,
                "errors": 5,
                "p50": 10.0,
                "p99": 90.0,
                "cumulative": True,
            }
        ]
    )
    text = result.to_json()
    assert json.loads(text)["kind"] == "summary-only"
    again = SummaryLoadResult.from_json(text)
    assert (again.p99, again.p999, again.requests, again.errors) == (95, 410, 1000, 15)
    assert again.notes == result.notes and again.timeline == result.timeline
    assert again.corrected is False and again.engine == "iago"
    with pytest.raises(ValueError, match="cannot be merged"):
        SummaryLoadResult.merge([again, again])


def test_a_saved_iago_result_reads_back_through_load_result():
    again = LoadResult.from_json(iago_result().to_json())
    assert isinstance(again, SummaryLoadResult) and again.p99 == 95


def test_stats_that_are_not_ostrich_shaped_are_refused_naming_the_field():
    with pytest.raises(StatsError, match=r"stats.json: 'metrics' must be an object"):
        OstrichStats.parse({"metrics": []})
    with pytest.raises(StatsError, match=r"counters\['client/requests'\] must be a number"):
        OstrichStats.parse({"counters": {"client/requests": "many"}})
    with pytest.raises(StatsError, match="expected a JSON object"):
        OstrichStats.parse([1, 2])


# --- the pod ----------------------------------------------------------------------------
def test_the_pod_manifest_matches_deploy_iago_yaml():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "iago.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    service = next(d for d in documents if d["kind"] == "Service")
    template = deployment["spec"]["template"]["spec"]
    manifest = IagoPodSpec(node_selector={"role": "iago"}).manifest("iago-1")["spec"]
    ours, theirs = manifest["containers"][0], template["containers"][0]
    assert ours["command"] == theirs["command"] == ["sleep", "infinity"]
    assert (
        ours["volumeMounts"]
        == theirs["volumeMounts"]
        == [{"name": "seldon-data", "mountPath": "/seldon-data"}]
    )
    assert ours["ports"][0]["containerPort"] == theirs["ports"][0]["containerPort"] == 9994
    assert manifest["nodeSelector"] == template["nodeSelector"] == {"role": "iago"}
    assert service["spec"]["ports"][0]["port"] == 9994
    assert deployment["apiVersion"] == "apps/v1"
    claimed = IagoPodSpec(data_claim="seldon-data").manifest("x")["spec"]["volumes"][0]
    assert claimed["persistentVolumeClaim"] == {"claimName": "seldon-data"}


@pytest.fixture(scope="module")
def emulator():
    with EmulatedKubernetes(pod_start_delay=0.05) as cluster:
        yield cluster


@pytest.fixture
def connection(emulator, tmp_path):
    return connect(
        KubeSettings(
            kubeconfig=str(emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace="load"))
        )
    )


def test_a_created_pod_is_waited_for_and_removed(emulator, connection):
    pod = create_pod(
        connection,
        IagoPodSpec(namespace="load", image="example/iago:1"),
        timeout=5,
        poll_interval=0.05,
    )
    assert pod.created and pod.name in emulator.pod_names("load")
    body = emulator.core.read_namespaced_pod(pod.name, "load")
    assert body.spec.containers[0].image == "example/iago:1"
    assert body.spec.containers[0].command == ["sleep", "infinity"]
    delete_pod(connection, pod)
    assert pod.name not in emulator.pod_names("load")


def test_a_pod_that_cannot_start_fails_with_its_reason_and_is_removed(tmp_path):
    with EmulatedKubernetes(kubelet="image-pull-backoff", pod_start_delay=0.0) as stuck:
        connection = connect(
            KubeSettings(kubeconfig=str(stuck.write_kubeconfig(tmp_path / "kc", namespace="load")))
        )
        with pytest.raises(ClusterError) as failure:
            create_pod(
                connection,
                IagoPodSpec(namespace="load", image="no/such:image"),
                timeout=0.6,
                poll_interval=0.05,
            )
        message = str(failure.value)
        assert "was not Running within 0.6s" in message
        assert "waiting: ImagePullBackOff (Back-off pulling image)" in message
        assert "image no/such:image (--iago-image)" in message
        assert stuck.pod_names("load") == []


def test_an_existing_pod_is_found_by_label_and_left_alone(emulator, connection):
    emulator.core.create_namespaced_pod(
        "load",
        {
            "metadata": {"name": "iago-7d9f", "namespace": "load", "labels": {"app": "iago"}},
            "spec": {"containers": [{"name": "iago", "image": "seldon-load-iago"}]},
        },
    )
    pod = None
    deadline = time.monotonic() + 5
    while pod is None and time.monotonic() < deadline:
        try:
            pod = find_pod(connection, "load", {"app": "iago"})
        except ClusterError:
            time.sleep(0.05)
    assert pod is not None, "the emulated kubelet never ran the pod"
    assert (pod.name, pod.created) == ("iago-7d9f", False)
    with pytest.raises(ClusterError, match="--iago-pod-selector: no running pod matches app=x"):
        find_pod(connection, "load", {"app": "x"})
    delete_pod(connection, pod)
    assert "iago-7d9f" in emulator.pod_names("load")
    emulator.core.delete_namespaced_pod("iago-7d9f", "load")


# --- whole runs through a pod -------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pod_transport(script_dir: Path = DOCKER_DIR) -> LoopbackTransport:
    """A "pod" whose PATH holds the image's start-load-test.sh and seldon-load."""
    admin = free_port()
    path = os.pathsep.join(
        [str(script_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    return LoopbackTransport(
        env={
            "PATH": path,
            "SELDON_LOAD_ADMIN_PORT": str(admin),
            "SELDON_LOAD_ADMIN_HOST": "127.0.0.1",
        },
        ports={9994: admin},
    )


class Cluster:
    """What the engine needs of seldon_cluster, over the emulated API."""

    def __init__(self, connection, transport) -> None:
        self.connection = connection
        self.transport = transport

    def in_cluster_url(self, endpoint):
        return None


@pytest.fixture
def target():
    recording = Recording()
    with ServerThread(recording) as server:
        yield server, recording


@pytest.fixture
def replay(tmp_path):
    body = '{"inputs":[{"name":"predict","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}'
    return write_replay(
        tmp_path / "iris.replay",
        [f"POST /v2/models/iris/infer Content-Type:application/json {body}"] * 5,
    )


def runner_for(connection, transport, workdir: Path, **settings) -> IagoRunner:
    options = {
        "workdir": str(workdir),
        "poll_interval": 0.3,
        "startup_timeout": 20.0,
        "stop_grace": 2.0,
    }
    options.update(settings)
    return IagoRunner(Cluster(connection, transport), IagoSettings(**options))


def test_a_run_through_the_pod_reads_its_admin_port_and_cleans_up(
    emulator, connection, target, replay, tmp_path
):
    server, recording = target
    transport = pod_transport()
    workdir = tmp_path / "seldon-data"
    runner = runner_for(connection, transport, workdir)
    endpoint = SeldonEndpoint(server.url, "v2", "iris")
    result = runner.run(
        endpoint,
        replay,
        RunPlan(
            rate=40,
            duration=1.5,
            warmup=0.5,
            arrival="constant",
            label="through the pod",
            settings=EngineSettings(connections=8, timeout=5),
        ),
    )
    assert isinstance(result, SummaryLoadResult)
    assert (result.engine, result.label) == ("iago", "through the pod")
    assert (result.protocol, result.warmup) == ("v2", 0.5)
    assert abs(result.started_at - time.time()) < 60
    assert result.corrected, "the pod ran seldon-load's engine, which labels its latency"
    assert 35 <= result.requests <= 90, result.requests
    assert result.errors == 0 and result.status_codes == {200: result.requests}
    assert 0 < result.p50 <= result.p99 < 1000
    # The pod's generator reports its punctuality (whether it kept up on a busy 2-core
    # machine is not this test's business).
    # Sends are counted as they leave, requests as they complete: they differ by at most
    # what was in flight at the two snapshots (8 connections).
    assert abs(result.health.sends_checked - result.requests) <= 8, result.health
    assert 0 < result.health.busy_fraction < 1, result.health  # the pod engine's, scraped
    assert len(result.timeline) >= 3 and all(p["cumulative"] for p in result.timeline)
    assert sum(p["sent"] for p in result.timeline) == result.requests
    seen = len(recording.seen)
    assert seen >= result.requests
    # Cleaned up: the load stopped, the upload is gone; the pod goes with the runner.
    time.sleep(0.5)
    assert len(recording.seen) == seen, "the load kept running after the run"
    assert list(workdir.iterdir()) == []
    pod = runner.pod()
    assert pod.name in emulator.pod_names("load")
    commands = [c[2] for c in transport.commands]
    assert any(c[:3] == ("sh", "-c", c[2]) and "tar xf -" in c[2] for c in commands)
    assert any("start-load-test.sh" in c for c in commands)
    runner.close()
    assert pod.name not in emulator.pod_names("load")


def test_a_load_that_dies_at_start_fails_with_its_log_and_is_cleaned_up(
    emulator, connection, target, replay, tmp_path
):
    broken = tmp_path / "broken-image"
    broken.mkdir()
    script = broken / "start-load-test.sh"
    script.write_text(
        "#!/bin/sh\necho 'replaying /js/predict?consumer_key=abc123' >&2\n"
        "echo 'java: not found' >&2\nexit 127\n"
    )
    script.chmod(0o755)
    workdir = tmp_path / "seldon-data"
    runner = runner_for(connection, pod_transport(broken), workdir)
    with pytest.raises(ClusterError) as failure:
        runner.run(SeldonEndpoint(target[0].url), replay, RunPlan(rate=10, duration=1))
    message = str(failure.value)
    assert "exited before its admin port answered" in message
    assert "java: not found" in message and "abc123" not in message
    assert list(workdir.iterdir()) == []
    runner.close()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_what_was_measured_and_still_cleans_up(
    emulator, connection, target, replay, tmp_path, stop
):
    server, recording = target
    workdir = tmp_path / "seldon-data"
    runner = runner_for(connection, pod_transport(), workdir)
    sigterm_before = signal.getsignal(signal.SIGTERM)

    already = len(recording.seen)

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 20
        while len(recording.seen) < already + 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), stop)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    started = time.monotonic()
    with pytest.raises(RunInterrupted) as interrupted:
        runner.run(
            SeldonEndpoint(server.url),
            replay,
            RunPlan(
                rate=40,
                duration=30,
                arrival="constant",
                settings=EngineSettings(connections=4, timeout=5),
            ),
        )
    presser.join(5)
    assert time.monotonic() - started < 15
    partial = interrupted.value.result
    assert partial.interrupted and partial.engine == "iago"
    assert partial.requests > 0
    seen = len(recording.seen)
    time.sleep(0.5)
    assert len(recording.seen) == seen, "the load kept running after Ctrl-C"
    assert list(workdir.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is sigterm_before
    runner.close()


def test_the_target_must_be_reachable_from_the_pod_and_carry_no_secret(connection, tmp_path):
    class RemotePods(LoopbackTransport):
        runs_on_this_host = False

    runner = runner_for(connection, RemotePods(), tmp_path)
    with pytest.raises(ClusterError, match="is this machine's loopback: give --iago-target"):
        runner.target_url(SeldonEndpoint("http://127.0.0.1:8080"))
    assert runner.target_url(SeldonEndpoint("http://iris.seldon:8000")) == "http://iris.seldon:8000"
    given = runner_for(connection, RemotePods(), tmp_path, target="http://ingress/seldon/ns/iris/")
    assert given.target_url(SeldonEndpoint("http://127.0.0.1:8080")) == (
        "http://ingress/seldon/ns/iris"
    )
    plan = RunPlan(rate=1, duration=1, arrival="slow-start", seed=7, ramp_from=2)
    environment = runner._environment(
        SeldonEndpoint("http://iris.seldon:8000"), "http://iris", plan, total=10
    )
    assert environment["SELDON_LOAD_ARRIVAL"] == "slow-start-poisson"
    assert environment["SELDON_LOAD_RAMP"] == "240s", "Iago's ramp unless the plan gives one"
    assert (environment["SELDON_LOAD_SEED"], environment["SELDON_LOAD_RAMP_FROM"]) == ("7", "2")
    secret = SeldonEndpoint("http://iris.seldon:8000", headers={"Authorization": "Bearer zz-9"})
    with pytest.raises(ClusterError) as failure:
        runner._environment(secret, "http://iris", RunPlan(rate=1, duration=1, seed=1), total=10)
    assert "secret header(s) Authorization" in str(failure.value)
    assert "zz-9" not in str(failure.value)
    with pytest.raises(ValueError, match="--iago-workdir must be an absolute directory"):
        IagoSettings(workdir="/")


def test_the_iago_engine_through_the_plugin(pytester, emulator, target, tmp_path):
    server, _ = target
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kc", namespace="plugin")
    transport = pod_transport()
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(f"""
import pytest
from pytest_seldon_load.cluster.loopback import LoopbackTransport

@pytest.fixture(scope="session")
def seldon_pod_transport():
    return LoopbackTransport(env={transport.env!r}, ports={transport.ports!r})
""")
    pytester.makepyfile(
        test_iago=f"""
import pytest
from pytest_seldon_load import SeldonEndpoint

@pytest.mark.load(rate=30, duration="1.5s", budgets={{"p99": "2s", "error_rate": 0.01}})
def test_through_iago(replay_file, load_run):
    endpoint = SeldonEndpoint({server.url!r})
    result = load_run(endpoint, replay_file.prediction(endpoint, num=20), arrival="constant")
    assert result.engine == "iago" and result.requests > 20
"""
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--seldon-kubeconfig={kubeconfig}",
        "--load-engine=iago",
        f"--iago-workdir={tmp_path / 'pod-data'}",
        "--iago-poll=0.3",
        "--load-allow-lag",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_through_iago*30/*pass*"])
    assert emulator.pod_names("plugin") == [], "the session's pod outlived the session"


# --- the websocket transport, as far as an API without websockets takes it ---------------
def test_the_websocket_transport_fails_fast_and_readably_without_websockets(emulator, connection):
    from pytest_seldon_load.cluster.transport import KubernetesTransport, PodCommand

    transport = KubernetesTransport(connection)
    started = time.monotonic()
    with pytest.raises(ClusterError) as exec_failure:
        transport.exec(PodCommand("load", "no-such-pod", ["echo", "hi"], timeout=5))
    with pytest.raises(ClusterError) as forward_failure:
        transport.connect("load", "no-such-pod", 9994, timeout=5)
    assert time.monotonic() - started < 5
    assert str(exec_failure.value).startswith(
        "exec 'echo' in pod load/no-such-pod: Handshake status 404 Not Found: "
    )
    assert str(forward_failure.value).startswith(
        "port-forward to pod load/no-such-pod:9994: Handshake status 404 Not Found: "
    )
    assert "-+-+-" not in str(exec_failure.value), "no raw headers and body"
    transport.close()


def test_exit_codes_come_from_the_exec_status_channel():
    from pytest_seldon_load.cluster.transport import _exit_code

    assert _exit_code(b'{"metadata":{},"status":"Success"}') == 0
    assert (
        _exit_code(
            json.dumps(
                {
                    "metadata": {},
                    "status": "Failure",
                    "reason": "NonZeroExitCode",
                    "message": "command terminated with non-zero exit code: exit status 3",
                    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
                }
            ).encode()
        )
        == 3
    )
    assert _exit_code(b"") == -1
    assert _exit_code(b'{"status":"Failure","message":"container not found"}') == -1
