"""``seldon-load compare A B``: is B worse than A? The pytest plugin's verdicts, for any CI.

A and B are saved results of any kind (a ``--load-json`` report, a baseline, one result).
Runs are matched by test; each gets a table row per metric with the same statistics as
``assert_no_regression``. Exit code 1 when any run regressed.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from ..durations import format_ms
from ..regression import (
    METRICS,
    Comparison,
    RegressionVerdict,
    judge_regression,
    parse_confidence,
    parse_min_detectable,
    parse_tolerance,
)
from ..report.json_report import SavedRuns, SavedRunsError, read_saved_runs
from .arguments import CommandError, command_parser, hide_keys

if TYPE_CHECKING:
    pass

DEFAULT_METRICS = ("p50", "p99", "error_rate")
"""Shown even when not a failure criterion: context for the verdict."""

_EXAMPLES = """\
examples:
  seldon-load compare .load-baselines/main.json results.json
  seldon-load compare main.json pr.json --fail p99:10% --fail error_rate:0.5%
  seldon-load compare old-result.json new-result.json --confidence 0.999

a regression is a change that is BOTH significant (Mann-Whitney U test on the per-second
values, at --confidence) AND worse than the tolerance: the rule assert_no_regression and
--load-baseline-compare apply. A regression found while the load generator fell behind is
not judged, unless what its lag cannot inflate shows it too (or --allow-lag). Exit codes:
0 no regression, 1 a regression, 2 unreadable input.
"""


def _criterion(text: str) -> tuple[str, str]:
    metric, separator, tolerance = text.partition(":")
    if not separator or metric.strip() not in METRICS:
        raise argparse.ArgumentTypeError(
            f"expected METRIC:TOLERANCE like p99:10% (METRIC one of {', '.join(METRICS)})"
        )
    try:
        parse_tolerance(metric.strip(), tolerance.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return metric.strip(), tolerance.strip()


def _min_detectable(text: str) -> float:
    try:
        return parse_min_detectable(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _confidence(text: str) -> float:
    try:
        return parse_confidence(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_command(commands: argparse._SubParsersAction) -> None:
    """``seldon-load compare BASELINE CURRENT``."""
    parser = command_parser(
        commands,
        "compare",
        "compare two saved results or baselines; exit code 1 on a regression",
        (
            "Compare the load runs of CURRENT with those of BASELINE, test by test, and say "
            "which got significantly worse by more than the tolerance. Each file may be a "
            "--load-json report, a baseline (.load-baselines/NAME.json) or one saved result."
        ),
        _EXAMPLES,
    )
    parser.add_argument("baseline", metavar="BASELINE", help="the reference runs")
    parser.add_argument("current", metavar="CURRENT", help="the runs to judge")
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        type=_criterion,
        metavar="METRIC:TOLERANCE",
        help="a regression criterion, repeatable (default: p99:10%%); for error_rate the "
        "tolerance is in points (0.5%% = +0.005)",
    )
    parser.add_argument(
        "--confidence",
        type=_confidence,
        default=0.99,
        help="confidence level of the test and interval (default: 0.99)",
    )
    parser.add_argument(
        "--min-detectable",
        type=_min_detectable,
        default=None,
        metavar="PCT",
        help="fail a criterion whose runs could not have detected a worsening of PCT 95 "
        "times in 100 (as --load-baseline-min-detectable does in pytest)",
    )
    parser.add_argument(
        "--allow-lag",
        action="store_true",
        help="judge a run whose load generator fell behind its schedule anyway (as "
        "--load-allow-lag does in pytest)",
    )
    parser.set_defaults(func=cmd_compare)


def _read(path: str) -> SavedRuns:
    try:
        return read_saved_runs(path)
    except SavedRunsError as exc:
        raise CommandError(str(exc)) from None


def _value(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if metric == "error_rate":
        return f"{value:.3%}"
    if metric == "throughput":
        return f"{value:.1f}/s"
    return format_ms(value)


def _row(verdict: RegressionVerdict, failing: bool) -> list[str]:
    comparison = verdict.comparison
    assert comparison is not None
    word = comparison.verdict
    if verdict.invalid:
        word = f"not judged ({verdict.judgement.invalid})"
    elif comparison.is_regression:
        word = comparison.verdict.upper() if failing else "worse (not a criterion)"
    return [
        comparison.metric,
        _value(comparison.metric, comparison.baseline_value),
        _value(comparison.metric, comparison.current_value),
        comparison.format_change(),
        comparison.format_interval().split(" CI ", 1)[-1],
        comparison.format_p(),
        comparison.tolerance.text if failing else "",
        _detectable(comparison),
        word,
    ]


def _detectable(comparison: Comparison) -> str:
    """The smallest worsening the runs could show (95 in 100), as the change column."""
    value = comparison.detectable
    if not math.isfinite(value):
        return "none"
    if comparison.metric == "error_rate":
        return f"+{value * 100:.3g} points"
    return f"-{value:.1%}" if comparison.metric == "throughput" else f"+{value:.1%}"


HEADER = [
    "metric",
    "baseline",
    "current",
    "change",
    "interval",
    "p",
    "tolerance",
    "detectable",
    "verdict",
]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    return [
        "  "
        + "  ".join(
            cell.ljust(widths[i]) if i in (0, 7) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in [HEADER, *rows]
    ]


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two saved sets of runs; exit 1 if any run regressed on a criterion."""
    baseline, current = _read(args.baseline), _read(args.current)
    criteria = dict(args.fail or [("p99", "10%")])
    shown = list(criteria) + [m for m in DEFAULT_METRICS if m not in criteria]
    regressed: list[str] = []
    print(f"baseline: {hide_keys(baseline.source)} ({baseline.kind}, {len(baseline.runs)} runs)")
    print(f"current:  {hide_keys(current.source)} ({current.kind}, {len(current.runs)} runs)")
    print(
        f"a regression: significant at {args.confidence:.4g} and worse than "
        + ", ".join(f"{m} {t}" for m, t in criteria.items())
    )
    pairs = _pairs(baseline, current)
    not_judged: list[str] = []
    underpowered: list[str] = []
    for base_key, current_key in pairs:
        print()
        title = current_key if base_key == current_key else f"{base_key} → {current_key}"
        print(hide_keys(title))
        try:
            old, new = baseline.result(base_key), current.result(current_key)
        except SavedRunsError as exc:
            print(f"  not compared: {exc}")
            continue
        if old.target_rate != new.target_rate:
            print(f"  note: target rate {old.target_rate:g}/s → {new.target_rate:g}/s")
        rows = []
        for metric in shown:
            failing = metric in criteria
            verdict = judge_regression(
                old,
                new,
                metric,
                criteria.get(metric, "10%"),
                args.confidence,
                allow_lag=args.allow_lag,
                min_detectable=args.min_detectable if failing else None,
            )
            if verdict.comparison is None:
                rows.append([metric, *[""] * 7, f"not compared: {verdict.reason}"])
                continue
            rows.append(_row(verdict, failing))
            if failing and verdict.is_regression:
                regressed.append(f"{current_key}: {verdict.comparison.headline()}")
            elif failing and verdict.underpowered:
                underpowered.append(f"{current_key}: {metric}: {verdict.reason}")
            elif failing and verdict.invalid:
                not_judged.append(f"{current_key}: {metric}: {verdict.reason}")
        for line in _table(rows):
            print(line)
    only_base = sorted(set(baseline.runs) - {b for b, _ in pairs})
    only_current = sorted(set(current.runs) - {c for _, c in pairs})
    if only_base:
        print(f"\nonly in the baseline: {', '.join(only_base)}")
    if only_current:
        print(f"\nonly in current (not compared): {', '.join(only_current)}")
    if not pairs:
        print("\nno run is in both: nothing compared")
        return 1
    print()
    if not_judged:
        print(f"not judged in {len(not_judged)} comparison(s):")
        for line in not_judged:
            print(f"  {hide_keys(line)}")
    if underpowered:
        print(f"TOO LITTLE DATA in {len(underpowered)} comparison(s) (--min-detectable):")
        for line in underpowered:
            print(f"  {hide_keys(line)}")
    if regressed:
        print(f"REGRESSION in {len(regressed)} comparison(s):")
        for line in regressed:
            print(f"  {hide_keys(line)}")
        return 1
    if underpowered:
        return 1
    print(f"no regression ({len(pairs)} runs compared)")
    return 0


def _pairs(baseline: SavedRuns, current: SavedRuns) -> list[tuple[str, str]]:
    """Runs matched by key; two single results are matched whatever their labels."""
    shared = [(key, key) for key in current.runs if key in baseline.runs]
    if not shared and len(baseline.runs) == 1 and len(current.runs) == 1:
        return [(next(iter(baseline.runs)), next(iter(current.runs)))]
    return shared
