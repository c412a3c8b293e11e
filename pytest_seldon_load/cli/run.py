"""``seldon-load run``: one load from the shell, optionally with an Iago-compatible admin port.

This is also what the drop-in Iago image runs (docker/start-load-test.sh): Iago's semantics
come from its options (slow-start Poisson, admin port 9994), its run length from --duration
(Iago ran "forever"; here the default is an hour, and the pod's script says so).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..assertions import describe_run, parse_error_rate
from ..atomic import atomic_write_text
from ..durations import duration_option, number_option
from ..endpoint import SeldonEndpoint
from ..engine import ActiveRun, Companion
from ..engines import ENGINES, Engine, EngineContext, EngineError
from ..interrupts import RunInterrupted
from ..plan import EngineSettings, PlanError, RunPlan
from ..redact import redact_url
from ..replay import ReplayError, ReplayFile
from ..result import LoadResult
from .abort import WINDOW_S, ErrorRateAbort
from .arguments import (
    CommandError,
    OptionSpec,
    add_options,
    command_parser,
    hide_keys,
    option_values,
)
from .target import (
    SETTINGS_OPTIONS,
    add_schedule_arguments,
    add_target_arguments,
    check_out,
    target_endpoint,
    target_replay,
)
from .thresholds import judge, threshold

if TYPE_CHECKING:
    from ..pytest_plugin.progress import LiveProgress

DEFAULT_DURATION = "1h"
PLAN_OPTIONS: dict[str, OptionSpec] = {
    # RunPlan's field: metavar, type, default, help; the option is --ramp-from &c.
    "duration": ("D", duration_option(), DEFAULT_DURATION, "measured run length (default: 1h)"),
    "warmup": ("D", duration_option(allow_zero=True), 0.0, "sent, not counted, first (default: 0)"),
    "ramp": ("D", duration_option(allow_zero=True), None, "ramp length (slow-start-poisson: 240s)"),
    "ramp_from": ("R", number_option(allow_zero=True), None, "the ramp's first rate (see below)"),
    "processes": ("N", number_option(whole=True), 1, "worker processes, one result (default: 1)"),
}
"""The run's shape: passed to RunPlan by the same names."""
SPLIT_OPTIONS: dict[str, OptionSpec] = {
    # EngineSettings' field: what part of a schedule split across machines this one sends
    "part": ("I", number_option(whole=True, allow_zero=True), 0, "send part I of --parts (from 0)"),
    "parts": ("N", number_option(whole=True), 1, "parts of the seeded schedule (default: 1)"),
}

_EXAMPLES = """\
examples:
  seldon-load run --url http://127.0.0.1:8080 --replay iris.replay --rate 200 --duration 30s
  seldon-load run --url http://seldon-server --replay preds.replay --rate 100 \\
      --arrival slow-start-poisson --protocol legacy --admin-port 9994 --out result.json

while it runs, --admin-port serves Iago's admin paths (Ostrich's shape and metric names):
  curl http://127.0.0.1:9994/stats.json     counters, gauges, labels, metrics
  curl http://127.0.0.1:9994/stats.txt      the same as text
  open http://127.0.0.1:9994/graph/?g=metric:client/request_latency_ms
  curl http://127.0.0.1:9994/shutdown.json  end the run now (the result is kept)
latency in client/request_latency_ms is measured from the intended send time.

the run's length: --duration is measured after --warmup; Iago ran until killed, so the
default is an hour. slow-start-poisson ramps from --ramp-from (1 req/s) over --ramp (240s);
the ramp arrival ramps from --ramp-from (0) over --ramp (all of --duration).
splitting: --processes N sends from N worker processes of this machine, one merged result;
--part I --parts N sends only part I (from 0) of the seeded schedule, as load pod I of a
Kubernetes Job does: give every part the same --seed.
"""


def _abort_rate(text: str) -> float:
    try:
        rate = parse_error_rate(text, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(": ")) from None
    if rate >= 1.0:
        raise argparse.ArgumentTypeError(f"must be below 1 (100%), got {text!r}")
    return rate


def add_command(commands: argparse._SubParsersAction) -> None:
    """``seldon-load run``."""
    parser = command_parser(
        commands,
        "run",
        "run one load against a server, print its summary",
        "Replay a file against a Seldon server at a fixed arrival rate (open loop), print the "
        "latency summary (measured from the intended send time), and optionally save the "
        "result and serve Iago's admin port while it runs.",
        _EXAMPLES,
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--rate",
        required=True,
        type=number_option(),
        metavar="R",
        help="requests per second (the target once any ramp is over)",
    )
    add_schedule_arguments(parser, judged="thresholds")
    add_options(parser, PLAN_OPTIONS)
    add_options(parser, SPLIT_OPTIONS)
    parser.add_argument(
        "--result-to-stdout",
        action="store_true",
        help="also print the full result (HDR histograms included) as one JSON line between "
        "marker lines, for a collector reading the log (the kubernetes engine's pods)",
    )
    parser.add_argument(
        "--engine",
        default="embedded",
        metavar="NAME",
        help="what sends the load: embedded (this process; the default) or an engine another "
        "package adds (the iago engine needs a pytest session with a cluster)",
    )
    parser.add_argument(
        "--admin-port",
        type=number_option(whole=True, allow_zero=True, at_most=65535),
        default=None,
        metavar="PORT",
        help="serve Iago's admin paths on PORT while running (9994 is Iago's; 0 picks a free one)",
    )
    parser.add_argument(
        "--admin-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the admin port listens on (default: 127.0.0.1; 0.0.0.0 in a pod)",
    )
    parser.add_argument(
        "--threshold",
        type=threshold,
        action="append",
        default=[],
        metavar="EXPR",
        help="a pass/fail rule, repeatable, as k6 writes them: p99<50ms, p(99.9)<200ms, "
        "max<1s, error_rate<0.01, throughput>100; judged like a pytest budget; any broken: "
        "exit 1",
    )
    parser.add_argument(
        "--abort-on-error-rate",
        type=_abort_rate,
        default=None,
        metavar="RATE",
        help=f"stop early when more than RATE (0.5 or 50%%) of the answers of the last "
        f"{WINDOW_S:g}s failed; the result says aborted, exit 1",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no live progress line (it shows only when stdout is a terminal)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="write the result as JSON (atomically), also after Ctrl-C",
    )
    parser.set_defaults(func=cmd_run, interrupted_note="")


def _write(path: str | None, result: LoadResult, to_stdout: bool = False) -> None:
    if to_stdout:
        from ..pod_result import print_result

        print_result(result)
    if path:
        try:
            atomic_write_text(path, result.to_json(indent=2), option="--out")
        except OSError as exc:
            raise CommandError(
                str(exc) if exc.strerror is None else f"--out: cannot write {path} ({exc.strerror})"
            ) from None
        print(f"result written to {path}")


def _summary(result: LoadResult, heading: str) -> None:
    print(heading)
    print(hide_keys(describe_run(result)))
    sys.stdout.flush()


def cmd_run(args: argparse.Namespace) -> int:
    """Run one load; exit 0 when it ran and every --threshold held; 1 when a threshold broke,
    no request succeeded or --abort-on-error-rate stopped it; 130 on Ctrl-C or SIGTERM."""
    check_out(args.out)
    endpoint = target_endpoint(args)
    try:
        plan = RunPlan(
            rate=args.rate,
            arrival=args.arrival,
            seed=args.seed,
            **option_values(args, PLAN_OPTIONS),
            settings=EngineSettings(
                **option_values(args, SETTINGS_OPTIONS), **option_values(args, SPLIT_OPTIONS)
            ),
            label="seldon-load run",
        )
        if args.engine not in ENGINES:
            ENGINES.create(args.engine)  # raises EngineError naming the available ones
    except PlanError as exc:
        option = "--" + exc.argument.replace("_", "-")
        raise CommandError(option + str(exc)[len(exc.argument) :]) from None
    except EngineError as exc:
        raise CommandError(f"--engine: {exc}") from None
    if plan.processes > 1:
        for flag, given in (
            ("--admin-port", args.admin_port is not None),
            ("--abort-on-error-rate", args.abort_on_error_rate is not None),
        ):
            if given:
                raise CommandError(
                    f"{flag} follows one process's run; it cannot be used with --processes "
                    f"{plan.processes}"
                )
    replay = target_replay(args)
    admin = None
    if args.admin_port is not None:
        from ..admin_port import AdminPort

        def listening(url: str) -> None:
            print(f"admin port: {url}/stats.json  {url}/graph/", flush=True)

        admin = AdminPort(args.admin_port, args.admin_host, on_listening=listening)
    abort = ErrorRateAbort(args.abort_on_error_rate) if args.abort_on_error_rate else None
    progress = None if args.no_progress else _terminal_progress()
    companions = [admin, abort, progress.companion("seldon-load run") if progress else None]
    context = EngineContext(caller="seldon-load run", companion=_together(companions))
    try:
        engine = ENGINES.create(args.engine, context)
    except EngineError as exc:
        raise CommandError(f"--engine: {exc}") from None
    split = ""
    if plan.settings.parts > 1:
        split += f", part {plan.settings.part} of {plan.settings.parts}"
    if plan.processes > 1:
        split += f", over {plan.processes} processes"
    heading = (
        f"running {plan.rate:g} req/s ({plan.arrival}{split}) for {plan.warmup:g}s warm-up + "
        f"{plan.duration:g}s against {redact_url(endpoint.base_url)}"
    )
    try:
        result = _run_or_stopped(engine, endpoint, replay, plan, heading)
    except RunInterrupted as interrupted:
        result = interrupted.result
        if abort is not None and abort.reason:
            result.aborted = abort.reason
            _write(args.out, result, args.result_to_stdout)
            _summary(result, "aborted; measured until then:")
            print(f"ABORTED: {abort.reason}", file=sys.stderr)
            _judge_thresholds(result, args)
            return 1
        _write(args.out, result, args.result_to_stdout)
        if admin is not None and admin.shutdown_requested:
            _summary(result, "stopped through the admin port's /shutdown.json:")
            return 0
        _summary(result, "interrupted; measured until then:")
        return 130
    except ReplayError as exc:
        raise CommandError(f"--replay: {exc}") from None
    except OSError as exc:
        if "--admin-port" in str(exc):
            raise CommandError(str(exc).split("] ", 1)[-1]) from None
        raise
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if progress is not None:
            progress.close()
    _summary(result, "done:")  # first: a failed write must not lose the summary too
    _write(args.out, result, args.result_to_stdout)
    failed_everything = _say_if_everything_failed(result)
    thresholds_held = _judge_thresholds(result, args)
    return 1 if failed_everything or not thresholds_held else 0


def _run_or_stopped(
    engine: Engine, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan, heading: str
) -> LoadResult:
    """Say `heading`, then run; a Ctrl-C before the engine could catch it (from the heading
    until it is sending) still stops it with a result to write: an empty, interrupted one."""
    try:
        print(heading, flush=True)
        return engine.run(endpoint, replay, plan)
    except RunInterrupted:
        raise
    except KeyboardInterrupt:
        raise RunInterrupted(plan.stopped_before_start(endpoint)) from None


def _terminal_progress() -> LiveProgress | None:
    """The pytest plugin's live line, on stdout when it is a terminal (never in a pipe)."""
    try:
        if not sys.stdout.isatty():
            return None
        fd = os.dup(sys.stdout.fileno())
    except (OSError, ValueError):
        return None
    from ..pytest_plugin.progress import LiveProgress

    return LiveProgress(fd, flush=sys.stdout.flush)


def _together(companions: list[Companion | None]) -> Companion | None:
    """One companion entering each of `companions` (the admin port, the abort rule, ...)."""
    present = [c for c in companions if c is not None]
    if len(present) <= 1:
        return present[0] if present else None

    @contextlib.asynccontextmanager
    async def all_of(run: ActiveRun) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for companion in present:
                await stack.enter_async_context(companion(run))
            yield

    return all_of


def _say_if_everything_failed(result: LoadResult) -> bool:
    """A run where no request succeeded measured nothing of the model: say so, loudly."""
    if result.ok or not result.errors:
        return False
    kinds = ", ".join(
        f"{kind} ×{n}" for kind, n in sorted(result.error_kinds.items(), key=lambda kv: -kv[1])
    )
    print(
        f"\nERROR: every request failed ({result.errors} of {result.errors}: {kinds}); "
        f"the latencies above are of failures. Check --url (and its route prefix), "
        f"--protocol, --model and --header against what the server expects.",
        file=sys.stderr,
    )
    return True


def _judge_thresholds(result: LoadResult, args: argparse.Namespace) -> bool:
    """Print each threshold's verdict; True when all held (or none was given)."""
    if not args.threshold:
        return True
    verdicts = judge(result, args.threshold, allow_lag=args.allow_lag)
    print("thresholds:")
    for verdict in verdicts:
        word = "ok" if verdict.passed else ("INVALID" if verdict.invalid else "BROKEN")
        detail = f"  {hide_keys(verdict.detail)}" if verdict.detail else ""
        print(f"  {word:<7} {verdict.threshold.text}{detail}")
    broken = sum(not v.passed for v in verdicts)
    if broken:
        print(f"{broken} of {len(verdicts)} thresholds broken", file=sys.stderr)
    sys.stdout.flush()
    return not broken
