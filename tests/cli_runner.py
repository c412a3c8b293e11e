"""``seldon-load`` run in this process as its entry point runs it: the arguments, the exit code,
stdout and stderr, as `subprocess.run` would give them, without an interpreter start each."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

from pytest_seldon_load.cli import main


def run_cli(
    *args: object, cwd: str | os.PathLike[str] | None = None
) -> subprocess.CompletedProcess:
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(
        ["seldon-load", *map(str, args)], code, out.getvalue(), err.getvalue()
    )
