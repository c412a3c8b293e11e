"""Capacity searches in a pytest session: the `capacity_search` and `record_capacity`
fixtures, and the searches' place in the terminal summary and the HTML report.

A test's searches ride on its teardown report as JSON (as its load runs do), so under
pytest-xdist the controller reports the workers' searches too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from ..engines import EngineContext
from ..redact import redact_text
from ..report.junit import capacity_properties
from .fixtures import engine_registry

if TYPE_CHECKING:  # the search and its numbers load when a test first asks for them
    from ..capacity import Capacity

REPORT_ATTRIBUTE = "seldon_load_capacities"
ITEM_KEY = pytest.StashKey[list["Capacity"]]()
SESSION_KEY = pytest.StashKey[list[dict[str, Any]]]()


def session_capacities(config: pytest.Config) -> list[dict[str, Any]]:
    """Every capacity search of the session (`Capacity.to_dict()` plus ``nodeid``)."""
    found = config.stash.get(SESSION_KEY, None)
    if found is None:
        found = config.stash[SESSION_KEY] = []
    return found


@pytest.fixture
def record_capacity(request: pytest.FixtureRequest) -> Callable[[Capacity], Capacity]:
    """Show a `find_capacity` result in the session's summary and HTML report."""

    from ..capacity import Capacity

    def record(capacity: Capacity) -> Capacity:
        if not isinstance(capacity, Capacity):
            raise TypeError(
                f"record_capacity: expected a Capacity (what find_capacity returns), got "
                f"{type(capacity).__name__}"
            )
        request.node.stash.setdefault(ITEM_KEY, []).append(capacity)
        return capacity

    return record


@pytest.fixture
def capacity_search(
    request: pytest.FixtureRequest, record_capacity: Callable[[Capacity], Capacity]
) -> Callable[..., Capacity]:
    """`find_capacity` with the session's engines (``--load-engine`` names and conftest.py
    ones alike), its result recorded for the reports. Same arguments as `find_capacity`."""
    from ..capacity import find_capacity

    context = EngineContext(caller="a capacity search", resources=request.getfixturevalue)

    def search(endpoint: Any, replay: Any, budgets: Any = None, **options: Any) -> Capacity:
        options.setdefault("registry", engine_registry(request.config))
        options.setdefault("context", context)
        options.setdefault("label", request.node.name)
        return record_capacity(find_capacity(endpoint, replay, budgets, **options))

    return search


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    found = item.stash.get(ITEM_KEY, None)
    if report.when == "teardown" and found:
        entries = [c.to_dict() | {"nodeid": redact_text(item.nodeid)} for c in found]
        for entry in entries:
            entry["label"] = redact_text(entry["label"])
        setattr(report, REPORT_ATTRIBUTE, json.dumps(entries))
        report.user_properties.extend(capacity_properties(entries))
    return report


class CapacityCollector:
    """Gathers the searches from the reports (on the xdist controller too) and prints them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        text = getattr(report, REPORT_ATTRIBUTE, None)
        if report.when == "teardown" and text:
            session_capacities(self.config).extend(json.loads(text))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        found = session_capacities(self.config)
        if not found:
            return
        from ..capacity import Capacity

        terminalreporter.write_sep("=", "seldon-load capacity")
        for data in found:
            capacity = Capacity.from_dict(data)
            name = capacity.label or str(data.get("nodeid", "?")).split("::", 1)[-1]
            terminalreporter.write_line(redact_text(f"{name}: {capacity.describe()}"))
            for line in capacity.table():
                bad = line.endswith(("FAIL", "not a verdict"))
                terminalreporter.write_line(f"  {line}", red=bad)


def register(config: pytest.Config) -> None:
    """Add the fixtures, the report hook and the summary to the session."""
    import sys

    config.pluginmanager.register(sys.modules[__name__], "seldon-load-capacity")
    config.pluginmanager.register(CapacityCollector(config), "seldon-load-capacity-summary")
