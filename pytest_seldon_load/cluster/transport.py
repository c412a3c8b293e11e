"""The one seam to a pod's insides: run a command in it, open a stream to one of its ports.

Both ride websockets on a real cluster (the API server's exec and portforward
subresources, through `kubernetes.stream`). Everything else (what to run, how to forward
a local port, how to read Iago's stats) is built on these two calls, so another transport
(see `loopback.LoopbackTransport`) can stand in where no cluster is.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward, stream

from ..redact import redact_text
from .kube import ClusterError, KubeConnection

STDIN_CHUNK = 64 * 1024
MAX_STDIN_BYTES = 1 << 30
_ERROR_CHANNEL = 3


@dataclass(frozen=True)
class PodCommand:
    """A command to run in a pod: where, what, its input, and how long it may take."""

    namespace: str
    pod: str
    argv: Sequence[str]
    stdin: bytes | None = None
    timeout: float = 60.0

    @property
    def what(self) -> str:
        """How messages name it: ``exec 'sh' in pod load/iago-1``."""
        command = repr(self.argv[0]) if self.argv else "(no command)"
        return f"exec {command} in pod {self.namespace}/{self.pod}"


@dataclass(frozen=True)
class ExecResult:
    """How a command in a pod ended."""

    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def output(self) -> str:
        """stdout and stderr as text, redacted, for error messages."""
        text = (self.stdout + self.stderr).decode("utf-8", "replace").strip()
        return redact_text(text[-2000:])


class PodStream(Protocol):
    """A connected byte stream to a pod's port (a socket, or what quacks like one)."""

    def fileno(self) -> int: ...
    def recv(self, size: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class PodTransport(Protocol):
    """Run commands in pods and reach their ports."""

    runs_on_this_host: bool
    """True when "pods" share this machine's loopback (so 127.0.0.1 targets reach them)."""

    def exec(self, command: PodCommand) -> ExecResult: ...

    def connect(
        self, namespace: str, pod: str, port: int, *, timeout: float = 10.0
    ) -> PodStream: ...


class _ForwardedSocket:
    """The local end of one portforward websocket; closing it closes the websocket."""

    def __init__(self, forward: object, sock: socket.socket) -> None:
        self._forward = forward
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def settimeout(self, seconds: float | None) -> None:
        self._sock.settimeout(seconds)

    def close(self) -> None:
        try:
            self._forward.close()  # type: ignore[attr-defined]
        finally:
            self._sock.close()


class KubernetesTransport:
    """Exec and port-forward through the API server's websockets, as kubectl does.

    `kubernetes.stream` swaps the transport of the ApiClient it is given for the duration of a
    call, so this transport keeps an ApiClient of its own and opens one websocket at a time.
    """

    runs_on_this_host = False

    def __init__(self, connection: KubeConnection) -> None:
        self._connection = connection
        self._core = k8s.CoreV1Api(connection.new_api_client())
        self._lock = threading.Lock()

    def exec(self, command: PodCommand) -> ExecResult:
        stdin, timeout, what = command.stdin, command.timeout, command.what
        if stdin is not None and len(stdin) > MAX_STDIN_BYTES:
            raise ClusterError(
                f"{what}: {len(stdin)} bytes of input is over the "
                f"{MAX_STDIN_BYTES >> 20} MiB this transport sends"
            )
        deadline = time.monotonic() + timeout
        try:
            with self._lock:
                session = stream(
                    self._core.connect_get_namespaced_pod_exec,
                    command.pod,
                    command.namespace,
                    command=list(command.argv),
                    stdin=stdin is not None,
                    stdout=True,
                    stderr=True,
                    tty=False,
                    binary=True,
                    _preload_content=False,
                    _request_timeout=min(timeout, 30.0),
                )
        except ApiException as exc:
            raise ClusterError(f"{what}: {_websocket_failure(exc)}") from None
        out, err = bytearray(), bytearray()
        try:
            if stdin:
                for begin in range(0, len(stdin), STDIN_CHUNK):
                    session.write_stdin(stdin[begin : begin + STDIN_CHUNK])
            while session.is_open():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ClusterError(f"{what}: no end after {timeout:g}s")
                session.update(timeout=min(1.0, remaining))
                out += session.read_stdout(timeout=0) if session.peek_stdout() else b""
                err += session.read_stderr(timeout=0) if session.peek_stderr() else b""
            out += session.read_stdout(timeout=0) if session.peek_stdout() else b""
            err += session.read_stderr(timeout=0) if session.peek_stderr() else b""
            status = session.read_channel(_ERROR_CHANNEL, timeout=0)
        finally:
            session.close()
        return ExecResult(_exit_code(status), bytes(out), bytes(err))

    def connect(self, namespace: str, pod: str, port: int, *, timeout: float = 10.0) -> PodStream:
        try:
            with self._lock:
                forward = portforward(
                    self._core.connect_get_namespaced_pod_portforward,
                    pod,
                    namespace,
                    ports=str(port),
                    _request_timeout=timeout,
                )
        except ApiException as exc:
            raise ClusterError(
                f"port-forward to pod {namespace}/{pod}:{port}: {_websocket_failure(exc)}"
            ) from None
        return _ForwardedSocket(forward, forward.socket(port))

    def close(self) -> None:
        self._core.api_client.close()


def _websocket_failure(exc: ApiException) -> str:
    """'Handshake status 404 Not Found: <the API's message>' from a failed websocket upgrade
    (whose text otherwise carries every response header and the whole body)."""
    text = str(exc.reason or exc.status)
    parts = text.split(" -+-+- ")
    if parts[0].startswith("Handshake status 200"):
        # A plain answer where a websocket upgrade was asked: the API server does not speak
        # exec/port-forward websockets (an API emulator, a proxy that strips Upgrade).
        return (
            f"{parts[0]}: the API server answered without upgrading to a websocket, so it "
            f"does not serve exec/port-forward (an emulated API, or a proxy dropping "
            f"the Upgrade header)"
        )
    if len(parts) < 3:
        return text[:300]
    try:
        message = json.loads(parts[-1]).get("message")
    except (ValueError, AttributeError):
        message = None
    return parts[0] + (f": {message}" if message else "")


def _exit_code(status: bytes | str) -> int:
    """The exit code from the exec status channel (a Status object; 'Success' is 0)."""
    text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
    if not text:
        return -1
    try:
        document = json.loads(text)
    except ValueError:
        return -1
    if document.get("status") == "Success":
        return 0
    for cause in (document.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return -1
    return -1
