"""A markdown table of the session's load runs on the GitHub Actions job page.

GitHub shows whatever a step appends to the file named by ``GITHUB_STEP_SUMMARY`` on the
run's summary page, so the numbers and verdicts are one click from the red or green check.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..durations import format_ms
from ..judgement import Judgement
from ..redact import redact_text

ENVIRONMENT_VARIABLE = "GITHUB_STEP_SUMMARY"


def _cell(text: object) -> str:
    """Table cells cannot hold a pipe or a newline."""
    return redact_text(str(text)).replace("|", "\\|").replace("\n", " ")


def _ms(value: Any) -> str:
    return format_ms(math.nan if value is None else float(value))


def _short(key: str) -> str:
    return key.split("::", 1)[-1]


def _verdict(word: str) -> str:
    if word == "pass":
        return "✅ pass"
    if word in ("FAIL", "test failed"):
        return f"❌ {word}"
    return f"⚠️ {word}"


def judgements(run: Mapping[str, Any]) -> list[Judgement]:
    """The judgements recorded on a run (a saved run's dicts, or a result's own)."""
    return [Judgement.from_dict(j) for j in run.get("judgements") or []]


def comparisons(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The baseline comparisons recorded on a run (by assert_no_regression or the options),
    each with the verdict of its judgement: a regression lag could explain reads
    "not judged (generator lag)"."""
    found = []
    for judgement in judgements(run):
        if judgement.kind == "regression" and judgement.comparison:
            comparison = dict(judgement.comparison)
            if judgement.invalid and not judgement.passed:
                comparison["verdict"] = f"not judged ({judgement.invalid})"
            found.append(comparison)
    return found


def step_summary(
    runs: Sequence[Mapping[str, Any]], capacities: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The markdown: one row per run, one per comparison with a baseline, and one per
    capacity search."""
    lines = [
        "## seldon-load results",
        "",
        "| test | rate target / achieved | requests | p50 | p95 | p99 | errors | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        lines.append(
            f"| {_cell(_short(str(run.get('key') or run.get('nodeid', '?'))))} "
            f"| {run.get('target_rate', 0):g} / {run.get('achieved_rate', 0):.1f} "
            f"| {run.get('requests', 0)} | {_ms(run.get('p50'))} | {_ms(run.get('p95'))} "
            f"| {_ms(run.get('p99'))} | {float(run.get('error_rate', 0)):.2%} "
            f"| {_cell(_verdict(str(run.get('verdict', ''))))} |"
        )
    compared = [(run, c) for run in runs for c in comparisons(run)]
    if compared:
        lines += [
            "",
            "### against the baseline",
            "",
            "| test | metric | baseline | current | change | confidence interval | p "
            "| could detect | verdict |",
            "|---|---|---:|---:|---:|---|---:|---:|---|",
        ]
        for run, c in compared:
            lines.append(
                f"| {_cell(_short(str(run.get('key') or run.get('nodeid', '?'))))} "
                f"| {_cell(c.get('metric'))} | {_cell(_value(c, 'baseline'))} "
                f"| {_cell(_value(c, 'current'))} | {_cell(_change(c))} "
                f"| {_cell(_interval(c))} | {c.get('p_value', 1):.2g} "
                f"| {_cell(_detectable(c))} "
                f"| {_cell(_comparison_verdict(c.get('verdict', '')))} |"
            )
    if capacities:
        lines += _capacity_rows(capacities)
    return "\n".join(lines) + "\n"


def _capacity_rows(capacities: Sequence[Mapping[str, Any]]) -> list[str]:
    from ..capacity import Capacity

    lines = [
        "",
        "### capacity",
        "",
        "| test | capacity | broken at | stages | what it found |",
        "|---|---:|---:|---:|---|",
    ]
    for data in capacities:
        found = Capacity.from_dict(data)
        name = found.label or str(data.get("nodeid", "?"))
        rate = "none" if found.rate is None else f"{found.rate:g}/s"
        broken = "—" if found.first_bad is None else f"{found.first_bad:g}/s"
        lines.append(
            f"| {_cell(_short(name))} | {rate} | {broken} | {len(found.stages)} "
            f"| {_cell(found.describe())} |"
        )
    return lines


def _value(comparison: Mapping[str, Any], side: str) -> str:
    value = comparison.get(side)
    if value is None:
        return "n/a"
    metric = comparison.get("metric", "")
    if metric == "error_rate":
        return f"{value:.3%}"
    if metric == "throughput":
        return f"{value:.1f}/s"
    return format_ms(float(value))


def _change(comparison: Mapping[str, Any]) -> str:
    if comparison.get("metric") == "error_rate":
        difference = comparison.get("difference") or 0.0
        return f"{difference * 100:+.3g} points"
    change = comparison.get("change")
    return "n/a" if change is None else f"{change:+.1%}"


def _interval(comparison: Mapping[str, Any]) -> str:
    low, high = comparison.get("ci_low"), comparison.get("ci_high")
    if low is None or high is None:
        return "n/a"
    level = f"{float(comparison.get('confidence', 0.99)) * 100:.4g}%"
    if comparison.get("metric") == "error_rate":
        return f"{level}: {low * 100:+.3g} .. {high * 100:+.3g} points"
    return f"{level}: {low:+.1%} .. {high:+.1%}"


def _detectable(comparison: Mapping[str, Any]) -> str:
    """The smallest worsening the comparison would have caught 95 times in 100."""
    value = comparison.get("detectable")
    if value is None:
        return "nothing"  # no change could have been shown (an open interval)
    if comparison.get("metric") == "error_rate":
        return f"+{value * 100:.3g} points"
    return f"{value:+.0%}"


def _comparison_verdict(word: str) -> str:
    return {"regression": "❌ regression", "improvement": "🚀 improvement"}.get(word, word)


def append_step_summary(
    runs: Sequence[Mapping[str, Any]],
    environ: Mapping[str, str] | None = None,
    capacities: Sequence[Mapping[str, Any]] = (),
) -> Path | None:
    """Append the tables when running in GitHub Actions; None when not (or nothing to show)."""
    environ = os.environ if environ is None else environ
    target = environ.get(ENVIRONMENT_VARIABLE)
    if not target or not (runs or capacities):
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(step_summary(runs, capacities) + "\n")
    return path
