"""What every ``seldon-load`` command shares: the parser class, errors, argument types."""

from __future__ import annotations

import argparse
import re
import textwrap
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from ..durations import number_option
from ..redact import redact_text

PROG = "seldon-load"
_ANY_CONSUMER_KEY = re.compile(r"(?i)(consumer_key=)[^&#\s]*")


class CommandError(Exception):
    """Bad input to a command: reported as one line on stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (``prog: error: message``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {redact_text(message)}\n")


def wrap(text: str) -> str:
    return textwrap.fill(text, width=88, break_on_hyphens=False)


def command_parser(
    commands: argparse._SubParsersAction, name: str, summary: str, about: str, examples: str = ""
) -> argparse.ArgumentParser:
    """A (sub)command: `summary` is its line in the list of commands, `about` its description
    (wrapped here), `examples` the text after the options, kept as written."""
    return commands.add_parser(
        name,
        help=summary,
        description=wrap(about),
        epilog=examples or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def whole(least: int) -> Callable[[str], float]:
    """A whole-number option, at least `least` (0 or 1): `durations.number_option`'s rule."""
    if least not in (0, 1):
        raise ValueError(f"whole(): least must be 0 or 1, got {least}")
    return number_option(whole=True, allow_zero=least == 0)


def seed(text: str) -> int | None:
    if text.lower() in ("none", "random"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 0 or 'none', got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


percent = number_option(allow_zero=True, at_most=100.0)
"""A percentage option, 0 to 100."""


def hide_keys(text: str) -> str:
    return _ANY_CONSUMER_KEY.sub(r"\1***", redact_text(text))


OptionSpec = tuple[str, Callable[[str], Any], Any, str]
"""metavar, type, default and help of one option of an option table."""


def add_options(parser: argparse.ArgumentParser, table: Mapping[str, OptionSpec]) -> None:
    """Declare each `keyword: (metavar, type, default, help)` of `table` as --keyword (with
    dashes for underscores): options that pass straight through to the keyword of the same
    name (a RunPlan field, a find_capacity argument)."""
    for keyword, (metavar, kind, default, text) in table.items():
        flag = "--" + keyword.replace("_", "-")
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)


def option_values(args: argparse.Namespace, table: Mapping[str, OptionSpec]) -> dict[str, Any]:
    """The parsed values of `table`'s options, by keyword."""
    return {keyword: getattr(args, keyword) for keyword in table}
