"""``seldon-load run`` as a user (or the Iago image's script) runs it: a real process, a real
server on 127.0.0.1, its admin port read while it runs, Ctrl-C and kill keeping the result."""

from __future__ import annotations

import os
import pty
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from servers import V2_OK, ServerThread, delayed, fixed

from pytest_seldon_load import LoadResult
from pytest_seldon_load.cli import main
from pytest_seldon_load.replay import write_replay

SCRIPT = Path(__file__).resolve().parent.parent / "docker" / "start-load-test.sh"


@pytest.fixture(scope="module")
def server():
    with ServerThread(fixed(200, V2_OK)) as running:
        yield running


@pytest.fixture
def replay(tmp_path):
    return write_replay(
        tmp_path / "iris.replay",
        ['POST /v2/models/iris/infer Content-Type:application/json {"inputs":[]}'],
    )


class Run:
    """`seldon-load run ...` in a process of its own, its output read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest_seldon_load.cli", "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, start: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(start):
                return line
        self.process.kill()
        raise AssertionError(f"no line starting {start!r}; saw {self.seen!r}")

    def admin_url(self) -> str:
        return self.wait_for_line("admin port: ").split()[2].rsplit("/", 1)[0]

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        code = self.process.wait(timeout)
        time.sleep(0.05)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "".join(self.seen)


def test_a_run_serves_live_stats_and_writes_its_result(server, replay, tmp_path):
    out = tmp_path / "result.json"
    run = Run(
        "--url",
        server.url,
        "--replay",
        str(replay),
        "--rate",
        "40",
        "--duration",
        "2s",
        "--admin-port",
        "0",
        "--out",
        str(out),
    )
    url = run.admin_url()
    time.sleep(1.0)
    live = requests.get(f"{url}/stats.json", timeout=5).json()
    assert live["counters"]["client/requests"] > 10
    assert live["labels"]["seldon_load/engine"] == "embedded"
    assert "p99" in live["metrics"]["client/request_latency_ms"]
    code, output = run.finish()
    assert code == 0, output
    assert "done:" in output and "p99" in output and f"result written to {out}" in output
    result = LoadResult.from_json(out.read_text())
    assert result.requests == 80 and result.errors == 0 and not result.interrupted


@pytest.mark.parametrize("how", ["ctrl-c", "kill", "shutdown.json"])
def test_a_stopped_run_keeps_what_it_measured(server, replay, tmp_path, how):
    out = tmp_path / "partial.json"
    run = Run(
        "--url",
        server.url,
        "--replay",
        str(replay),
        "--rate",
        "40",
        "--duration",
        "60s",
        "--admin-port",
        "0",
        "--out",
        str(out),
    )
    url = run.admin_url()
    time.sleep(0.8)
    if how == "shutdown.json":
        assert requests.get(f"{url}/shutdown.json", timeout=5).json() == {"response": "ok"}
    else:
        run.process.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
    code, output = run.finish()
    if how == "shutdown.json":
        assert code == 0 and "stopped through the admin port's /shutdown.json" in output
    else:
        assert code == 130 and "interrupted; measured until then" in output, output
    partial = LoadResult.from_json(out.read_text())
    assert partial.interrupted and 10 <= partial.requests <= 60


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--url", "{url}", "--replay", "missing.replay", "--rate", "5"],
            "--replay: no such file missing.replay",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "-5"],
            "argument --rate: must be a positive number, got '-5'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--duration", "soon"],
            "argument --duration: cannot read 'soon'",
        ),
        (
            ["--url", "ftp://x", "--replay", "{replay}", "--rate", "5"],
            "--url: base URL must look like http://host:port[/prefix]",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--arrival", "bursty"],
            "--arrival: unknown arrival process 'bursty'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--admin-port", "70000"],
            "argument --admin-port: must be at most 65535, got '70000'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "abc"],
            "argument --rate: must be a positive number, got 'abc'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "inf"],
            "argument --rate: must be a positive number, got 'inf'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--ramp-from", "nan"],
            "argument --ramp-from: must be a number >= 0, got 'nan'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--ramp-from", "inf"],
            "argument --ramp-from: must be a number >= 0, got 'inf'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--connections", "0"],
            "argument --connections: must be at least 1, got 0",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--timeout", "0"],
            "argument --timeout: must be positive, got '0'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--seed", "abc"],
            "argument --seed: expected a whole number >= 0 or 'none', got 'abc'",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--engine", "iago"],
            "--engine: the iago engine sends from a pod in the cluster",
        ),
        (
            ["--url", "{url}", "--replay", "{replay}", "--rate", "5", "--engine", "k7"],
            "--engine: unknown engine 'k7'; available: embedded, iago",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_option(
    server, replay, capsys, arguments, message, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)
    filled = [a.format(url=server.url, replay=replay) for a in arguments]
    assert (
        main(
            [
                "run",
                *filled,
                "--duration" if "--duration" not in filled else "--warmup",
                "0.2s" if "--duration" not in filled else "0",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1, error


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"seldon-load {version('pytest-seldon-load')}"


def _run(url: str, replay: Path, *extra: str) -> int:
    return main(["run", "--url", url, "--replay", str(replay), "--rate", "20", "--duration",
                 "1s", *extra])  # fmt: skip


@pytest.fixture(scope="module")
def slow_server():
    with ServerThread(delayed(0.03)) as running:
        yield running


def test_thresholds_that_hold_exit_zero(slow_server, replay, capsys):
    code = _run(
        slow_server.url,
        replay,
        "--threshold",
        "p99<2s",
        "--threshold",
        "p(99.9)<2s",
        "--threshold",
        "error_rate<0.01",
        "--threshold",
        "throughput>5",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    for text in ("p99<2s", "p(99.9)<2s", "error_rate<0.01", "throughput>5"):
        assert re.search(rf"^  ok +{re.escape(text)}$", out, re.MULTILINE), out


def test_a_broken_threshold_exits_one_with_the_budgets_words(slow_server, replay, capsys):
    """The server takes 30 ms: a 5 ms p99 is broken, judged as the pytest budget judges."""
    code = _run(
        slow_server.url, replay, "--threshold", "p99<5ms", "--threshold", "error_rate<0.5",
        "--allow-lag",
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.out
    broken = r"BROKEN +p99<5ms +p99 latency \S+ is over its budget of 5\.00ms"
    assert re.search(broken, captured.out), captured.out
    assert re.search(r"^  ok +error_rate<0\.5$", captured.out, re.MULTILINE)
    assert "1 of 2 thresholds broken" in captured.err


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("p99>50ms", ["ceiling", "p99<50ms"]),
        ("throughput<100", ["floor", "throughput>100"]),
        ("p99<fast", ["cannot read 'fast'"]),
        ("latency<5ms", ["unknown budget 'latency'"]),
        ("p99 50ms", ["expected METRIC<VALUE"]),
        ("error_rate<2", ["between 0 and 1"]),
    ],
)
def test_a_bad_threshold_is_a_usage_error(server, replay, capsys, text, words):
    assert _run(server.url, replay, "--threshold", text) == 2
    error = capsys.readouterr().err
    assert "argument --threshold" in error
    for word in words:
        assert word in error, error


def test_a_run_where_every_request_failed_says_so_and_exits_one(replay, capsys):
    with ServerThread(fixed(404, b'{"error":"no route"}')) as missing:
        code = _run(missing.url, replay)
    captured = capsys.readouterr()
    assert code == 1
    assert "ERROR: every request failed (20 of 20: http_404 ×20)" in captured.err


def test_abort_on_error_rate_stops_the_run_and_the_result_says_so(replay, tmp_path, capsys):
    out = tmp_path / "aborted.json"
    with ServerThread(fixed(500, b'{"error":"down"}')) as failing:
        code = main(
            ["run", "--url", failing.url, "--replay", str(replay), "--rate", "40",
             "--duration", "60s", "--abort-on-error-rate", "50%", "--out", str(out)]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert "ABORTED: error rate 100.0%" in captured.err
    result = LoadResult.from_json(out.read_text())
    assert "exceeded --abort-on-error-rate 0.5" in result.aborted
    assert result.interrupted and result.duration < 60
    assert result.summary()["aborted"] == result.aborted


def test_abort_on_error_rate_leaves_a_healthy_run_alone(server, replay, tmp_path):
    out = tmp_path / "whole.json"
    assert _run(server.url, replay, "--abort-on-error-rate", "0", "--out", str(out)) == 0
    result = LoadResult.from_json(out.read_text())
    assert not result.aborted and result.requests == 20


@pytest.mark.parametrize("rate", ["1", "100%", "-0.1", "lots"])
def test_abort_rate_must_be_a_fraction_below_one(server, replay, capsys, rate):
    assert _run(server.url, replay, "--abort-on-error-rate", rate) == 2
    assert "argument --abort-on-error-rate" in capsys.readouterr().err


def _output_through_a_terminal(*args: str) -> str:
    """`seldon-load run` with its stdout on a pseudo-terminal, as a person sees it."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_seldon_load.cli", "run", *args],
        stdout=secondary,
        stderr=subprocess.STDOUT,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the other side closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(20) == 0, b"".join(chunks)
    return b"".join(chunks).decode("utf-8", "replace")


PROGRESS_LINE = re.compile(r"seldon-load run +\d+\.\d/2s +sent \d+ +\d+/s of 20/s +p99 ")


def test_live_progress_shows_on_a_terminal_only(server, replay):
    args = ("--url", server.url, "--replay", str(replay), "--rate", "20", "--duration", "2s")
    seen = _output_through_a_terminal(*args)
    assert PROGRESS_LINE.search(seen), seen
    assert "done:" in seen
    quiet = _output_through_a_terminal(*args, "--no-progress")
    assert "done:" in quiet and not PROGRESS_LINE.search(quiet), quiet
    run = Run(*args)
    code, piped = run.finish()
    assert code == 0 and "done:" in piped and not PROGRESS_LINE.search(piped), piped


# --- the image's start-load-test.sh -----------------------------------------------------
def script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SELDON_LOAD_BIN": "echo", **env},
        timeout=10,
        check=False,
    )


def test_start_load_test_sh_has_iagos_arguments_and_defaults(replay):
    assert script().returncode == 2
    assert "usage: start-load-test.sh <replay-file> <rate>" in script().stderr
    assert "cannot read the replay file" in script("/nonexistent", "10").stderr
    iago = script(str(replay), "100").stdout.split()
    assert iago[:3] == ["run", "--url", "http://seldon-server:80"]
    line = " ".join(iago)
    for expected in (
        "--rate 100",
        "--arrival slow-start-poisson",
        "--ramp 240s",
        "--duration 1h",
        "--admin-port 9994",
        "--admin-host 0.0.0.0",
        "--protocol legacy",
        "--timeout 30s",
    ):
        assert expected in line
    ours = " ".join(
        script(
            str(replay),
            "7",
            SELDON_LOAD_URL="http://iris:8000",
            SELDON_LOAD_ARRIVAL="constant",
            SELDON_LOAD_PROTOCOL="v2",
            SELDON_LOAD_HEADERS="Seldon-Model:iris\nX-Trace:1",
            SELDON_LOAD_SEED="3",
        ).stdout.split()
    )
    assert "--url http://iris:8000" in ours and "--arrival constant" in ours
    assert "--ramp" not in ours, "no ramp unless asked, outside slow-start"
    assert "--header Seldon-Model:iris --header X-Trace:1" in ours and "--seed 3" in ours


def test_start_load_test_sh_runs_the_engine(server, replay, tmp_path):
    out = tmp_path / "pod-result.json"
    done = script(
        str(replay),
        "30",
        SELDON_LOAD_BIN="seldon-load",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        SELDON_LOAD_URL=server.url,
        SELDON_LOAD_PROTOCOL="v2",
        SELDON_LOAD_ARRIVAL="constant",
        SELDON_LOAD_DURATION="1s",
        SELDON_LOAD_ADMIN_PORT="0",
        SELDON_LOAD_ADMIN_HOST="127.0.0.1",
        SELDON_LOAD_OUT=str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "admin port: http://127.0.0.1:" in done.stdout
    assert LoadResult.from_json(out.read_text()).requests == 30
