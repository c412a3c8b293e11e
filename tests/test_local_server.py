"""LocalSeldonServer against a real MLServer process; skipped when the `local` extra is missing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from pytest_seldon_load.cluster.local import (
    INSTALL_HINT,
    LocalSeldonServer,
    LocalServerError,
    mlserver_available,
)

if not mlserver_available():
    pytest.skip(f"MLServer is not installed ({INSTALL_HINT})", allow_module_level=True)

IRIS_REQUEST = {
    "inputs": [
        {"name": "predict", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_refuses(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def server(seldon_local_server: LocalSeldonServer) -> LocalSeldonServer:
    """The session's local MLServer, as the plugin's `seldon_local_server` fixture starts it."""
    return seldon_local_server


def test_model_is_ready(server: LocalSeldonServer) -> None:
    response = requests.get(f"{server.base_url}/v2/models/iris/ready", timeout=5)
    assert response.status_code == 200


def test_inference_returns_outputs(server: LocalSeldonServer) -> None:
    response = requests.post(
        f"{server.base_url}/v2/models/iris/infer", json=IRIS_REQUEST, timeout=5
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "iris"
    assert body["outputs"][0]["name"] == "predict"
    assert body["outputs"][0]["data"] == [0]


def test_base_url_is_loopback(server: LocalSeldonServer) -> None:
    parts = urlsplit(server.base_url)
    assert parts.scheme == "http"
    assert parts.hostname == "127.0.0.1"
    assert parts.port is not None and parts.port > 0


def test_endpoint_describes_the_server(server: LocalSeldonServer) -> None:
    endpoint = server.endpoint()
    assert endpoint.base_url == server.base_url
    assert endpoint.protocol == "v2"
    assert endpoint.model == "iris"


def test_log_is_written_under_workdir(server: LocalSeldonServer) -> None:
    assert server.log_path.parent == server.workdir
    assert "Loaded model 'iris' successfully" in server.log_path.read_text()


def test_start_on_running_server_is_a_no_op(server: LocalSeldonServer) -> None:
    pid, url = server.pid, server.base_url
    assert server.start() is server
    assert (server.pid, server.base_url) == (pid, url)


def test_stop_kills_the_process_group(tmp_path: Path) -> None:
    with LocalSeldonServer(tmp_path) as srv:
        pid = srv.pid
        port = urlsplit(srv.base_url).port
        assert pid is not None and port is not None
        assert os.getpgid(pid) == pid
        assert _group_alive(pid)
    assert not _group_alive(pid)
    assert _port_refuses(port)
    assert not srv.running
    srv.stop()
    srv.stop()
    with pytest.raises(RuntimeError, match="after start"):
        _ = srv.base_url


def test_extra_latency_slows_every_prediction(tmp_path: Path) -> None:
    with LocalSeldonServer(tmp_path, extra_latency_ms=50) as slow, requests.Session() as http:
        url = f"{slow.base_url}/v2/models/iris/infer"
        assert http.post(url, json=IRIS_REQUEST, timeout=5).status_code == 200
        started = time.perf_counter()
        response = http.post(url, json=IRIS_REQUEST, timeout=5)
        elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == [0]
    assert elapsed_ms >= 45


def test_model_that_fails_to_load_raises_with_log_path(tmp_path: Path) -> None:
    srv = LocalSeldonServer(tmp_path, startup_timeout=30)
    srv.model_file.parent.mkdir(parents=True)
    srv.model_file.write_bytes(b"not a joblib file")
    with pytest.raises(LocalServerError, match="exited during start-up") as excinfo:
        srv.start()
    message = str(excinfo.value)
    assert str(srv.log_path) in message
    assert "Traceback" in srv.log_path.read_text()
    assert not srv.running


def test_startup_deadline_raises_with_log_path(tmp_path: Path) -> None:
    srv = LocalSeldonServer(tmp_path, startup_timeout=0.2)
    with pytest.raises(LocalServerError, match="not ready within") as excinfo:
        srv.start()
    assert str(srv.log_path) in str(excinfo.value)
    assert not srv.running


def test_exiting_interpreter_stops_a_forgotten_server(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from pytest_seldon_load.cluster.local import LocalSeldonServer

        srv = LocalSeldonServer(Path({str(tmp_path)!r})).start()
        print(srv.pid, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(done.stdout.split()[-1])
    assert not _group_alive(pid)


@pytest.mark.parametrize("model", ["", "../iris", "a/b", ".hidden"])
def test_rejects_model_names_that_are_not_folder_names(tmp_path: Path, model: str) -> None:
    with pytest.raises(ValueError, match="model"):
        LocalSeldonServer(tmp_path, model=model)


def test_mlserver_available_when_extra_installed() -> None:
    assert mlserver_available()
    assert "[local]" in INSTALL_HINT


def test_start_relaunches_a_server_that_died(tmp_path: Path) -> None:
    with LocalSeldonServer(tmp_path) as srv:
        first_pid = srv.pid
        assert first_pid is not None
        os.killpg(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while srv.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not srv.running
        srv.start()
        assert srv.pid != first_pid
        response = requests.get(f"{srv.base_url}/v2/models/iris/ready", timeout=5)
        assert response.status_code == 200
