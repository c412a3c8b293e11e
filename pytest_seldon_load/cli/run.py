"""``seldon-load run``: one load from the shell, optionally with an Iago-compatible admin port.

This is also what the drop-in Iago image runs (docker/start-load-test.sh): Iago's semantics
come from its options (slow-start Poisson, admin port 9994), its run length from --duration
(Iago ran "forever"; here the default is an hour, and the pod's script says so).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..assertions import describe_run
from ..atomic import atomic_write_text, check_output_path
from ..durations import duration_option, number_option
from ..endpoint import PROTOCOLS, SeldonEndpoint
from ..engines import ENGINES, EngineContext, EngineError
from ..interrupts import RunInterrupted
from ..pacer import ARRIVALS
from ..plan import EngineSettings, PlanError, RunPlan
from ..redact import SECRET_HEADERS, redact_url
from ..replay import ReplayError, ReplayFile
from ..result import LoadResult
from .arguments import CommandError, hide_keys, seed, wrap

DEFAULT_DURATION = "1h"

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
"""


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or " " in name.strip():
        raise argparse.ArgumentTypeError(f"expected Name:value, got {text!r}")
    return name.strip(), value.strip()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return value


def add_command(commands: argparse._SubParsersAction) -> None:
    """``seldon-load run``."""
    parser = commands.add_parser(
        "run",
        help="run one load against a server, print its summary",
        description=wrap(
            "Replay a file against a Seldon server at a fixed arrival rate (open loop), print "
            "the latency summary (measured from the intended send time), and optionally save "
            "the result and serve Iago's admin port while it runs."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        required=True,
        metavar="URL",
        help="base URL of the server (may carry a route prefix)",
    )
    parser.add_argument("--replay", required=True, metavar="FILE", help="the replay file")
    parser.add_argument(
        "--rate",
        required=True,
        type=number_option(),
        metavar="R",
        help="requests per second (the target once any ramp is over)",
    )
    parser.add_argument(
        "--duration",
        type=duration_option("--duration"),
        default=DEFAULT_DURATION,
        metavar="D",
        help=f"measured run length, e.g. 30s, 10m (default: "
        f"{DEFAULT_DURATION}; Iago ran until killed)",
    )
    parser.add_argument(
        "--warmup",
        type=duration_option("--warmup", allow_zero=True),
        default=0.0,
        metavar="D",
        help="sent but not counted, before --duration (default: 0)",
    )
    parser.add_argument(
        "--arrival",
        default="constant",
        metavar="KIND",
        help=f"arrival process: {', '.join(ARRIVALS)} (default: constant; "
        "slow-start-poisson is Iago's)",
    )
    parser.add_argument(
        "--ramp",
        type=duration_option("--ramp", allow_zero=True),
        default=None,
        metavar="D",
        help="ramp length (slow-start-poisson: 240s by default)",
    )
    parser.add_argument(
        "--ramp-from",
        type=number_option(allow_zero=True),
        default=None,
        metavar="R",
        help="rate at the start of the ramp (slow-start-poisson: 1)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="v2",
        help="how responses are judged: v2, v1 or legacy (default: v2)",
    )
    parser.add_argument("--model", default="iris", help="model name (v2; default: iris)")
    parser.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header for every request (repeatable)",
    )
    parser.add_argument(
        "--connections",
        type=number_option(whole=True),
        default=64,
        metavar="N",
        help="keep-alive connections, also the in-flight bound (default: 64)",
    )
    parser.add_argument(
        "--timeout",
        type=duration_option("--timeout"),
        default=10.0,
        metavar="D",
        help="per-request timeout (default: 10s)",
    )
    parser.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="schedule seed (default: a fresh one, shown in the result)",
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
        type=_port,
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
        "--out",
        default=None,
        metavar="PATH",
        help="write the result as JSON (atomically), also after Ctrl-C",
    )
    parser.set_defaults(func=cmd_run, interrupted_note="")


def _write(path: str | None, result: LoadResult) -> None:
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
    """Run one load; exit 0 when it ran (budgets are for pytest), 130 on Ctrl-C or SIGTERM."""
    headers = dict(args.header)
    if args.out:
        try:  # before the run: a bad --out fails now, not after an hour of load
            check_output_path(args.out, "--out")
        except OSError as exc:
            raise CommandError(str(exc)) from None
    try:
        endpoint = SeldonEndpoint(
            args.url, protocol=args.protocol, model=args.model, headers=headers, name="--url"
        )
    except ValueError as exc:
        raise CommandError(f"--url: {exc}") from None
    try:
        plan = RunPlan(
            rate=args.rate,
            duration=args.duration,
            warmup=args.warmup,
            arrival=args.arrival,
            seed=args.seed,
            ramp=args.ramp,
            ramp_from=args.ramp_from,
            settings=EngineSettings(connections=args.connections, timeout=args.timeout),
            label="seldon-load run",
        )
        engine = ENGINES.create(args.engine, EngineContext(caller="seldon-load run"))
    except PlanError as exc:
        option = "--" + exc.argument.replace("_", "-")
        raise CommandError(option + str(exc)[len(exc.argument) :]) from None
    except EngineError as exc:
        raise CommandError(f"--engine: {exc}") from None
    replay = ReplayFile(Path(args.replay))
    if not replay.path.is_file():
        raise CommandError(f"--replay: no such file {args.replay}")
    try:
        first = next(iter(replay), None)
    except ReplayError as exc:
        raise CommandError(f"--replay: {exc}") from None
    if first is None:
        raise CommandError(f"--replay: {args.replay} holds no requests")
    if any(name.lower() in SECRET_HEADERS for name in headers):
        print("note: secret headers are sent but never shown", file=sys.stderr)
    admin = None
    if args.admin_port is not None:
        from ..admin_port import AdminPort

        def listening(url: str) -> None:
            print(f"admin port: {url}/stats.json  {url}/graph/", flush=True)

        admin = AdminPort(args.admin_port, args.admin_host, on_listening=listening)
    print(
        f"running {plan.rate:g} req/s ({plan.arrival}) for {plan.warmup:g}s warm-up + "
        f"{plan.duration:g}s against {redact_url(endpoint.base_url)}",
        flush=True,
    )
    try:
        result = engine.run(endpoint, replay, plan, companion=admin)
    except RunInterrupted as interrupted:
        _write(args.out, interrupted.result)
        if admin is not None and admin.shutdown_requested:
            _summary(interrupted.result, "stopped through the admin port's /shutdown.json:")
            return 0
        _summary(interrupted.result, "interrupted; measured until then:")
        return 130
    except ReplayError as exc:
        raise CommandError(f"--replay: {exc}") from None
    except OSError as exc:
        if "--admin-port" in str(exc):
            raise CommandError(str(exc).split("] ", 1)[-1]) from None
        raise
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _summary(result, "done:")  # first: a failed write must not lose the summary too
    _write(args.out, result)
    return 0
