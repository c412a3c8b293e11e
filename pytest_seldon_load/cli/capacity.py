"""``seldon-load capacity``: the highest open-loop rate a server holds within its budgets.

The same search as the ``capacity_search`` fixture (`capacity.find_capacity`): stages at
rising rates until one breaks a budget, then the gap is halved to the resolution. Each stage
is printed as it ends; the result (every stage) can be saved as JSON, also after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..atomic import atomic_write_text
from ..capacity import Capacity, Stage, find_capacity, judge_capacity
from ..durations import duration_option, number_option
from ..interrupts import RunInterrupted
from ..plan import EngineSettings, PlanError
from ..replay import ReplayError
from . import target
from .arguments import (
    CommandError,
    OptionSpec,
    add_options,
    command_parser,
    hide_keys,
    option_values,
)
from .thresholds import threshold

DEFAULT_BUDGET = "p99<50ms"
SEARCH_OPTIONS: dict[str, OptionSpec] = {
    # find_capacity's keyword: metavar, type, default, help; the option is --max-stages &c.
    "start": ("R", number_option(), None, "the first stage's rate (default: --max-rate/64)"),
    "growth": ("X", number_option(), 2.0, "times X each stage while budgets hold (default: 2)"),
    "step": ("R", number_option(), None, "instead of --growth, R req/s more each stage"),
    "resolution": ("F", number_option(), 0.1, "halve the gap to F of the good rate (default: 0.1)"),
    "stage": ("D", duration_option(), 10.0, "measured length of each stage (default: 10s)"),
    "warmup": ("D", duration_option(allow_zero=True), None, "not counted (default: --stage/5)"),
    "max_stages": ("N", number_option(whole=True), 12, "the most stages run (default: 12)"),
}
"""The search's own options, passed to find_capacity by the same names."""

_EXAMPLES = """\
examples:
  seldon-load capacity --url http://127.0.0.1:8080 --replay iris.replay --max-rate 2000
  seldon-load capacity --url http://seldon-mesh --header Seldon-Model:iris \\
      --replay iris.replay --budget 'p99<100ms' --budget 'error_rate<0.001' \\
      --start 50 --max-rate 5000 --stage 20s --min-rate 400 --out capacity.json

exit code: 0 when the search found a rate within the budgets (with --min-rate, at least
that one); 1 when none held, the search could not judge a stage, or --min-rate was missed.
"""


def add_command(commands: argparse._SubParsersAction) -> None:
    """``seldon-load capacity``."""
    parser = command_parser(
        commands,
        "capacity",
        "find the highest rate a server holds within its budgets",
        (
            "Run stages of open-loop load at rising rates until one breaks a budget, then "
            "halve the gap between the last good and the first bad rate to the resolution. "
            "Every stage is judged as a load test's budgets are; a stage the generator could "
            "not hold is run once more, then ends the search without a verdict."
        ),
        _EXAMPLES,
    )
    target.add_target_arguments(parser)
    parser.add_argument(
        "--budget",
        type=threshold,
        action="append",
        default=[],
        metavar="EXPR",
        help=f"a budget every stage must meet, repeatable, as --threshold writes them "
        f"(p99<50ms, error_rate<0.01, ...; default: {DEFAULT_BUDGET}, and at most 1%% errors "
        f"unless an error_rate budget is given)",
    )
    parser.add_argument(
        "--max-rate",
        required=True,
        type=number_option(),
        metavar="R",
        help="the highest rate tried (req/s)",
    )
    add_options(parser, SEARCH_OPTIONS)
    target.add_schedule_arguments(parser, judged="stages")
    parser.add_argument(
        "--min-rate",
        type=number_option(),
        default=None,
        metavar="R",
        help="exit 1 unless the capacity is at least R req/s (as assert_capacity_at_least)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="write the search (every stage) as JSON (atomically), also after Ctrl-C",
    )
    parser.set_defaults(func=cmd_capacity, interrupted_note="")


def cmd_capacity(args: argparse.Namespace) -> int:
    """Search; print each stage as it ends, then the capacity; see _EXAMPLES for exit codes."""
    target.check_out(args.out)
    endpoint = target.target_endpoint(args)
    replay = target.target_replay(args)
    if args.start is not None and args.start > args.max_rate:
        raise CommandError(f"--start {args.start:g} is above --max-rate {args.max_rate:g}")
    budgets = dict(b.budget for b in args.budget) or dict([threshold(DEFAULT_BUDGET).budget])
    search = option_values(args, SEARCH_OPTIONS)
    start = search["start"] = args.start or max(1.0, args.max_rate / 64)
    print(
        f"searching up to {args.max_rate:g} req/s from {start:g} req/s, stages of "
        f"{args.stage:g}s, within {', '.join(b.text for b in args.budget) or DEFAULT_BUDGET}",
        flush=True,
    )

    def stage_done(stage: Stage) -> None:
        reasons = f"  ({'; '.join(stage.reasons)})" if stage.reasons else ""
        print(hide_keys(f"  {stage.rate:g} req/s: {stage.verdict}{reasons}"), flush=True)

    try:
        capacity = find_capacity(
            endpoint,
            replay,
            budgets,
            max_rate=args.max_rate,
            **search,
            allow_lag=args.allow_lag,
            arrival=args.arrival,
            seed=args.seed,
            settings=EngineSettings(**option_values(args, target.SETTINGS_OPTIONS)),
            label="seldon-load capacity",
            on_stage=stage_done,
        )
    except PlanError as exc:
        option = "--" + exc.argument.replace("_", "-")
        raise CommandError(option + str(exc)[len(exc.argument) :]) from None
    except ReplayError as exc:  # a line a stage could not send, a damaged gzip stream
        raise CommandError(f"--replay: {exc}") from None
    except RunInterrupted as interrupted:
        partial = getattr(interrupted, "capacity", None)
        if isinstance(partial, Capacity):
            _report(partial, args.out)
        raise KeyboardInterrupt from None
    _report(capacity, args.out)
    if args.min_rate is not None:
        verdict = judge_capacity(capacity, args.min_rate)
        print(hide_keys(verdict.text), file=sys.stdout if verdict.passed else sys.stderr)
        return 0 if verdict.passed else 1
    return 0 if capacity.rate is not None and capacity.invalid_stage is None else 1


def _report(capacity: Capacity, out: str | None) -> None:
    print()
    for line in capacity.table():
        print(f"  {line}")
    print(hide_keys(capacity.describe()))
    if out:
        try:
            atomic_write_text(out, json.dumps(capacity.to_dict(), indent=2), option="--out")
        except OSError as exc:
            raise CommandError(
                str(exc) if exc.strerror is None else f"--out: cannot write {out} ({exc.strerror})"
            ) from None
        print(f"capacity written to {out}")
    sys.stdout.flush()
