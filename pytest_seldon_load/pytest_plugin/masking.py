"""What pytest itself shows carries no secret: test ids and test reports.

A test parametrized by a consumer key or a token gets the key in its id (``test_x[KEY]``, or
``test_x[consumer_key=KEY]`` from an ``ids=`` function), and pytest prints ids in the
terminal and JUnit XML; a failure's traceback lists the test's arguments and its captured
output and logs. Here a secret-named parameter's value gets a masked id, any id that still
carries a secret is masked at collection, before anything is reported (masked ids that would
collide get a ``-2``, ``-3`` suffix), and every test report is masked before pytest shows or
writes it. What counts as a secret is `redact`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

import pytest

from ..redact import MASK, is_known_secret, is_secret_name, redact_text, register_secret


def pytest_make_parametrize_id(config: pytest.Config, val: Any, argname: str) -> str | None:
    if isinstance(val, str) and (is_secret_name(argname) or is_known_secret(val)):
        register_secret(val)  # also masked where pytest shows the test's arguments
        return f"{argname}={MASK}"
    return None


def _distinct(nodeid: str, seen: set[str]) -> str:
    number = 2
    candidate = nodeid
    while candidate in seen:
        head, bracket, tail = nodeid.rpartition("[")
        inside = bracket and tail.endswith("]")
        candidate = f"{head}[{tail[:-1]}-{number}]" if inside else f"{nodeid}-{number}"
        number += 1
    return candidate


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """First, so selection (``--lf``, ``-k``) and every report see the masked ids."""
    seen = {item.nodeid for item in items}
    for item in items:
        masked = redact_text(item.nodeid)
        if masked == item.nodeid:
            continue
        callspec = getattr(item, "callspec", None)
        for name, value in callspec.params.items() if callspec is not None else ():
            # A secret-named parameter's value is masked wherever it shows. Other values stay
            # readable: registering every value of a masked id would mask ordinary words.
            if isinstance(value, str) and is_secret_name(name) and value in item.nodeid:
                register_secret(value)
        seen.discard(item.nodeid)
        masked = _distinct(masked, seen)
        seen.add(masked)
        _rename(item, masked)


def _rename(item: pytest.Item, nodeid: str) -> None:
    """Give `item` another id; pytest keeps it privately (a structured id since pytest 9)."""
    structured = getattr(item, "_id", None)
    if structured is not None and hasattr(type(structured), "parse"):
        item._id = type(structured).parse(nodeid)
    else:
        item._nodeid = nodeid  # type: ignore[attr-defined]
    item.name = nodeid.rpartition("::")[2]
    item.__dict__.pop("location", None)  # computed from the name, maybe already


def _masked(value: Any) -> Any:
    """`value` with every string in it masked; lists and pytest's repr dataclasses in place."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        value[:] = [_masked(v) for v in value]
    elif isinstance(value, tuple):
        return tuple(_masked(v) for v in value)
    elif isinstance(value, dict):
        for key in value:
            value[key] = _masked(value[key])
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            object.__setattr__(value, field.name, _masked(getattr(value, field.name)))
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The failure text, the test's arguments in it, captured output and logs, masked."""
    report: pytest.TestReport = yield
    report.longrepr = _masked(report.longrepr)
    report.sections = [(title, redact_text(content)) for title, content in report.sections]
    return report
