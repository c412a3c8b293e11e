"""Every plugin option declared once: a command-line option, an ini key of the same name
(``--seldon-url`` → ``seldon_url`` in ``[pytest]`` or ``[tool.pytest.ini_options]``) and, for
the target and secrets, an environment variable (``SELDON_LOAD_URL``).

Which value wins: command line > environment > ini file > default. Every source goes through
the same conversion and validation, and a bad value is a usage error naming where it came
from (``--load-timeout``, ``SELDON_LOAD_URL`` or ``ini key load_timeout``). Once resolved, the
value sits in ``config.option`` like any option, so ``config.getoption`` reads it too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

GROUPS = {
    "target": "seldon-load target (what is load-tested; environment: SELDON_LOAD_*)",
    "load": "seldon-load load (how every load run is shaped)",
    "cluster": "seldon-load cluster (Kubernetes and Seldon Core resources)",
    "iago": "seldon-load Iago (the iago engine's pod)",
    "baselines": "seldon-load baselines (regressions against saved runs)",
    "reports": "seldon-load reports (what the session writes and shows)",
}
"""The ``--help`` sections, in the order they are listed."""

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_RESOLVED = pytest.StashKey[bool]()


@dataclass(frozen=True)
class Option:
    """One setting and how to read it from each source."""

    flag: str
    default: Any
    convert: Callable[[str], Any] | None
    choices: Sequence[str] | None
    env: str | None
    kind: str  # "value", "flag" (on/off) or "list" (repeatable)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def ini(self) -> str:
        return self.dest

    def parse(self, text: str) -> Any:
        """`text` as this option's value, or ValueError (without the option's name)."""
        if self.kind == "flag":
            word = text.strip().lower()
            if word not in _TRUE + _FALSE:
                raise ValueError(f"expected true or false, got {text!r}")
            return word in _TRUE
        if self.choices is not None and text not in self.choices:
            raise ValueError(
                f"invalid choice {text!r} (choose from {', '.join(map(repr, self.choices))})"
            )
        if self.convert is None:
            return text
        try:
            return self.convert(text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            message = str(exc)
            # Converters shared with other callers may name the option themselves.
            for prefix in (f"{self.flag}: ", f"{self.flag} ", ": "):
                message = message.removeprefix(prefix)
            raise ValueError(message) from None


_OPTIONS: dict[str, Option] = {}
"""Every option declared so far, by dest (the definitions are the same for every session)."""


def group(parser: pytest.Parser, name: str) -> pytest.OptionGroup:
    """The ``--help`` section `name` (a key of GROUPS); all are made at once, so ``--help``
    lists them in GROUPS' order whichever plugin module asks first."""
    for each, description in GROUPS.items():
        parser.getgroup(f"seldon-load-{each}", description)
    return parser.getgroup(f"seldon-load-{name}")


def add_option(
    group: pytest.OptionGroup,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[str] | None = None,
    env: str | None = None,
    action: str | None = None,
    metavar: str | None = None,
    nargs: str | None = None,
    const: Any = None,
) -> None:
    """Declare `flag` on the command line and its ini key (and `env`, if given).

    `action` is None (a value), "store_true" (an on/off flag) or "append" (repeatable; the
    ini key is a list, one per line; the environment variable one per line too). A string
    `default` goes through `type` like any other value.
    """
    kind = {None: "value", "store_true": "flag", "append": "list"}[action]
    option = Option(flag, default, type, choices, env, kind)
    _OPTIONS[option.dest] = option
    where = f"ini key {option.ini}" + (f", environment {env}" if env else "")
    cli: dict[str, Any] = {"dest": option.dest, "default": None, "help": f"{help} [{where}]"}
    if action is not None:
        cli["action"] = action
    if kind != "flag":
        cli["type"] = _argparse_type(option)
        cli["metavar"] = metavar or ("{" + ",".join(choices) + "}" if choices else None)
    if nargs is not None:
        cli["nargs"] = nargs
        cli["const"] = const
    group.addoption(flag, **cli)
    parser = group.parser
    assert parser is not None, "option groups come from parser.getgroup()"
    ini_help = f"as {flag}" + (f" (overridden by {env})" if env else "")
    if kind == "list":
        parser.addini(option.ini, ini_help, "linelist")
    else:
        parser.addini(option.ini, ini_help, "string")


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.dest
    return parse


def resolve_options(config: pytest.Config) -> None:
    """Give every declared option its value (command line > environment > ini > default),
    once per session: bad values stop the session with a usage error naming their source."""
    if config.stash.get(_RESOLVED, False):
        return
    for option in _OPTIONS.values():
        if getattr(config.option, option.dest, None) is None:
            setattr(config.option, option.dest, _value_from_settings(config, option))
    config.stash[_RESOLVED] = True


def get_option(config: pytest.Config, flag: str) -> Any:
    """The resolved value of `flag` (``--seldon-url`` or ``seldon_url``)."""
    resolve_options(config)
    return config.getoption(flag.lstrip("-").replace("-", "_"))


def _value_from_settings(config: pytest.Config, option: Option) -> Any:
    if option.env:
        text = os.environ.get(option.env, "")
        if text.strip():
            return _convert(option, text, option.env)
    try:
        ini_value = config.getini(option.ini)
    except ValueError:
        ini_value = None
    if ini_value:
        source = f"ini key {option.ini}" + (f" in {config.inipath}" if config.inipath else "")
        return _convert(option, ini_value, source)
    if option.kind == "list":
        return list(option.default or [])
    if isinstance(option.default, str) and option.convert is not None:
        return _convert(option, option.default, f"default of {option.flag}")
    return option.default


def _convert(option: Option, value: object, source: str) -> Any:
    try:
        if option.kind == "list":
            lines = value.splitlines() if isinstance(value, str) else value
            assert isinstance(lines, list)
            return [option.parse(str(line).strip()) for line in lines if str(line).strip()]
        # A TOML number or boolean reads as its text, like the same value in an ini file.
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return option.parse(text.strip())
    except ValueError as exc:
        raise pytest.UsageError(f"{source} ({option.flag}): {exc}") from None
