"""``seldon-load replay prediction|recommendation|check``: Seldon's replay scripts, and more."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import protocols
from ..consumer_keys import ConsumerKeyError, load_consumer_key
from ..generate import (
    FEATURE_TYPES,
    DatasetError,
    FeatureSpecError,
    ItemsError,
    parse_features,
    write_prediction_replay,
    write_recommendation_replay,
)
from ..protocols import ProtocolOptionError
from ..replay import ReplayError, ReplayFile, lines_of, parse_raw_line
from .arguments import CommandError, Parser, command_parser, hide_keys, percent, seed, whole

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
    parser = command_parser(
        kinds,
        "prediction",
        "prediction requests from feature specs or a dataset",
        (
            "Write a prediction replay: random rows from feature specs (or rows sampled from "
            "a CSV dataset), one request per line, for the seldon-server JS API (legacy, "
            "byte-compatible with Seldon's create_prediction_replay.py), Seldon Core v1, or "
            "the V2 Open Inference Protocol (MLServer, Seldon Core v2, KServe, Triton)."
        ),
        _PREDICTION_EXAMPLES,
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
        choices=protocols.names(),
        default="legacy",
        help="; ".join(f"{name}: {protocols.get(name).summary}" for name in protocols.names())
        + " (default: legacy, as the original script)",
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
        help=f"{_only('endpoint_host')} only: host[:port] written into each URL (default: "
        "seldon-server; Iago keeps only path and query)",
    )
    parser.add_argument(
        "--key",
        metavar="KEY_OR_FILE",
        help=f"{_only('consumer_key')} only, required there: the consumer key, or the file "
        "that `seldon-cli -q keys --client-name C --scope js` writes",
    )
    parser.add_argument(
        "--batch",
        type=whole(1),
        default=1,
        help=f"{_only('batch')}: rows per request (default: 1)",
    )
    parser.add_argument(
        "--tensor",
        action="store_true",
        help=f"{_only('tensor')}: send " + '{"data":{"tensor":{shape, values}}} instead of ndarray',
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"{_only('model')}: model name in /v2/models/MODEL/infer, or gRPC's model_name "
        "(default: iris)",
    )
    parser.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="NAME",
        help=f"{_only('outputs')}: ask for this output, repeatable (e.g. predict_proba)",
    )
    parser.add_argument(
        "--seldon-model",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help=f"{_only('seldon_model_header')}: add a Seldon-Model header for Seldon Core v2 "
        "routing (NAME, or the model name when given alone; NAME.pipeline for a pipeline)",
    )
    parser.add_argument(
        "--input-name",
        default=None,
        metavar="NAME",
        help=f"{_only('input_name')}: name of the single input when all features are numbers "
        "(default: predict)",
    )
    parser.set_defaults(func=cmd_replay_prediction, interrupted_note="no file was written")


def _feature_specs(texts: Sequence[str]) -> list[Any]:
    specs = []
    for index, text in enumerate(texts, 1):
        try:
            specs.append(json.loads(text))
        except json.JSONDecodeError as exc:
            detail = f"{exc.msg} at column {exc.colno}"
            raise CommandError(f"--feature {index}: not valid JSON ({detail})") from None
        except (ValueError, RecursionError) as exc:
            raise CommandError(f"--feature {index}: not valid JSON ({exc})") from None
    return specs


_FLAGS = {
    "consumer_key": "--key",
    "endpoint_host": "--endpoint",
    "batch": "--batch",
    "tensor": "--tensor",
    "model": "--model",
    "outputs": "--output",
    "seldon_model_header": "--seldon-model",
    "input_name": "--input-name",
}
"""Each prediction option (`protocols.PredictionOptions`) as the command line spells it."""
_NEEDED_HINTS = {"consumer_key": " (the consumer key, or the file `seldon-cli keys` writes)"}


def _only(option: str) -> str:
    """The protocols that take a prediction option, for help texts (e.g. ``v1/v2``)."""
    return "/".join(protocols.accepting(option))


def _given(args: argparse.Namespace) -> list[str]:
    """The prediction options given on the command line, by option name."""
    present = {
        "consumer_key": args.key is not None,
        "endpoint_host": args.endpoint is not None,
        "batch": args.batch != 1,
        "tensor": args.tensor,
        "model": args.model is not None,
        "outputs": bool(args.output),
        "seldon_model_header": args.seldon_model is not None,
        "input_name": args.input_name is not None,
    }
    return [option for option, given in present.items() if given]


def cmd_replay_prediction(args: argparse.Namespace) -> int:
    """Write a prediction replay."""
    protocol = args.protocol
    if args.feature and args.dataset:
        raise CommandError("give --feature specs or --dataset, not both")
    if not args.feature and not args.dataset:
        raise CommandError("give at least one --feature spec, or a --dataset")
    specs = _feature_specs(args.feature) if args.feature else None
    columns = None
    if specs is not None:
        try:
            columns = parse_features(specs)
        except FeatureSpecError as exc:
            raise _feature_error(exc, args) from None
    try:
        chosen = protocols.check_options(protocol, _given(args))
    except ProtocolOptionError as exc:
        flag = _FLAGS[exc.option]
        if exc.missing:
            hint = _NEEDED_HINTS.get(exc.option, "")
            raise CommandError(f"--protocol {protocol} needs {flag}{hint}") from None
        raise CommandError(
            f"{flag} applies to --protocol {exc.listed} only, not {protocol}"
        ) from None
    layout = chosen.layout_note(columns) if columns is not None else ""
    key = _load_key(args.key) if args.key is not None else None
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
    details = ([f"{args.batch} rows each"] if args.batch > 1 else []) + ([layout] if layout else [])
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
    parser = command_parser(
        kinds,
        "recommendation",
        "recommendation + action pairs for the seldon-server JS API",
        (
            "Write a recommendation replay as Seldon's create_recommendation_replay.py: for "
            "each API call a /js/recommendations line then a /js/action/new line, users "
            "uniform in 1..--num-users, items uniform over the --items list."
        ),
        _RECOMMENDATION_EXAMPLES,
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
    parser = command_parser(
        kinds,
        "check",
        "check that every line of a replay file can be sent",
        "Read a replay file as the load engine does; print the number of requests per method "
        "and path (query left out) and every line that cannot be sent (and JSON bodies that do "
        "not parse; a GRPC line's request is encoded as it will be sent). Exit code 1 when a "
        "line is bad or there is no request.",
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


def check_replay(path: str | Path) -> tuple[Counter, list[tuple[int, str, str]]]:
    """Requests per (method, path without query), and bad lines as (number, reason, shown
    text with secrets masked). A line is bad exactly when a run would refuse it."""
    source = str(path)
    counts: Counter = Counter()
    bad: list[tuple[int, str, str]] = []
    try:
        handle = ReplayFile(Path(path)).open_bytes()  # un-gzipped, as a run reads it
    except ReplayError as exc:
        raise CommandError(f"cannot open the replay file {source} ({exc.reason})") from None
    with handle:
        lines = enumerate(lines_of(handle, source), 1)
        try:
            for number, raw in lines:
                try:
                    request = parse_raw_line(raw, number, source)
                except ReplayError as exc:
                    bad.append((number, exc.reason, exc.shown))
                    continue
                if request is not None:
                    counts[(request.method, request.path.partition("?")[0])] += 1
        except ReplayError as exc:  # the gzip stream broke off: nothing after it can be read
            raise CommandError(str(exc)) from None
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
            shown = f": {hide_keys(text)!r}" if text else ""
            print(f"  line {number}: {hide_keys(reason)}{shown}")
        if len(bad) > args.show:
            print(f"  ... and {len(bad) - args.show} more")
    if not total:
        print("no requests: the engine cannot run this replay")
    return 1 if bad or not total else 0
