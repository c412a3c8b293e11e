"""Load runs against one target take turns (`target_lock`); a run that waits says so.

The lock directory is the session's: under pytest-xdist each worker's base temp directory
(``.../pytest-N/popen-gw0``) sits in one the workers share (``.../pytest-N``), so runs of all
workers meet there, and a new session starts with fresh locks.

A waiting run shows, on its progress line, what it waits for and who holds it. An xdist
worker has no progress line of its own (its output goes to the controller as reports), so
there it writes the line to the terminal it was started from (standard error, when that is
a terminal), taken before pytest captures output.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..endpoint import SeldonEndpoint
from ..redact import redact_url
from ..target_lock import target_key, target_locked
from .progress import TerminalLine

WAIT_FD_KEY = pytest.StashKey[int]()


def lock_directory(config: pytest.Config) -> Path:
    """The directory every process of this session shares for target locks."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


def worker_name(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput.get("workerid", "worker")) if workerinput else "main"


def open_wait_terminal(config: pytest.Config) -> None:
    """At configure time (output not captured yet): keep a descriptor of the terminal for
    the waiting line, when there is one a person sees."""
    from .progress import progress_blocker

    blocker = progress_blocker(config)
    on_worker = hasattr(config, "workerinput")
    if blocker and not (on_worker and blocker.startswith("an xdist worker")):
        return
    source = 2 if on_worker else 1
    try:
        if os.isatty(source):
            config.stash[WAIT_FD_KEY] = os.dup(source)
    except OSError:
        return


def close_wait_terminal(config: pytest.Config) -> None:
    fd = config.stash.get(WAIT_FD_KEY, None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def waiting_text(worker: str, key: str, holder: str, waited: float) -> str:
    held_by = f" (held by {holder})" if holder else ""
    return f"  [{worker}] waiting {waited:4.1f}s for the load lock of {redact_url(key)}{held_by}"


@contextlib.contextmanager
def run_turn(config: pytest.Config, endpoint: SeldonEndpoint, nodeid: str) -> Iterator[float]:
    """Hold `endpoint`'s target lock around a run; yields the seconds waited."""
    key = target_key(endpoint.base_url, local=endpoint.name == "seldon-local")
    worker = worker_name(config)
    fd = config.stash.get(WAIT_FD_KEY, None)
    line = TerminalLine(fd, 0, 120) if fd is not None else None

    def on_wait(holder: str, waited: float) -> None:
        if line is not None:
            line.show(waiting_text(worker, key, holder, waited))

    try:
        with target_locked(
            lock_directory(config), key, f"{worker} {nodeid}", on_wait=on_wait
        ) as waited:
            if line is not None:
                line.close()
            yield waited
    finally:
        if line is not None:
            line.close()
