"""A lean start: what the command line, a plain load run and a pytest session without load
tests import. scipy is used by nothing the project ships, the Kubernetes client only by
cluster targets, aiohttp's server only by ``--admin-port``; none may load otherwise.

Each check runs in a fresh interpreter and reads its ``sys.modules`` at exit, so a module
imported anywhere on the way (a plugin hook, the run's teardown) is seen.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from servers import ServerThread, by_path

UNUSED = ("scipy", "kubernetes", "aiohttp.web", "grpc", "mlserver", "sklearn")
"""Never needed by a plain run against a URL, nor by a session without load tests."""
NOT_AT_START = ("numpy", "hdrh", "pytest_seldon_load.result", "pytest_seldon_load.regression")
"""Needed by load runs and their statistics, so not by a session that has none."""

REPORT_AT_EXIT = textwrap.dedent(
    f"""
    import atexit, sys

    def _report():
        loaded = [m for m in {UNUSED + NOT_AT_START!r} if m in sys.modules]
        sys.__stderr__.write("loaded-at-exit: " + " ".join(loaded) + "\\n")

    atexit.register(_report)
    """
)


def loaded_at_exit(code: str, cwd=None) -> list[str]:
    """The UNUSED modules loaded when `code` (run after the exit hook is set) finishes."""
    done = subprocess.run(
        [sys.executable, "-c", REPORT_AT_EXIT + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("loaded-at-exit:")), None)
    assert line is not None, done.stdout + done.stderr
    return line.split(":", 1)[1].split()


def test_importing_the_command_line_loads_nothing_it_does_not_use():
    loaded = loaded_at_exit("import pytest_seldon_load.cli")
    assert not set(loaded) & set(UNUSED), loaded


def test_a_plain_seldon_load_run_loads_nothing_it_does_not_use(tmp_path):
    replay = tmp_path / "ready.replay"
    replay.write_text("/v2/health/ready\n")
    with ServerThread(by_path) as server:
        code = textwrap.dedent(
            f"""
            from pytest_seldon_load.cli import main
            code = main(["run", "--url", {server.url!r}, "--replay", {str(replay)!r},
                         "--rate", "20", "--duration", "1s", "--no-progress",
                         "--out", {str(tmp_path / "result.json")!r}])
            assert code == 0, code
            """
        )
        loaded = loaded_at_exit(code)
    assert not set(loaded) & set(UNUSED), loaded
    assert "numpy" in loaded  # the check sees what a run does load
    assert (tmp_path / "result.json").is_file()


def test_the_admin_port_loads_the_server_only_when_asked(tmp_path):
    replay = tmp_path / "ready.replay"
    replay.write_text("/v2/health/ready\n")
    with ServerThread(by_path) as server:
        code = textwrap.dedent(
            f"""
            from pytest_seldon_load.cli import main
            main(["run", "--url", {server.url!r}, "--replay", {str(replay)!r}, "--rate", "20",
                  "--duration", "0.5s", "--no-progress", "--admin-port", "0"])
            """
        )
        loaded = loaded_at_exit(code)
    assert set(loaded) & set(UNUSED) == {"aiohttp.web"}, loaded


@pytest.mark.parametrize("plugins", ["loaded", "disabled"])
def test_a_pytest_session_without_load_tests_loads_nothing_it_does_not_use(tmp_path, plugins):
    (tmp_path / "test_plain.py").write_text("def test_arithmetic():\n    assert 1 + 1 == 2\n")
    disabled = (
        []
        if plugins == "loaded"
        else [
            "-p",
            "no:seldon_load",
            "-p",
            "no:seldon_load_cluster",
            "-p",
            "no:seldon_load_reports",
        ]
    )
    arguments = ["-q", "-p", "no:cacheprovider", "-p", "no:kmock", *disabled, "test_plain.py"]
    code = f"import pytest\nraise SystemExit(pytest.main({arguments!r}))\n"
    assert loaded_at_exit(code, cwd=tmp_path) == []
