"""Headline numbers of each load run as test properties, so ``--junitxml`` carries them.

CI dashboards that read JUnit XML (Jenkins, GitLab, Buildkite test analytics) can then plot
p99 or error rate per test over builds without knowing anything about this plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..judgement import Judgement
from .github import comparisons, judgements

FIELDS = (
    ("p50_ms", "p50"),
    ("p95_ms", "p95"),
    ("p99_ms", "p99"),
    ("p999_ms", "p999"),
    ("max_ms", "max"),
    ("error_rate", "error_rate"),
    ("target_rate", "target_rate"),
    ("achieved_rate", "achieved_rate"),
)


def _prefix(index: int, count: int) -> str:
    """``load_`` for a test's only run; ``load[2]_`` and so on when it makes several."""
    return "load_" if count == 1 else f"load[{index}]_"


def junit_properties(entries: Sequence[dict[str, Any]]) -> list[tuple[str, object]]:
    """(name, value) pairs for a test's runs: p50/p95/p99/p99.9/max in ms, error rate,
    rates, whether the generator lagged, each budget's verdict, and the verdict, change and
    detectable change of each comparison against a baseline."""
    properties: list[tuple[str, object]] = []
    for index, entry in enumerate(entries, 1):
        prefix = _prefix(index, len(entries))
        if len(entries) > 1:
            properties.append((f"{prefix}label", entry.get("key", "")))
        for name, field in FIELDS:
            value = entry.get(field)
            properties.append((f"{prefix}{name}", "" if value is None else value))
        properties.append((f"{prefix}lagged", "false" if entry.get("kept_up", True) else "true"))
        for judgement in judgements(entry):
            if judgement.kind != "regression":
                properties.append((f"{prefix}budget_{_budget_name(judgement)}", _budget(judgement)))
        for comparison in comparisons(entry):
            metric = comparison.get("metric", "?")
            # error rates move in points (a fraction); the rest relatively (0.25 = +25%)
            moved = comparison.get("difference" if metric == "error_rate" else "change")
            properties.append((f"{prefix}baseline_{metric}_change", "" if moved is None else moved))
            properties.append((f"{prefix}baseline_{metric}_verdict", comparison.get("verdict")))
            # the smallest worsening the comparison could have caught ("" when none could)
            detectable = comparison.get("detectable")
            properties.append(
                (f"{prefix}baseline_{metric}_detectable", "" if detectable is None else detectable)
            )
    return properties


def capacity_properties(searches: Sequence[dict[str, Any]]) -> list[tuple[str, object]]:
    """(name, value) pairs for a test's capacity searches: the rate found ("" when none held),
    the first rate that broke a budget ("" when none did), and why the search ended."""
    properties: list[tuple[str, object]] = []
    for index, search in enumerate(searches, 1):
        prefix = "load_capacity_" if len(searches) == 1 else f"load_capacity[{index}]_"
        for name, field in (("rate", "rate"), ("broken_at", "first_bad"), ("stopped", "stopped")):
            value = search.get(field)
            properties.append((f"{prefix}{name}", "" if value is None else value))
    return properties


def _budget_name(judgement: Judgement) -> str:
    """p99, p99.9, p99@10s (in every 10 s), error_rate, throughput: what the budget bounds."""
    if judgement.kind == "percentile" and judgement.quantile is not None:
        name = "max" if judgement.quantile >= 100 else f"p{judgement.quantile:g}"
        return name + (f"@{judgement.window_s}s" if judgement.window_s else "")
    return judgement.kind


def _budget(judgement: Judgement) -> str:
    """ "pass: p99 < 50ms (measured 12.3ms)": the verdict first, for dashboards to match."""
    return f"{judgement.verdict}: {judgement.label} (measured {judgement.measured_text()})"
