"""Driving a load inside the Iago pod: upload the replay, start, check, stop, clean up.

Everything is a command run through the transport, as a user would type it after
``kubectl exec`` (no kubectl binary needed): the replay goes in as a tar stream on the
command's stdin, and ``start-load-test.sh <replay> <rate>`` runs detached in its own process
group, so stopping it stops whatever it started (Iago's JVM, or our engine).
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..cluster.kube import ClusterError
from ..cluster.transport import PodCommand, PodTransport
from ..replay import ReplayFile
from .pod import IagoPod

SCRIPT = "start-load-test.sh"
REPLAY_NAME = "replay.txt"
LOG_NAME = "load.log"

_UPLOAD = 'mkdir -p "$1" && head -c "$2" | tar xf - -C "$1"'
"""Read exactly the archive's bytes: tar sees the end of its input without a stdin close."""
_START = (
    'cd "$1" || exit 1; shift; '
    "if command -v setsid >/dev/null 2>&1; then "
    f'setsid "$@" > {LOG_NAME} 2>&1 < /dev/null & '
    f'else "$@" > {LOG_NAME} 2>&1 < /dev/null & fi; '
    "echo $!"
)
_ALIVE = (
    "state=$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -c1); "
    '[ -n "$state" ] && [ "$state" != Z ]'
)
"""Alive and not a zombie (a pod's PID 1, `sleep`, reaps no one)."""
_STOP = (
    'kill -TERM -"$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null; '
    'i=0; while [ "$i" -lt "$2" ]; do '
    "state=$(sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -c1); "
    '{ [ -n "$state" ] && [ "$state" != Z ]; } || break; sleep 0.1; i=$((i+1)); done; '
    'kill -KILL -"$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null; true'
)
"""TERM the process group (or the process), wait up to $2 tenths of a second, then KILL."""


def rate_argument(rate: float) -> str:
    """Iago's launcher takes a whole number of requests per second; ours takes any."""
    return str(int(rate)) if float(rate).is_integer() else f"{rate:g}"


def _check(result_code: int, what: str, output: str) -> None:
    if result_code != 0:
        raise ClusterError(
            f"{what} failed (exit code {result_code})" + (f": {output}" if output else "")
        )


def upload_replay(
    transport: PodTransport, pod: IagoPod, run_dir: str, replay: Path, *, timeout: float = 120.0
) -> str:
    """Copy the replay into the pod as ``<run_dir>/replay.txt`` (un-gzipped: Iago reads plain
    lines); returns that path."""
    text = ReplayFile(replay).read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo(REPLAY_NAME)
        info.size = len(text)
        info.mode = 0o644
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(text))
    data = buffer.getvalue()
    upload = ["sh", "-c", _UPLOAD, "upload", run_dir, str(len(data))]
    result = transport.exec(PodCommand(pod.namespace, pod.name, upload, data, timeout))
    _check(result.exit_code, f"uploading {replay.name} into pod {pod.ref}:{run_dir}", result.output)
    return f"{run_dir}/{REPLAY_NAME}"


def start_load(
    transport: PodTransport,
    pod: IagoPod,
    run_dir: str,
    remote_replay: str,
    rate: float,
    env: Mapping[str, str],
) -> int:
    """Run ``start-load-test.sh <replay> <rate>`` detached; returns its process id."""
    command = [
        "env",
        *(f"{key}={value}" for key, value in env.items()),
        "sh",
        "-c",
        _START,
        "start",
        run_dir,
        SCRIPT,
        remote_replay,
        rate_argument(rate),
    ]
    result = transport.exec(PodCommand(pod.namespace, pod.name, command, timeout=30.0))
    _check(result.exit_code, f"starting {SCRIPT} in pod {pod.ref}", result.output)
    text = result.stdout.decode("utf-8", "replace").strip().splitlines()
    if not text or not text[-1].strip().isdigit():
        raise ClusterError(
            f"starting {SCRIPT} in pod {pod.ref}: no process id came back ({result.output!r})"
        )
    return int(text[-1].strip())


def process_alive(transport: PodTransport, pod: IagoPod, pid: int) -> bool:
    alive = ["sh", "-c", _ALIVE, "alive", str(pid)]
    result = transport.exec(PodCommand(pod.namespace, pod.name, alive, timeout=15.0))
    return result.exit_code == 0


def stop_load(transport: PodTransport, pod: IagoPod, pid: int, *, grace: float = 5.0) -> None:
    """TERM the load's process group, KILL what is left after `grace` seconds."""
    ticks = max(1, int(grace / 0.1))
    stop = ["sh", "-c", _STOP, "stop", str(pid), str(ticks)]
    transport.exec(PodCommand(pod.namespace, pod.name, stop, timeout=grace + 15.0))


def log_tail(transport: PodTransport, pod: IagoPod, run_dir: str, lines: int = 20) -> str:
    """The last lines the load wrote (for a failure message), redacted."""
    try:
        tail = ["sh", "-c", f'tail -n {int(lines)} "$1/{LOG_NAME}"', "tail", run_dir]
        result = transport.exec(PodCommand(pod.namespace, pod.name, tail, timeout=15.0))
    except ClusterError as exc:
        return f"(cannot read {LOG_NAME}: {exc})"
    return result.output or "(the log is empty)"


def remove_run_dir(transport: PodTransport, pod: IagoPod, run_dir: str) -> None:
    if not run_dir or run_dir in ("/", "."):
        raise ValueError(f"refusing to remove {run_dir!r}")
    remove = ["rm", "-rf", "--", run_dir]
    transport.exec(PodCommand(pod.namespace, pod.name, remove, timeout=30.0))
