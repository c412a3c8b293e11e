"""What ``seldon-load run`` and ``seldon-load capacity`` share: where the load goes, how it
travels, the replay it sends and how its schedule is drawn. Declared once, checked once, each
problem naming its option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..atomic import check_output_path
from ..durations import duration_option, number_option
from ..endpoint import PROTOCOLS, SeldonEndpoint, parse_header
from ..pacer import ARRIVALS
from ..redact import SECRET_HEADERS
from ..replay import ReplayError, ReplayFile
from .arguments import CommandError, OptionSpec, add_options, seed

SETTINGS_OPTIONS: dict[str, OptionSpec] = {
    # EngineSettings' field: metavar, type, default, help
    "connections": (
        "N",
        number_option(whole=True),
        64,
        "connections, in-flight bound (default: 64)",
    ),
    "timeout": ("D", duration_option(), 10.0, "per-request timeout (default: 10s)"),
}
"""How requests travel: passed to EngineSettings by the same names."""


def _header(text: str) -> tuple[str, str]:
    try:
        return parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--url, --replay, --protocol, --model, --header, --connections and --timeout."""
    parser.add_argument(
        "--url",
        required=True,
        metavar="URL",
        help="base URL of the server (may carry a route prefix)",
    )
    parser.add_argument("--replay", required=True, metavar="FILE", help="the replay file")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="v2",
        help="how requests travel and responses are judged: v2, v1, legacy, or grpc (with "
        "--url grpc://HOST:PORT) (default: v2)",
    )
    parser.add_argument("--model", default="iris", help="model name (v2; default: iris)")
    parser.add_argument(
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="a header for every request (gRPC: metadata) (repeatable)",
    )
    add_options(parser, SETTINGS_OPTIONS)


def add_schedule_arguments(parser: argparse.ArgumentParser, *, judged: str) -> None:
    """--arrival, --seed and --allow-lag (which lets the `judged` budgets be judged anyway)."""
    parser.add_argument(
        "--arrival",
        default="constant",
        metavar="KIND",
        help=f"arrival process: {', '.join(ARRIVALS)} (default: constant; "
        "slow-start-poisson is Iago's)",
    )
    parser.add_argument(
        "--seed", type=seed, help="schedule seed (default: a fresh one, shown in the result)"
    )
    parser.add_argument(
        "--allow-lag",
        action="store_true",
        help=f"judge {judged} even when the generator fell behind its schedule (by default "
        "such a measurement breaks them as invalid)",
    )


def target_endpoint(args: argparse.Namespace) -> SeldonEndpoint:
    """The endpoint --url, --protocol, --model and --header describe."""
    headers = dict(args.header)
    try:
        endpoint = SeldonEndpoint(
            args.url, protocol=args.protocol, model=args.model, headers=headers, name="--url"
        )
    except ValueError as exc:
        raise CommandError(f"--url: {exc}") from None
    if any(name.lower() in SECRET_HEADERS for name in headers):
        print("note: secret headers are sent but never shown", file=sys.stderr)
    return endpoint


def target_replay(args: argparse.Namespace) -> ReplayFile:
    """--replay, checked to be a readable file whose first request parses."""
    replay = ReplayFile(Path(args.replay))
    if not replay.path.exists():
        raise CommandError(f"--replay: no such file {args.replay}")
    if not replay.path.is_file():
        kind = "a directory" if replay.path.is_dir() else "not a regular file"
        raise CommandError(f"--replay: {args.replay} is {kind}; give a replay file")
    try:
        first = next(iter(replay), None)
    except ReplayError as exc:
        raise CommandError(f"--replay: {exc}") from None
    if first is None:
        raise CommandError(f"--replay: {args.replay} holds no requests")
    return replay


def check_out(path: str | None) -> None:
    """Fail on a bad --out before any load is sent, not after an hour of it."""
    if path:
        try:
            check_output_path(path, "--out")
        except OSError as exc:
            raise CommandError(str(exc)) from None
