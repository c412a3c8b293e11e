"""Live progress: one line on a terminal while a load runs, never in the engine's way.

Terminals are pseudo-terminals here, so what a user would see is read back byte for byte.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from servers import ServerThread, delayed

from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import ActiveRun, EngineSettings, run_load
from pytest_seldon_load.pacer import Pacer
from pytest_seldon_load.pytest_plugin.progress import (
    LiveProgress,
    RecentLatency,
    progress_blocker,
    progress_text,
    terminal_progress,
)
from pytest_seldon_load.replay import ReplayRequest, write_replay

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def server():
    with ServerThread(delayed(0.002)) as running:
        yield running


@pytest.fixture
def replay(tmp_path):
    return write_replay(tmp_path / "r.replay", [ReplayRequest("GET", "/", (), None)])


def _terminal(columns: int = 100) -> tuple[int, int]:
    """A pseudo-terminal of `columns` columns: (master, slave)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    return master, slave


def _drain(fd: int, into: bytearray, stop: threading.Event) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)
        if stop.is_set():
            return


def test_a_run_shows_one_line_rewritten_in_place(server, replay):
    master, slave = _terminal()
    seen = bytearray()
    stop = threading.Event()
    reader = threading.Thread(target=_drain, args=(master, seen, stop), daemon=True)
    reader.start()
    progress = LiveProgress(slave, column=lambda: 17, refresh_s=0.1)
    result = run_load(
        SeldonEndpoint(server.url, "v2", "iris"),
        replay,
        rate=50,
        duration=1.5,
        warmup=0.3,
        settings=EngineSettings(lag_threshold_ms=100),  # judged on a busy machine
        companion=progress.companion("test_iris"),
    )
    time.sleep(0.2)
    stop.set()
    progress.close()
    os.close(master)
    text = seen.decode().replace("\r\n", "\n")  # the terminal turns \n into \r\n
    assert result.requests == 75 and result.kept_up
    assert text.startswith("\n  test_iris  "), repr(text[:80])
    lines = [part for part in re.split(r"[\r\n]", text) if "test_iris" in part]
    assert len(lines) >= 8, text  # about ten refreshes of one line
    assert any("warm-up" in line for line in lines)
    last = lines[-1]
    assert re.search(r"1\.[0-9]/1\.8s  sent \d+  \d+/s of 50/s  p99 \d.*  errors 0", last), last
    assert text.endswith("\r\x1b[K\x1b[1A\x1b[17C"), repr(text[-30:])  # back on pytest's line


def test_reading_the_live_run_costs_far_less_than_a_send_slot(replay):
    run = ActiveRun(
        SeldonEndpoint("http://127.0.0.1:1", "v2", "iris"),
        replay,
        Pacer("constant", 1000, 10),
        0.0,
        EngineSettings(),
    )
    for value in range(1, 50_000, 7):
        run.recorder.latency.record_value(value)
    run.start = time.perf_counter() - 3.0
    recent = RecentLatency(run.recorder.latency)
    started = time.perf_counter()
    for _ in range(50):
        progress_text(run, "t", recent.p99(), time.perf_counter())
    per_refresh_ms = (time.perf_counter() - started) / 50 * 1000
    assert per_refresh_ms < 2.0, f"{per_refresh_ms:.2f} ms per refresh"


def test_progress_is_only_for_a_person_at_a_terminal(pytester):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    config = pytester.parseconfigure()
    assert progress_blocker(config, environ={}) == ""
    assert progress_blocker(config, environ={"CI": "true"}) == "CI is set"
    assert progress_blocker(config, environ={"CI": "false"}) == ""
    config.workerinput = {"workerid": "gw0"}
    assert "xdist worker" in progress_blocker(config, environ={})
    assert progress_blocker(pytester.parseconfigure("-q"), environ={}) == "-q"
    quiet = pytester.parseconfigure("--load-no-progress")
    assert progress_blocker(quiet, environ={}) == "--load-no-progress"
    # Under this test run, standard output is captured: no terminal, no progress.
    assert terminal_progress(pytester.parseconfigure()) is None


LIVE_SUITE = """
def test_live(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/"]), rate=40, duration=1.5,
             lag_threshold_ms=100)
"""


def _pytest_in_a_terminal(directory: Path, url: str, extra_env: dict, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CI"))}
    env.update(extra_env)
    master, slave = _terminal()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--seldon-url={url}", *args],
        cwd=directory,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    seen = bytearray()
    reader = threading.Thread(target=_drain, args=(master, seen, threading.Event()), daemon=True)
    reader.start()
    process.wait(timeout=120)
    reader.join(5)
    os.close(master)
    return seen.decode(errors="replace")


def test_pytest_on_a_terminal_shows_progress_but_not_under_ci(pytester, server):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_live=LIVE_SUITE)
    outputs: dict[str, str] = {}

    def run(name: str, env: dict, *args: str) -> None:
        outputs[name] = _pytest_in_a_terminal(pytester.path, server.url, env, *args)

    runs = [
        threading.Thread(target=run, args=("terminal", {})),
        threading.Thread(target=run, args=("ci", {"CI": "true"})),
    ]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(150)
    shown, hidden = outputs["terminal"], outputs["ci"]
    assert "1 passed" in shown and "1 passed" in hidden, shown + hidden
    assert re.search(r"\r  test_live  +\d\.\d/1\.5s  sent \d+  \d+/s of 40/s  p99 ", shown), shown
    assert "test_live.py \x1b[1A" not in shown
    assert "\x1b[1A" in shown  # the cursor went back to pytest's line
    assert "sent " not in hidden, hidden
