"""Where the project may write: regular files and new paths only, through symlinks, with the
umask's permissions, checked before a run, and no temporary file left by a dead writer."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time

import pytest
from servers import ServerThread, by_path

from pytest_seldon_load.atomic import (
    ABANDONED_AFTER_S,
    STALE_AFTER_S,
    OutputPathError,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    check_output_path,
)
from pytest_seldon_load.baseline import write_baseline
from pytest_seldon_load.cli import main
from pytest_seldon_load.replay import write_replay
from pytest_seldon_load.report.json_report import write_session_json


@contextlib.contextmanager
def umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def device(tmp_path):
    """A character device like /dev/null, made where a broken writer could do no harm."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError):
        pytest.skip("cannot make a device node here")
    return node


# --- permissions -------------------------------------------------------------------------
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_every_writer_gives_new_files_the_umasks_permissions(tmp_path, mask, expected):
    with umask(mask):
        written = [
            atomic_write_text(tmp_path / "a.txt", "x"),
            atomic_write_json(tmp_path / "a.json", {"a": 1}),
            write_baseline(tmp_path / "main.json", {"schema": "x"}),
            write_session_json(tmp_path / "session.json", {"schema": "x"}),
            write_replay(tmp_path / "a.replay", ["/"]).path,
        ]
    for path in written:
        assert mode_of(path) == expected, (path, oct(mode_of(path)))


def test_a_rewritten_file_keeps_its_own_permissions(tmp_path):
    target = tmp_path / "private.json"
    target.write_text("{}")
    target.chmod(0o600)
    with umask(0o022):
        atomic_write_json(target, {"a": 1})
    assert mode_of(target) == 0o600 and json.loads(target.read_text()) == {"a": 1}


# --- what may be written -------------------------------------------------------------------
def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "results" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_json(link, {"new": True})
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text()) == {"new": True}


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "later.json")
    atomic_write_text(link, "x")
    assert link.is_symlink() and (tmp_path / "later.json").read_text() == "x"


def test_a_device_is_never_replaced(device):
    with pytest.raises(OutputPathError, match=r"--out: .*null is a device, not a file"):
        atomic_write_text(device, "x", option="--out")
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    link = device.parent / "out.json"
    link.symlink_to(device)
    with pytest.raises(OutputPathError, match=r"out\.json \(a link to .*null\) is a device"):
        check_output_path(link, "--load-json")
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_a_pipe_and_a_directory_are_refused(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(OutputPathError, match="pipe is a pipe, not a file"):
        atomic_write_json(pipe, {})
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    with pytest.raises(OutputPathError, match=r"--load-html: .* is a directory"):
        check_output_path(tmp_path, "--load-html")
    assert tmp_path.is_dir()


def test_a_directory_that_cannot_be_made_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputPathError, match=r"--out: cannot write .*: .*file is not a dir"):
        check_output_path(blocker / "sub" / "out.json", "--out")


def test_new_paths_in_new_directories_are_fine(tmp_path):
    target = check_output_path(tmp_path / "a" / "b" / "out.json", "--out")
    assert target == tmp_path / "a" / "b" / "out.json" and not target.exists()


# --- temporary files -------------------------------------------------------------------------
def _dead_pid() -> int:
    for pid in range(4_000_000, 3_000_000, -7919):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.skip("no free process id found")


def test_temporary_files_of_a_dead_writer_are_removed_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "out.json"
    dead = tmp_path / f".out.json.{_dead_pid()}.abc123.part"
    fresh_dead = tmp_path / f".out.json.{_dead_pid()}.def456.part"
    live = tmp_path / f".out.json.{os.getpid()}.ghi789.part"
    other = tmp_path / f".other.json.{_dead_pid()}.jkl000.part"
    for part in (dead, fresh_dead, live, other):
        part.write_text("half")
    old = time.time() - STALE_AFTER_S - 60
    for part in (dead, live, other):
        os.utime(part, (old, old))
    older_version = tmp_path / ".out.json.k2x9q1zz.part"
    abandoned = tmp_path / f".out.json.{os.getpid()}.mno111.part"
    for part in (older_version, abandoned):
        part.write_text("half")
        os.utime(part, (old - ABANDONED_AFTER_S, old - ABANDONED_AFTER_S))
    check_output_path(target, "--out")
    assert not dead.exists() and not older_version.exists() and not abandoned.exists()
    assert fresh_dead.exists(), "a dead writer's file may still be being renamed"
    assert live.exists() and other.exists()
    dead.write_text("half")
    os.utime(dead, (old, old))
    atomic_write_text(target, "whole")
    assert not dead.exists() and target.read_text() == "whole"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


# --- the options, checked before any load -------------------------------------------------------
@pytest.fixture
def counting_server():
    seen: list[str] = []

    async def handler(request):
        seen.append(request.path)
        return await by_path(request)

    with ServerThread(handler) as server:
        server.seen = seen
        yield server


def test_run_refuses_a_bad_out_before_sending_anything(counting_server, tmp_path, capsys):
    replay = write_replay(tmp_path / "r.replay", ["/"])
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    for bad in (tmp_path, pipe):
        code = main(
            [
                "run",
                *("--url", counting_server.url, "--replay", str(replay)),
                *("--rate", "50", "--duration", "5s", "--out", str(bad)),
            ]
        )
        error = capsys.readouterr().err
        assert code == 2 and "--out: " in error and str(bad) in error, error
    assert counting_server.seen == []


def test_report_refuses_a_directory_as_output(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text("{}")
    code = main(["report", str(results), "-o", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and "--output: " in error and "is a directory" in error, error


@pytest.mark.parametrize(
    ("option", "bad"),
    [
        ("--load-json", "{dir}"),
        ("--load-html", "{dir}/pipe"),
        ("--load-baseline-save", "main"),
    ],
)
def test_pytest_report_options_are_checked_at_configure_time(pytester, option, bad):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    os.mkfifo(pytester.path / "pipe")
    (pytester.path / "blocked").write_text("")  # a file where the baseline directory would go
    pytester.makepyfile(test_never="def test_never():\n    raise AssertionError('ran')\n")
    value = bad.format(dir=pytester.path)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--load-baseline-dir=blocked", f"{option}={value}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert f"{option}: " in errors, errors
    assert "ran" not in result.stdout.str()
