"""``seldon-load report RESULTS -o report.html``: the plugin's HTML page from saved results."""

from __future__ import annotations

import argparse
import sys

from ..atomic import check_output_path
from ..report.html import render_report, write_report
from ..report.json_report import SavedRuns, SavedRunsError, read_saved_runs
from ..result import LoadResult
from .arguments import CommandError, command_parser, hide_keys


def add_command(commands: argparse._SubParsersAction) -> None:
    """``seldon-load report RESULTS -o PATH [--baseline FILE]``."""
    parser = command_parser(
        commands,
        "report",
        "an HTML report (charts of every run) from saved results",
        "Write the self-contained HTML report --load-html writes, from saved results: a "
        "--load-json report, a baseline, or one saved result. With --baseline, each run's "
        "baseline run is drawn under it.",
    )
    parser.add_argument("results", metavar="RESULTS", help="the saved results to show")
    parser.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="the HTML file to write"
    )
    parser.add_argument(
        "--baseline", metavar="FILE", help="saved runs to draw under the runs, matched by test"
    )
    parser.add_argument("--title", default="seldon-load report", help="the page title")
    parser.set_defaults(func=cmd_report)


def _read(path: str) -> SavedRuns:
    try:
        return read_saved_runs(path)
    except SavedRunsError as exc:
        raise CommandError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report of saved results."""
    try:
        check_output_path(args.output, "--output")
    except OSError as exc:
        raise CommandError(str(exc)) from None
    saved = _read(args.results)
    overlays: dict[str, LoadResult] = {}
    if args.baseline:
        baseline = _read(args.baseline)
        for key in saved.runs:
            if key in baseline.runs:
                overlays[key] = baseline.result(key)
        if not overlays and len(saved.runs) == 1 and len(baseline.runs) == 1:
            overlays[next(iter(saved.runs))] = baseline.result(next(iter(baseline.runs)))
    page = render_report(
        list(saved.runs.values()),
        overlays,
        title=args.title,
        created=saved.created,
        machine=saved.machine,
        commit=saved.commit,
        capacities=saved.capacities,
    )
    try:
        path = write_report(args.output, page)
    except OSError as exc:
        raise CommandError(
            f"--output: cannot write {args.output} ({exc.strerror or exc})"
        ) from None
    shown = f", {len(overlays)} with their baseline" if overlays else ""
    if saved.capacities:
        shown += f", {len(saved.capacities)} capacity searches"
    for problem in saved.damaged_capacities:
        print(f"note: a capacity search left out: {hide_keys(problem)}", file=sys.stderr)
    print(f"wrote {hide_keys(str(path))}: {len(saved.runs)} runs{shown}")
    return 0
