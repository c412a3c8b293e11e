"""A PodTransport without a cluster: a pod's commands run here, its ports are loopback ports.

Exec and port-forward ride websockets that a Kubernetes API emulator does not speak; with this
transport everything around them (pod lifecycle through the API, the replay upload, starting
``start-load-test.sh``, the port-forward listener, reading Ostrich stats) runs for real on one
machine. Pick it by overriding the ``seldon_pod_transport`` fixture.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping

from .kube import ClusterError
from .transport import ExecResult, PodCommand, PodStream


class LoopbackTransport:
    """Runs "pod" commands as local processes and maps pod ports to 127.0.0.1 ports.

    `env` is added to every command's environment (a PATH that finds the image's scripts, say);
    `ports` maps a pod port to the loopback port standing in for it (a port not listed maps to
    itself).
    """

    runs_on_this_host = True

    def __init__(
        self, env: Mapping[str, str] | None = None, ports: Mapping[int, int] | None = None
    ) -> None:
        self.env = dict(env or {})
        self.ports = dict(ports or {})
        self.commands: list[tuple[str, str, tuple[str, ...]]] = []

    def exec(self, command: PodCommand) -> ExecResult:
        self.commands.append((command.namespace, command.pod, tuple(command.argv)))
        try:
            done = subprocess.run(
                list(command.argv),
                input=command.stdin if command.stdin is not None else b"",
                capture_output=True,
                timeout=command.timeout,
                env={**os.environ, **self.env},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{command.what}: no end after {command.timeout:g}s") from None
        except OSError as exc:
            return ExecResult(127, b"", f"{command.argv[0]}: {exc.strerror}".encode())
        return ExecResult(done.returncode, done.stdout, done.stderr)

    def connect(self, namespace: str, pod: str, port: int, *, timeout: float = 10.0) -> PodStream:
        local = self.ports.get(port, port)
        try:
            connection = socket.create_connection(("127.0.0.1", local), timeout=timeout)
        except OSError as exc:
            raise ClusterError(
                f"port-forward to pod {namespace}/{pod}:{port}: nothing answers "
                f"({exc.strerror or exc})"
            ) from None
        connection.settimeout(None)
        return connection
