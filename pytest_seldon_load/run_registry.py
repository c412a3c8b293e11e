"""Where a session's load results gather for its summary, across pytest-xdist workers too.

A test's results ride on its teardown report as one user property (a small JSON summary per
run, no histograms), which xdist already ships from workers to the controller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from .result import LoadResult

PROPERTY = "seldon_load_results"


@dataclass
class SessionRuns:
    """Every load run of the session, in the order their reports arrived."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)


SESSION_KEY = pytest.StashKey[SessionRuns]()
ITEM_KEY = pytest.StashKey[list[LoadResult]]()


def session_runs(config: pytest.Config) -> SessionRuns:
    runs = config.stash.get(SESSION_KEY, None)
    if runs is None:
        runs = config.stash[SESSION_KEY] = SessionRuns()
    return runs


def register_result(config: pytest.Config, item: pytest.Item, result: LoadResult) -> None:
    """Remember a run of `item`. An interrupted run is recorded at once: no teardown follows."""
    if result.interrupted:
        entry = result.summary() | {"nodeid": item.nodeid, "verdict": "interrupted"}
        session_runs(config).runs.append(entry)
        return
    item.stash.setdefault(ITEM_KEY, []).append(result)


def verdict(result: LoadResult, test_outcome: str) -> str:
    """One word for the summary table: pass, FAIL, invalid, or the test's own failure."""
    failed = [j for j in result.judgements if not j.get("passed")]
    if any(str(j.get("measured", "")).startswith("invalid") for j in failed):
        return "invalid"
    if failed:
        return "FAIL"
    if not result.kept_up and not result.lag_accepted:
        return "invalid"
    if test_outcome == "failed":
        return "test failed"
    return "pass"


def attach_to_report(item: pytest.Item, report: pytest.TestReport, test_outcome: str) -> None:
    results = item.stash.get(ITEM_KEY, [])
    if not results:
        return
    entries = [
        result.summary() | {"nodeid": item.nodeid, "verdict": verdict(result, test_outcome)}
        for result in results
    ]
    report.user_properties.append((PROPERTY, json.dumps(entries)))


def collect_from_report(config: pytest.Config, report: pytest.TestReport) -> None:
    runs = session_runs(config)
    for name, value in report.user_properties:
        if name == PROPERTY:
            runs.runs.extend(json.loads(value))
