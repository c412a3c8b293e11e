"""A real Seldon model server on loopback: MLServer serving a small sklearn iris model.

MLServer is the inference server inside Seldon Core, and it speaks the Open Inference
Protocol ("V2") that Seldon deployments expose, over HTTP and over gRPC, so load tests run
against it exercise the same request path as a cluster without needing one.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from ..endpoint import SeldonEndpoint

INSTALL_HINT = "pip install 'pytest-seldon-load[local]'"
SERVED_PROTOCOLS = ("v2", "grpc")
"""What MLServer answers: the Open Inference Protocol over HTTP and over gRPC."""

LOG_TAIL_LINES = 20
STOP_GRACE_S = 5.0
POLL_INTERVAL_S = 0.1
PORT_CLASH_RETRIES = 3

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PORT_CLASH = re.compile(
    r"address already in use|errno 98|errno 48|failed to bind to address", re.IGNORECASE
)

_LAUNCHER = '''\
"""Train the iris model if it is missing, then run `mlserver start` in this process.

Training here rather than in the caller means scikit-learn is imported once, by the
process that has to import it anyway to serve the model.
"""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

repository, model_file = sys.argv[1], Path(sys.argv[2])
if not model_file.exists():
    features, labels = load_iris(return_X_y=True)
    partial = model_file.with_suffix(".partial")
    joblib.dump(LogisticRegression(max_iter=200).fit(features, labels), partial)
    partial.replace(model_file)

from mlserver.cli.main import main

sys.argv = ["mlserver", "start", repository]
main()
'''

_SLOW_RUNTIME = '''\
"""SKLearnModel with a fixed delay before each prediction, to stage a latency regression."""

import asyncio

from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel


class SlowSKLearnModel(SKLearnModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        extra = self.settings.parameters.extra or {}
        await asyncio.sleep(float(extra.get("extra_latency_ms", 0.0)) / 1000.0)
        return await super().predict(payload)
'''

_SLOW_MODULE = "slow_sklearn"


class LocalServerError(RuntimeError):
    """The local model server did not come up; the message carries its log tail."""


def mlserver_available() -> bool:
    """Whether the optional `local` extra is installed, so tests can skip rather than fail."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("mlserver", "mlserver_sklearn", "sklearn")
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log written)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def _child_env() -> dict[str, str]:
    """The caller's environment without MLSERVER_* settings, which would override ours."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLSERVER")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LocalSeldonServer:
    """MLServer serving an iris classifier on 127.0.0.1, in its own process group.

    `workdir` receives the model repository, the trained model and ``mlserver.log``.
    `extra_latency_ms` delays every prediction inside the server, so a run against it
    looks like a slower model rather than a slower network.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        model: str = "iris",
        startup_timeout: float = 60.0,
        extra_latency_ms: float = 0.0,
    ) -> None:
        if not _MODEL_NAME.match(model):
            raise ValueError(f"model: {model!r} is not a valid model name (letters, digits, _.-)")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout: must be positive, got {startup_timeout}")
        if extra_latency_ms < 0:
            raise ValueError(f"extra_latency_ms: must not be negative, got {extra_latency_ms}")
        self.workdir = Path(workdir)
        self.model = model
        self.startup_timeout = startup_timeout
        self.extra_latency_ms = extra_latency_ms
        self.log_path = self.workdir / "mlserver.log"
        self._repository = self.workdir / "model-repository"
        self._process: subprocess.Popen[bytes] | None = None
        self._http_port: int | None = None
        self._grpc_port: int | None = None

    @property
    def base_url(self) -> str:
        if self._http_port is None:
            raise RuntimeError("LocalSeldonServer: base_url is only known after start()")
        return f"http://127.0.0.1:{self._http_port}"

    @property
    def grpc_url(self) -> str:
        """MLServer's Open Inference Protocol gRPC port, as ``grpc://127.0.0.1:PORT``."""
        if self._grpc_port is None:
            raise RuntimeError("LocalSeldonServer: grpc_url is only known after start()")
        return f"grpc://127.0.0.1:{self._grpc_port}"

    @property
    def pid(self) -> int | None:
        """The server's process id, which is also its process group id."""
        return self._process.pid if self._process is not None else None

    @property
    def model_file(self) -> Path:
        """The trained model; kept across restarts so only the first start pays for training."""
        return self._repository / self.model / "model.joblib"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def endpoint(self, protocol: str = "v2", name: str = "local") -> SeldonEndpoint:
        """The running server as an endpoint for load runs: ``v2`` over HTTP, or ``grpc``
        (the Open Inference Protocol on MLServer's gRPC port)."""
        if protocol not in SERVED_PROTOCOLS:
            raise ValueError(
                f"protocol: the local server speaks {' and '.join(SERVED_PROTOCOLS)}, "
                f"not {protocol!r}"
            )
        url = self.grpc_url if protocol == "grpc" else self.base_url
        return SeldonEndpoint(url, protocol=protocol, model=self.model, name=name)

    def start(self) -> LocalSeldonServer:
        """Launch MLServer and block until the model reports ready; a no-op while it runs.

        A server that died since the last start is reaped and launched afresh. A free port
        can be taken by someone else between choosing it and MLServer binding it, so a
        launch that dies of a port clash is retried on fresh ports.
        """
        if self.running:
            return self
        self.stop()
        self._write_repository()
        deadline = time.monotonic() + self.startup_timeout
        attempts_left = PORT_CLASH_RETRIES
        while True:
            attempts_left -= 1
            self._launch()
            atexit.register(self.stop)
            try:
                self._wait_ready(deadline)
                return self
            except LocalServerError:
                self.stop()
                clash = _PORT_CLASH.search(_log_tail(self.log_path, lines=200))
                if not clash or attempts_left == 0 or time.monotonic() >= deadline:
                    raise

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever is left after a grace period.

        Signalling the group rather than the process also reaches any workers MLServer forked.
        Safe to call more than once.
        """
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        self._http_port = self._grpc_port = None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def __enter__(self) -> LocalSeldonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._http_port is not None else "not started"
        return f"LocalSeldonServer(model={self.model!r}, {where})"

    def _write_repository(self) -> None:
        model_dir = self._repository / self.model
        model_dir.mkdir(parents=True, exist_ok=True)
        parameters: dict[str, object] = {"uri": "./model.joblib", "version": "v1"}
        implementation = "mlserver_sklearn.SKLearnModel"
        if self.extra_latency_ms > 0:
            (model_dir / f"{_SLOW_MODULE}.py").write_text(_SLOW_RUNTIME, encoding="utf-8")
            implementation = f"{_SLOW_MODULE}.SlowSKLearnModel"
            parameters["extra"] = {"extra_latency_ms": self.extra_latency_ms}
        model_settings = {
            "name": self.model,
            "implementation": implementation,
            "parameters": parameters,
        }
        (model_dir / "model-settings.json").write_text(
            json.dumps(model_settings, indent=2), encoding="utf-8"
        )
        (self.workdir / "launch_mlserver.py").write_text(_LAUNCHER, encoding="utf-8")

    def _write_settings(self, http_port: int, grpc_port: int) -> None:
        settings = {
            "host": "127.0.0.1",
            "http_port": http_port,
            "grpc_port": grpc_port,
            "parallel_workers": 0,
            "debug": False,
            "metrics_endpoint": None,
            "environments_dir": str(self.workdir / ".envs"),
            "metrics_dir": str(self.workdir / ".metrics"),
        }
        (self._repository / "settings.json").write_text(
            json.dumps(settings, indent=2), encoding="utf-8"
        )

    def _launch(self) -> None:
        http_port, grpc_port = _free_port(), _free_port()
        while grpc_port == http_port:
            grpc_port = _free_port()
        self._write_settings(http_port, grpc_port)
        command = [
            sys.executable,
            str(self.workdir / "launch_mlserver.py"),
            str(self._repository),
            str(self.model_file),
        ]
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._http_port, self._grpc_port = http_port, grpc_port

    def _wait_ready(self, deadline: float) -> None:
        ready_url = f"{self.base_url}/v2/models/{self.model}/ready"
        with requests.Session() as session:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    code = None if process is None else process.returncode
                    raise self._failure(f"MLServer exited during start-up (exit code {code})")
                with contextlib.suppress(requests.RequestException):
                    if session.get(ready_url, timeout=1.0).status_code == 200 and (
                        self._grpc_listening()
                    ):
                        return
                if time.monotonic() >= deadline:
                    raise self._failure(
                        f"model {self.model!r} was not ready within {self.startup_timeout:g} s"
                    )
                time.sleep(POLL_INTERVAL_S)

    def _grpc_listening(self) -> bool:
        """Whether the gRPC port takes connections (MLServer opens it beside the HTTP one)."""
        if self._grpc_port is None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self._grpc_port), timeout=1.0):
                return True
        except OSError:
            return False

    def _failure(self, reason: str) -> LocalServerError:
        return LocalServerError(
            f"local Seldon server failed to start: {reason}.\n"
            f"Log: {self.log_path}\n"
            f"Last {LOG_TAIL_LINES} lines:\n{_log_tail(self.log_path)}"
        )
