"""``seldon-load replay prediction|recommendation|check``: Seldon's replay scripts, and more."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..consumer_keys import ConsumerKeyError, load_consumer_key
from ..generate import (
    FEATURE_TYPES,
    PREDICTION_PROTOCOLS,
    DatasetError,
    FeatureSpecError,
    ItemsError,
    parse_features,
    v2_layout,
    write_prediction_replay,
    write_recommendation_replay,
)
from ..replay import ReplayError, parse_line
from .arguments import CommandError, Parser, hide_keys, percent, seed, whole, wrap

# --- replay prediction ----------------------------------------------------------------

_PREDICTION_EXAMPLES = """\
examples (the iris example of Seldon's create_prediction_replay_iris.sh):
  seldon-cli -q keys --client-name iris --scope js > key.json
  seldon-load replay prediction --key key.json --replay iris.replay \\
      --feature '{"name":"f1","type":"numeric","min":0,"max":5}' \\
      --feature '{"name":"f2","type":"numeric","min":0,"max":5}' \\
      --feature '{"name":"f3","type":"numeric","min":0,"max":5}' \\
      --feature '{"name":"f4","type":"numeric","min":0,"max":5}' --num 1000

  the same rows for MLServer / Seldon Core v2, 8 rows per request:
  seldon-load replay prediction --protocol v2 --model iris --batch 8 --replay iris-v2.replay \\
      --feature '{"name":"f1","type":"numeric","min":0,"max":5}' ...

feature specs (one JSON object per --feature, in the order the model expects):
  {"name":"f1","type":"numeric","min":0,"max":5}        uniform in [min, max]
  {"name":"n","type":"integer","min":1,"max":6}         whole numbers in [min, max]
  {"name":"c","type":"categorical","values":["a","b"],"weights":[3,1]}
  {"name":"k","type":"constant","value":"x"}
  {"name":"g","type":"normal","mean":0,"std":1,"clip":[-3,3]}   clip is optional

v2 inputs: when every feature is a number, one input (--input-name, default predict) of shape
[batch, n_features], FP64 (INT64 if every feature is an integer). When strings or booleans
appear, one input per feature, named after it, of shape [batch, 1] (BYTES for strings).
"""


def add_command(commands: argparse._SubParsersAction) -> None:
    """``seldon-load replay prediction|recommendation|check``."""
    replay = commands.add_parser(
        "replay",
        help="create or check Iago replay files",
        description="Create replay files (one request per line) for Seldon, or check one.",
    )
    kinds = replay.add_subparsers(dest="replay_command", metavar="KIND", parser_class=Parser)
    kinds.required = True
    _add_prediction(kinds)
    _add_recommendation(kinds)
    _add_check(kinds)


def _add_prediction(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "prediction",
        help="prediction requests from feature specs or a dataset",
        description=wrap(
            "Write a prediction replay: random rows from feature specs (or rows sampled from "
            "a CSV dataset), one request per line, for the seldon-server JS API (legacy, "
            "byte-compatible with Seldon's create_prediction_replay.py), Seldon Core v1, or "
            "the V2 Open Inference Protocol (MLServer, Seldon Core v2, KServe, Triton)."
        ),
        epilog=_PREDICTION_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--replay",
        required=True,
        metavar="PATH",
        help="the replay file to create (written atomically)",
    )
    parser.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="JSON",
        help="a feature spec, repeatable, in order; types: " + ", ".join(FEATURE_TYPES),
    )
    parser.add_argument(
        "--dataset",
        metavar="CSV",
        help="sample rows (with replacement) from this CSV file instead of "
        "--feature specs; a header row names the columns, else f1..fN",
    )
    parser.add_argument(
        "--num",
        type=whole(1),
        default=1000,
        help="number of requests (lines) to write (default: 1000)",
    )
    parser.add_argument(
        "--protocol",
        choices=PREDICTION_PROTOCOLS,
        default="legacy",
        help="legacy: seldon-server GET /js/predict; v1: Seldon Core "
        "/api/v1.0/predictions; v2: /v2/models/MODEL/infer "
        "(default: legacy, as the original script)",
    )
    parser.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="random seed: the same seed and arguments give the same file "
        "(default: 0; 'none' for a fresh seed each run)",
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        metavar="HOST",
        help="legacy only: host[:port] written into each URL (default: "
        "seldon-server; Iago keeps only path and query)",
    )
    parser.add_argument(
        "--key",
        metavar="KEY_OR_FILE",
        help="legacy only, required there: the consumer key, or the file that "
        "`seldon-cli -q keys --client-name C --scope js` writes",
    )
    parser.add_argument(
        "--batch", type=whole(1), default=1, help="v1/v2: rows per request (default: 1)"
    )
    parser.add_argument(
        "--tensor",
        action="store_true",
        help='v1: send {"data":{"tensor":{shape, values}}} instead of ndarray',
    )
    parser.add_argument(
        "--model", default=None, help="v2: model name in /v2/models/MODEL/infer (default: iris)"
    )
    parser.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="NAME",
        help="v2: ask for this output, repeatable (e.g. predict_proba)",
    )
    parser.add_argument(
        "--seldon-model",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help="v2: add a Seldon-Model header for Seldon Core v2 routing (NAME, "
        "or the model name when given alone; NAME.pipeline for a pipeline)",
    )
    parser.add_argument(
        "--input-name",
        default=None,
        metavar="NAME",
        help="v2: name of the single input when all features are numbers (default: predict)",
    )
    parser.set_defaults(func=cmd_replay_prediction, interrupted_note="no file was written")


def _feature_specs(texts: Sequence[str]) -> list[Any]:
    specs = []
    for index, text in enumerate(texts, 1):
        try:
            specs.append(json.loads(text))
        except ValueError as exc:
            detail = f"{exc.msg} at column {exc.colno}" if hasattr(exc, "colno") else str(exc)
            raise CommandError(f"--feature {index}: not valid JSON ({detail})") from None
    return specs


def _not_for(protocol: str, given: list[tuple[str, bool]], allowed: str) -> None:
    for flag, present in given:
        if present:
            raise CommandError(f"{flag} applies to --protocol {allowed} only, not {protocol}")


def cmd_replay_prediction(args: argparse.Namespace) -> int:
    """Write a prediction replay."""
    protocol = args.protocol
    if args.feature and args.dataset:
        raise CommandError("give --feature specs or --dataset, not both")
    if not args.feature and not args.dataset:
        raise CommandError("give at least one --feature spec, or a --dataset")
    if protocol != "legacy":
        _not_for(
            protocol,
            [("--key", args.key is not None), ("--endpoint", args.endpoint is not None)],
            "legacy",
        )
    if protocol != "v1":
        _not_for(protocol, [("--tensor", args.tensor)], "v1")
    if protocol != "v2":
        _not_for(
            protocol,
            [
                ("--model", args.model is not None),
                ("--output", bool(args.output)),
                ("--seldon-model", args.seldon_model is not None),
                ("--input-name", args.input_name is not None),
            ],
            "v2",
        )
    if protocol == "legacy" and args.batch != 1:
        raise CommandError(
            "--batch applies to --protocol v1 and v2; a legacy prediction carries one row"
        )
    specs = _feature_specs(args.feature) if args.feature else None
    layout = ""
    if specs is not None:
        try:
            columns = parse_features(specs)
        except FeatureSpecError as exc:
            raise _feature_error(exc, args) from None
        if protocol == "v2" and v2_layout(columns) != "single":
            layout = "per-feature"
    key = None
    if protocol == "legacy":
        if args.key is None:
            raise CommandError(
                "--protocol legacy needs --key (the consumer key, or the file "
                "`seldon-cli keys` writes)"
            )
        key = _load_key(args.key)
    model = args.model or "iris"
    header = None
    if args.seldon_model is not None:
        header = args.seldon_model or model
    try:
        replay = write_prediction_replay(
            args.replay,
            protocol=protocol,
            features=specs,
            num=args.num,
            seed=args.seed,
            model=model,
            batch=args.batch,
            dataset=args.dataset,
            consumer_key=key,
            endpoint_host=args.endpoint or "seldon-server",
            tensor=args.tensor,
            outputs=args.output,
            seldon_model_header=header,
            input_name=args.input_name or "predict",
        )
    except FeatureSpecError as exc:
        raise _feature_error(exc, args) from None
    except DatasetError as exc:
        raise CommandError(f"--dataset: {exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.replay} ({exc.strerror})") from None
    details = ([f"{args.batch} rows each"] if args.batch > 1 else []) + (
        ["one input per feature"] if layout else []
    )
    shown = f" ({', '.join(details)})" if details else ""
    print(f"wrote {replay.count} {protocol} prediction requests{shown} to {replay}")
    return 0


def _feature_error(exc: FeatureSpecError, args: argparse.Namespace) -> CommandError:
    if args.dataset:
        return CommandError(f"--dataset column {exc.name}: {exc.problem}")
    named = f" ({exc.name})" if exc.name else ""
    return CommandError(f"--feature {exc.index}{named}: {exc.problem}")


def _load_key(value: str) -> str:
    try:
        return load_consumer_key(value)
    except ConsumerKeyError as exc:
        raise CommandError(f"--key: {exc}") from None


# --- replay recommendation ------------------------------------------------------------

_RECOMMENDATION_EXAMPLES = """\
example (as Seldon's create_recommendation_replay.sh ml10m FILE 10000 10000):
  seldon-cli -q keys --client-name ml10m --scope js > key.json
  seldon-cli -q api --client-name ml10m --endpoint /items --limit 10000 > items.json
  seldon-load replay recommendation --key key.json --items items.json \\
      --replay ml10m.replay --num-actions 10000

each API call is two lines:
  http://seldon-server/js/recommendations?consumer_key=KEY&user=U&item=I&limit=10&jsonpCallback=j
  http://seldon-server/js/action/new?consumer_key=KEY&user=U&item=I&type=1&jsonpCallback=j
the action gets &rlabs=1 (a click on a recommendation) with --click-percent probability.
Item ids are URL-encoded (the original script inserted them raw; plain ids are unchanged).
"""


def _add_recommendation(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "recommendation",
        help="recommendation + action pairs for the seldon-server JS API",
        description=wrap(
            "Write a recommendation replay as Seldon's create_recommendation_replay.py: for "
            "each API call a /js/recommendations line then a /js/action/new line, users "
            "uniform in 1..--num-users, items uniform over the --items list."
        ),
        epilog=_RECOMMENDATION_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--replay",
        required=True,
        metavar="PATH",
        help="the replay file to create (written atomically)",
    )
    parser.add_argument(
        "--key",
        required=True,
        metavar="KEY_OR_FILE",
        help="the consumer key, or the file that "
        "`seldon-cli -q keys --client-name C --scope js` writes",
    )
    parser.add_argument(
        "--items",
        required=True,
        metavar="FILE",
        help="item ids: the JSON `seldon-cli api --endpoint /items` prints "
        '({"list":[{"id":..},..]}), a JSON list (of ids or of objects '
        'with "id"), or one id per line',
    )
    parser.add_argument(
        "--num-actions",
        "--num",
        dest="num_actions",
        type=whole(1),
        default=1000,
        metavar="N",
        help="API calls, each a recommendation and an action line (default: 1000)",
    )
    parser.add_argument(
        "--num-users",
        type=whole(1),
        default=10000,
        metavar="N",
        help="user ids are uniform in 1..N (default: 10000)",
    )
    parser.add_argument(
        "--item-type",
        type=whole(0),
        default=1,
        metavar="TYPE",
        help="the action's type parameter (default: 1)",
    )
    parser.add_argument(
        "--click-percent",
        type=percent,
        default=10.0,
        metavar="PCT",
        help="percent of actions that are clicks on a recommendation, &rlabs=1 (default: 10)",
    )
    parser.add_argument(
        "--endpoint",
        default="seldon-server",
        metavar="HOST",
        help="host[:port] written into each URL (default: seldon-server; "
        "Iago keeps only path and query)",
    )
    parser.add_argument(
        "--seed",
        type=seed,
        default=0,
        help="random seed (default: 0; 'none' for a fresh seed each run)",
    )
    parser.set_defaults(func=cmd_replay_recommendation, interrupted_note="no file was written")


def cmd_replay_recommendation(args: argparse.Namespace) -> int:
    """Write a recommendation replay."""
    key = _load_key(args.key)
    try:
        replay = write_recommendation_replay(
            args.replay,
            items=args.items,
            num_actions=args.num_actions,
            num_users=args.num_users,
            item_type=args.item_type,
            click_probability=args.click_percent / 100.0,
            consumer_key=key,
            endpoint_host=args.endpoint,
            seed=args.seed,
        )
    except ItemsError as exc:
        raise CommandError(f"--items: {exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.replay} ({exc.strerror})") from None
    print(
        f"wrote {replay.count} requests ({args.num_actions} recommendation + action pairs) "
        f"to {replay}"
    )
    return 0


# --- replay check ---------------------------------------------------------------------


def _add_check(kinds: argparse._SubParsersAction) -> None:
    parser = kinds.add_parser(
        "check",
        help="check that every line of a replay file can be sent",
        description=(
            "Read a replay file as the load engine does; print the number of requests per "
            "method and path (query left out) and every line that cannot be sent (and JSON "
            "bodies that do not parse). Exit code 1 when a line is bad or there is no request."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="the replay file")
    parser.add_argument(
        "--show",
        type=whole(0),
        default=20,
        metavar="N",
        help="list at most N bad lines (default: 20)",
    )
    parser.set_defaults(func=cmd_replay_check)


def _expects_json(headers: Sequence[tuple[str, str]], body: bytes) -> bool:
    for name, value in headers:
        if name.lower() == "content-type":
            return "json" in value.lower()
    return body[:1] in (b"{", b"[")


def check_replay(path: str | Path) -> tuple[Counter, list[tuple[int, str, str]]]:
    """Requests per (method, path without query), and bad lines as (number, reason, text)."""
    source = str(path)
    counts: Counter = Counter()
    bad: list[tuple[int, str, str]] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CommandError(f"cannot open the replay file {source} ({exc.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad.append((number, "the line is not valid UTF-8", ""))
                continue
            try:
                request = parse_line(text, number, source)
            except ReplayError as exc:
                bad.append((number, exc.reason, text.strip()))
                continue
            if request is None:
                continue
            if request.body is not None and _expects_json(request.headers, request.body):
                try:
                    json.loads(request.body)
                except ValueError as exc:
                    bad.append((number, f"the body is not valid JSON ({exc})", text.strip()))
                    continue
            counts[(request.method, request.path.partition("?")[0])] += 1
    return counts, bad


def cmd_replay_check(args: argparse.Namespace) -> int:
    """Check a replay file: counts per method and path, bad lines; exit 1 if any is bad."""
    counts, bad = check_replay(args.file)
    total = sum(counts.values())
    print(f"{hide_keys(args.file)}: {total} requests, {len(bad)} bad lines")
    if counts:
        width = max(len(str(n)) for n in counts.values())
        for (method, path), number in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {number:>{width}}  {method:<6} {hide_keys(path)}")
    if bad:
        print("bad lines:")
        for number, reason, text in bad[: args.show]:
            shown = f": {hide_keys(text[:120])!r}" if text else ""
            print(f"  line {number}: {hide_keys(reason)}{shown}")
        if len(bad) > args.show:
            print(f"  ... and {len(bad) - args.show} more")
    if not total:
        print("no requests: the engine cannot run this replay")
    return 1 if bad or not total else 0
