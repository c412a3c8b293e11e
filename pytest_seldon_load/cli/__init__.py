"""The ``seldon-load`` command line: one subcommand per task, each in its own module.

Each command module has an ``add_command(commands)`` that declares it on the top-level
subparsers and sets ``func``, a function taking the parsed arguments and returning an exit
code, and may set ``interrupted_note``, said after "interrupted" on Ctrl-C.
Exit codes: 0 success, 1 a check found problems (a regression, a broken threshold, a run
where every request failed or that was aborted, nothing compared), 2 bad input (one line
on stderr naming the problem), 130 interrupted. Nothing printed ever shows a consumer key.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import capacity, compare, replay, report, run
from .arguments import PROG, CommandError, Parser, hide_keys

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    replay.add_command,
    run.add_command,
    capacity.add_command,
    compare.add_command,
    report.add_command,
]
"""Declarers of the top-level subcommands, in the order --help lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Performance regression testing for Seldon model deployments.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {installed_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for add in COMMANDS:
        add(commands)
    return parser


def installed_version() -> str:
    """The installed distribution's version (one source of truth: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-seldon-load")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``seldon-load``; returns the exit code."""
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except CommandError as exc:
        print(f"{PROG}: error: {hide_keys(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        note = getattr(args, "interrupted_note", "")
        print(f"{PROG}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr)
        return 130
