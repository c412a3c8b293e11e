"""Stopping a run from outside: Ctrl-C (SIGINT) and SIGTERM both mean "stop sending now and
keep what was measured", in a terminal, under pytest and in a pod (where ``kill`` and
Kubernetes send SIGTERM). An engine raises `RunInterrupted` carrying the partial result, and
the process's own signal handlers are back in place once the run is over.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import LoadResult

STOP_SIGNALS: tuple[signal.Signals, ...] = (
    (signal.SIGINT,) if sys.platform == "win32" else (signal.SIGINT, signal.SIGTERM)
)
"""The signals that stop a run (Windows has no SIGTERM to catch)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a load run; `result` holds what was measured until then."""

    def __init__(self, result: LoadResult) -> None:
        super().__init__("load run interrupted")
        self.result = result


def on_main_thread() -> bool:
    """Signal handlers can only be changed (and signals are only delivered) there."""
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signal_handlers_restored() -> Iterator[None]:
    """Put back exactly the stop signals' handlers and the wakeup fd found on entry.

    An event loop that handled a signal (uvloop's, notably) leaves its own handler behind when
    closed, which would swallow every later Ctrl-C of a pytest session.
    """
    if not on_main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(wakeup_fd)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """For engines that block (rather than run an event loop): SIGTERM raises
    KeyboardInterrupt, as Ctrl-C does, so the engine's own clean-up and partial result apply."""
    with signal_handlers_restored():
        if on_main_thread():
            for number in STOP_SIGNALS:
                if number is not signal.SIGINT:
                    signal.signal(number, signal.default_int_handler)
        yield
