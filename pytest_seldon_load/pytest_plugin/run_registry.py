"""Where a session's load results gather, across pytest-xdist workers too.

A test's results ride on its teardown report as one attribute holding their full JSON (with
histograms, for baselines and reports), which xdist ships from workers to the controller with
the rest of the report. Only a few headline numbers go into ``user_properties``, since those
become JUnit XML properties.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..judgement import Judgement
from ..redact import redact_text
from ..report.junit import junit_properties

if TYPE_CHECKING:  # results come from load runs: nothing here needs numpy at start
    from ..result import LoadResult

REPORT_ATTRIBUTE = "seldon_load_runs"
HISTOGRAM_FIELDS = ("latency_hdr", "service_hdr")


@dataclass
class SessionRuns:
    """Every load run of the session, in the order their reports arrived.

    Each run is ``result.to_dict()`` plus ``nodeid``, ``key`` (the test's run, as baselines
    name it) and ``verdict``. Histograms are kept only when something needs them
    (``keep_histograms``: a baseline save, a JSON or HTML report); the summary never does.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    keep_histograms: bool = False


SESSION_KEY = pytest.StashKey[SessionRuns]()
ITEM_KEY = pytest.StashKey["list[LoadResult]"]()


def session_runs(config: pytest.Config) -> SessionRuns:
    runs = config.stash.get(SESSION_KEY, None)
    if runs is None:
        runs = config.stash[SESSION_KEY] = SessionRuns()
    return runs


def run_keys(nodeid: str, results: list[LoadResult]) -> list[str]:
    """How baselines name each run of a test: its node id, its label when it has its own,
    and a number when one test makes several runs under one name."""
    keys: list[str] = []
    for result in results:
        base = nodeid if result.label in ("", nodeid) else f"{nodeid} [{result.label}]"
        key, number = base, 1
        while key in keys:
            number += 1
            key = f"{base} #{number}"
        keys.append(key)
    return keys


def item_results(item: pytest.Item) -> list[LoadResult]:
    """The completed (not interrupted) runs of a test, in order."""
    results: list[LoadResult] | None = item.stash.get(ITEM_KEY, None)
    return list(results or [])


def key_of(item: pytest.Item, result: LoadResult) -> str | None:
    """The baseline key of one of `item`'s runs, or None if it is not one of them."""
    results = item_results(item)
    for candidate, key in zip(results, run_keys(item.nodeid, results), strict=True):
        if candidate is result:
            return key
    return None


def register_result(config: pytest.Config, item: pytest.Item, result: LoadResult) -> None:
    """Remember a run of `item`. An interrupted run is recorded at once: no teardown follows."""
    if result.interrupted:
        runs = session_runs(config)
        key = run_keys(item.nodeid, [*item_results(item), result])[-1]
        runs.runs.append(_entry(result, item.nodeid, key, "interrupted", runs.keep_histograms))
        return
    item.stash.setdefault(ITEM_KEY, []).append(result)


def verdict(result: LoadResult, test_outcome: str) -> str:
    """A word for the summary table: pass, FAIL, invalid, lagged, or the test's own failure.

    "FAIL": a judgement failed that is the server's; "invalid": the only failed judgements
    are ones the measurement cannot blame on the server (a budget missed within what the
    generator's lag could add, say); "pass, lagged": every judgement passed although the
    generator lagged (lag only adds latency); "lagged": it lagged and nothing was judged.
    """
    judgements = [Judgement.from_dict(j) for j in result.judgements]
    if any(j.server_fault for j in judgements):
        return "FAIL"
    if any(not j.passed for j in judgements):
        return "invalid"
    if test_outcome == "failed":
        return "test failed"
    if not result.kept_up and not result.lag_accepted:
        return "pass, lagged" if judgements else "lagged"
    return "pass"


def _entry(
    result: LoadResult,
    nodeid: str,
    key: str,
    verdict_word: str,
    keep_histograms: bool,
    failure: str = "",
) -> dict[str, Any]:
    # Test ids and labels can carry a parametrized consumer key or token: every report and
    # baseline is written from these entries, so they hold the masked names.
    entry = result.to_dict() | {
        "nodeid": redact_text(nodeid),
        "key": redact_text(key),
        "verdict": verdict_word,
        "label": redact_text(result.label),
    }
    if failure:
        entry["failure"] = redact_text(failure)
    if not keep_histograms:
        strip_histograms(entry)
    return entry


def strip_histograms(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry without its encoded histograms (in place): what a summary needs."""
    for name in HISTOGRAM_FIELDS:
        entry.pop(name, None)
    for window in entry.get("timeline", []):
        for name in HISTOGRAM_FIELDS:
            window.pop(name, None)
    return entry


def attach_to_report(
    item: pytest.Item, report: pytest.TestReport, test_outcome: str, failure: str = ""
) -> None:
    """Put the test's runs on its teardown report; `failure` is the failed test's exception."""
    results = item_results(item)
    if not results:
        return
    keep = session_runs(item.config).keep_histograms
    entries = [
        _entry(result, item.nodeid, key, verdict(result, test_outcome), keep, failure)
        for result, key in zip(results, run_keys(item.nodeid, results), strict=True)
    ]
    setattr(report, REPORT_ATTRIBUTE, json.dumps(entries))
    report.user_properties.extend(junit_properties(entries))


def collect_from_report(config: pytest.Config, report: pytest.TestReport) -> None:
    text = getattr(report, REPORT_ATTRIBUTE, None)
    if text:
        session_runs(config).runs.extend(json.loads(text))
