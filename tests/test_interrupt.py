"""Ctrl-C or SIGTERM during a load run: the run stops at once and keeps what it measured, the
process's own handlers come back, and an interrupted pytest session saves no baseline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from servers import V2_OK, ServerThread, json_response

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")


async def _ok(request):
    await request.read()
    return json_response(V2_OK)


@pytest.fixture(scope="module")
def target_url():
    with ServerThread(_ok) as server:
        yield server.url


def _interrupt_after_output(
    process: subprocess.Popen, marker: str, delay: float, stop: int = signal.SIGINT
) -> None:
    deadline = time.monotonic() + 20
    seen = ""
    while marker not in seen:
        assert time.monotonic() < deadline, f"never saw {marker!r}: {seen!r}"
        line = process.stdout.readline()
        assert line, f"process ended before {marker!r}: {seen!r}"
        seen += line
    time.sleep(delay)
    process.send_signal(stop)


STOPS = pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])


@STOPS
def test_run_load_interrupted_returns_the_partial_result(tmp_path, target_url, stop):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, signal, sys
        from pytest_seldon_load import RunInterrupted, SeldonEndpoint, run_load, write_replay
        replay = write_replay({str(tmp_path / "r.replay")!r}, ["/v2/models/iris/ready"])
        def mine(*_):
            print("the process's own handler", flush=True)
        signal.signal(signal.SIGTERM, mine)
        print("starting", flush=True)
        try:
            run_load(SeldonEndpoint({target_url!r}), replay, rate=100, duration=30)
        except RunInterrupted as stop:
            assert signal.getsignal(signal.SIGTERM) is mine, "SIGTERM handler not restored"
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            kinds = stop.result.error_kinds
            print(json.dumps({{**stop.result.summary(), "error_kinds": kinds}}), flush=True)
            sys.exit(3)
    """)
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = time.monotonic()
    try:
        _interrupt_after_output(process, "starting", 1.5, stop)
        out, err = process.communicate(timeout=15)
    finally:
        process.kill()
    elapsed = time.monotonic() - started
    assert process.returncode == 3, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] is True
    assert 50 <= summary["requests"] <= 400
    # Only what was in flight at the interrupt is unanswered (at 100/s, rarely more than 1).
    assert set(summary["error_kinds"]) <= {"interrupted_in_flight"}
    assert summary["errors"] <= 2
    assert summary["duration"] < 5
    assert summary["achieved_rate"] == pytest.approx(100, rel=0.3)
    assert elapsed < 10


@STOPS
def test_an_interrupted_pytest_run_prints_the_partial_run_and_saves_no_baseline(
    pytester: pytest.Pytester, target_url, stop
):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
import sys

def test_short(seldon_endpoint, replay_file, load_run):
    load_run(seldon_endpoint, replay_file.from_requests(["/v2/models/iris/ready"]), rate=20,
             duration=0.5)

def test_long(seldon_endpoint, replay_file, load_run):
    replay = replay_file.from_requests(["/v2/models/iris/ready"])
    print("starting", file=sys.__stdout__, flush=True)
    load_run(seldon_endpoint, replay, rate=50, duration=30)
"""
    )
    baselines = pytester.path / "baselines"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-s",
            f"--seldon-url={target_url}",
            "--load-baseline-save=main",
            f"--load-baseline-dir={baselines}",
            f"--load-json={pytester.path / 'session.json'}",
            str(pytester.path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=pytester.path,
    )
    try:
        _interrupt_after_output(process, "starting", 1.5, stop)
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "load run interrupted" in out
    row = next((line for line in out.splitlines() if line.startswith("test_long")), None)
    assert row is not None, out
    assert row.rstrip().endswith("interrupted")
    assert "baseline 'main' not saved: the session was interrupted" in out
    assert not baselines.exists() or not any(baselines.iterdir())
    # The partial result is saved too: the JSON report holds both runs, the long one as
    # interrupted with what it measured until then.
    saved = json.loads((pytester.path / "session.json").read_text())
    runs = {run["nodeid"].rsplit("::", 1)[-1]: run for run in saved["runs"]}
    assert set(runs) == {"test_short", "test_long"}, sorted(runs)
    assert runs["test_long"]["interrupted"] is True
    assert runs["test_long"]["verdict"] == "interrupted"
    assert runs["test_long"]["requests"] > 0 and runs["test_short"]["interrupted"] is False
