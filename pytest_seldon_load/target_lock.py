"""One load at a time per target: a lock file per server, shared by the processes of a session.

Two load tests that hit one server at the same time each measure the other's load: under
pytest-xdist both fail budgets they hold alone. Every run therefore holds the lock of its
target while it sends (and only then: the rest of a test still runs in parallel). The lock is
an OS file lock (flock; msvcrt on Windows) on a file named after the target in a directory
all processes of the session share, so a crashed holder releases it with its process.

The key is the server (scheme, host and port), not the model: two models of one server
share its CPUs. Local servers started by the session share the key ``local-servers``: they
all run on this machine, so one's load slows the others.

Beside the lock, a small text file says who holds it, for the waiting run to show.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .atomic import atomic_write_text
from .redact import redact_url

POLL_S = 0.1
"""How often a waiting run tries the lock again (and tells `on_wait`)."""

LOCAL_SERVERS = "local-servers"


def target_key(base_url: str, *, local: bool = False) -> str:
    """What two runs must share to wait for each other: the server's scheme, host and port."""
    if local:
        return LOCAL_SERVERS
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _lock_file(directory: Path, key: str) -> Path:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return directory / f"seldon-load-target-{digest}.lock"


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def holder(directory: Path, key: str) -> str:
    """Who holds the lock of `key` now, as they described themselves ("" if unknown)."""
    try:
        return _lock_file(directory, key).with_suffix(".holder").read_text("utf-8").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def target_locked(
    directory: Path,
    key: str,
    who: str,
    *,
    on_wait: Callable[[str, float], None] | None = None,
    timeout: float | None = None,
) -> Iterator[float]:
    """Hold the lock of `key` for the body; yields the seconds waited for it.

    While another holds it, `on_wait(holder, waited_s)` is called every POLL_S. `timeout`
    (seconds, None: no limit) bounds the wait: TimeoutError names the holder.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = _lock_file(directory, key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    began = time.monotonic()
    try:
        while not _try_lock(fd):
            waited = time.monotonic() - began
            if timeout is not None and waited > timeout:
                raise TimeoutError(
                    f"waited {waited:.0f}s for the load lock of {redact_url(key)}, "
                    f"held by {holder(directory, key) or 'another process'}"
                )
            if on_wait is not None:
                on_wait(holder(directory, key), waited)
            time.sleep(POLL_S)
        waited = time.monotonic() - began
        atomic_write_text(path.with_suffix(".holder"), who)
        try:
            yield waited
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
