"""``seldon-load capacity`` against servers of known capacity on 127.0.0.1: the search, its
exit codes, its saved JSON, bad input named by option, and Ctrl-C keeping the stages run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from servers import ServerThread, Slots

from pytest_seldon_load import Capacity, write_replay
from pytest_seldon_load.cli import main
from pytest_seldon_load.protocols import v2_request


@pytest.fixture
def replay(tmp_path):
    return write_replay(tmp_path / "iris.replay", [v2_request("iris", [[5.1, 3.5, 1.4, 0.2]])])


def capacity(url: str, replay, *extra: str) -> int:
    return main(["capacity", "--url", url, "--replay", str(replay.path), *extra])


def test_finds_a_100_per_second_server_and_saves_the_stages(replay, tmp_path, capsys):
    out = tmp_path / "capacity.json"
    with ServerThread(Slots(workers=5, service_s=0.05)) as server:
        code = capacity(
            server.url,
            replay,
            *("--budget", "p99<90ms", "--start", "30", "--max-rate", "400"),
            *("--stage", "1s", "--warmup", "0.2s", "--max-stages", "8", "--out", str(out)),
        )
    printed = capsys.readouterr().out
    assert code == 0, printed
    found = Capacity.from_dict(json.loads(out.read_text()))
    assert found.stopped == "budget" and found.rate is not None and found.first_bad is not None
    # 100/s nominal; a busy machine's timers hold each slot a little longer, so a bit less
    assert 50 <= found.rate <= 110 < found.first_bad * 1.15, found.table()
    assert found.budgets["p99"] == "90ms" and "error_rate" in found.budgets  # 1% by default
    assert "  30 req/s: pass" in printed  # each stage as it ends
    assert f"capacity {found.rate:g}/s within p99 90ms, error_rate 0.01" in printed
    assert "rate/s" in printed and "FAIL" in printed  # the table of stages


def test_min_rate_above_the_capacity_exits_one_with_the_reason(replay, capsys):
    with ServerThread(Slots(workers=2, service_s=0.05)) as server:  # 40/s
        code = capacity(
            server.url,
            replay,
            *("--budget", "p99<90ms", "--start", "150", "--max-rate", "400"),
            *("--stage", "1s", "--warmup", "0.2s", "--min-rate", "200"),
        )
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert "capacity is under 200/s: even the starting rate 150/s broke a budget" in captured.err


def test_a_server_that_holds_every_rate_says_the_capacity_may_be_higher(replay, capsys):
    with ServerThread(Slots(workers=50, service_s=0.001)) as server:
        code = capacity(
            server.url,
            replay,
            *("--start", "10", "--max-rate", "40", "--stage", "1s", "--warmup", "0s"),
            "--min-rate",
            "40",
        )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "capacity 40/s within p99 50ms" in printed and "may be higher" in printed
    assert "  10 req/s: pass" in printed and "  40 req/s: pass" in printed


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--max-rate", "100", "--start", "200"), "--start 200 is above --max-rate 100"),
        (("--max-rate", "100", "--growth", "1"), "--growth: must be above 1"),
        (("--max-rate", "100", "--resolution", "2"), "--resolution: must be a fraction"),
        (("--max-rate", "100", "--budget", "p99>5ms"), "argument --budget: 'p99>5ms'"),
        (("--max-rate", "0"), "argument --max-rate: must be a positive number"),
        (("--max-rate", "100", "--arrival", "bursty"), "--arrival: unknown arrival"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(replay, capsys, extra, words):
    # nothing listens on port 9: a stage that ran would fail, so none may
    code = capacity("http://127.0.0.1:9", replay, *extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_replay_is_named(tmp_path, capsys):
    code = main(
        [
            *("capacity", "--url", "http://127.0.0.1:9", "--max-rate", "10"),
            *("--replay", str(tmp_path / "none.replay")),
        ]
    )
    assert code == 2 and "--replay: no such file" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_keeps_the_stages_run_so_far(replay, tmp_path):
    out = tmp_path / "partial.json"
    with ServerThread(Slots(workers=50, service_s=0.001)) as server:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "pytest_seldon_load.cli", "capacity", "--url", server.url),
                *("--replay", str(replay.path), "--start", "10", "--max-rate", "10000"),
                *("--stage", "1s", "--warmup", "0s", "--out", str(out)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            seen = ""
            while "20 req/s: pass" not in seen:  # two stages done, the third running
                assert time.monotonic() < deadline, seen
                line = process.stdout.readline()  # type: ignore[union-attr]
                assert line, f"ended early: {seen!r}"
                seen += line
            time.sleep(0.4)
            process.send_signal(signal.SIGINT)
            rest, err = process.communicate(timeout=20)
        finally:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err
    partial = Capacity.from_dict(json.loads(out.read_text()))
    assert [s.rate for s in partial.stages][:2] == [10, 20] and partial.stopped == "interrupted"
    assert f"capacity written to {out}" in rest


def test_a_replay_that_breaks_off_in_a_stage_is_named_as_bad_input(tmp_path, capsys):
    import gzip

    line = v2_request("iris", [[5.1, 3.5, 1.4, 0.2]]).to_line()
    packed = gzip.compress(("\n".join([line] * 20_000) + "\n").encode())
    broken = tmp_path / "broken.replay.gz"
    broken.write_bytes(packed[: len(packed) // 2])  # the first lines read, then the cut
    with ServerThread(Slots(workers=50, service_s=0.001)) as server:
        code = main(
            [
                *("capacity", "--url", server.url, "--replay", str(broken)),
                *("--start", "10", "--max-rate", "20", "--stage", "1s", "--warmup", "0s"),
            ]
        )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--replay:" in err and "the gzip stream is damaged" in err
