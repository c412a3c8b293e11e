"""Replay files for Seldon, a superset of seldon-server's Iago replay scripts.

Prediction replays come from feature specs (one JSON object per feature) or from rows of a
dataset, and are written for any registered protocol: this module draws the rows and writes the
values' text; the protocol (`pytest_seldon_load.protocols`: ``legacy`` byte for byte as Seldon's
``create_prediction_replay.py``, ``v1``, ``v2``) lays them out as its requests.

Recommendation replays follow ``create_recommendation_replay.py``: for each API call a
``/js/recommendations`` line then a ``/js/action/new`` line, ``&rlabs=1`` on the action with the
click probability.

Sampling is vectorised (a chunk of rows at a time) and seeded: the same seed and arguments give
the same bytes. Every feature draws from its own random stream, so the values do not depend on
the chunk size, the batch size or the protocol: the same seed gives the same rows in a legacy,
a v1 and a v2 file, and adding a feature leaves the others' values as they were.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np

# numpy loads `numpy.random` on first use; it is loaded here instead, before any replay file
# is opened, because a Ctrl-C that lands while an extension module initialises is lost, and
# the generation it should have stopped would run to the end.
import numpy.random

from . import protocols
from .atomic import atomic_writer
from .consumer_keys import key_from_file
from .protocols import Formatter, PredictionOptions, UnsupportedFeature
from .protocols.legacy import clean_host, recommendation_template
from .redact import register_secret
from .replay import ReplayFile

FEATURE_TYPES = ("numeric", "integer", "categorical", "constant", "normal")
_NORMAL_REACH = 40.0
"""Standard deviations a normal feature's draws stay within (beyond it: never, in practice)."""
PREDICTION_PROTOCOLS = protocols.names()
"""Every registered protocol writes predictions."""
CHUNK_ROWS = 50_000
"""Rows drawn and formatted at once: big enough for numpy to pay off, small enough for memory."""
MAX_EXACT_INTEGER = 2**53

_SPEC_KEYS = {
    "numeric": {"min", "max"},
    "integer": {"min", "max"},
    "categorical": {"values", "weights"},
    "constant": {"value"},
    "normal": {"mean", "std", "clip"},
}
_INTEGER_TEXT = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_NUMERIC_KINDS = ("float", "int")


class FeatureSpecError(ValueError):
    """A feature spec that cannot be used; names the feature (1-based index, name) and why."""

    def __init__(self, index: int, name: str | None, problem: str) -> None:
        self.index = index
        self.name = name
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    @property
    def where(self) -> str:
        return f"feature {self.index}" + (f" ({self.name})" if self.name else "")


class DatasetError(ValueError):
    """A dataset that cannot be sampled (unreadable, empty, ragged rows)."""


class ItemsError(ValueError):
    """An item list for a recommendation replay that cannot be used."""


# --- columns: what each feature draws and how its values are written -------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind_of(values: Sequence[Any]) -> str:
    """float | int | bool | str | mixed: the JSON type family of a set of values."""
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(_is_number(v) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "str"
    return "mixed"


def _bytes_literal(value: Any) -> str:
    """A value as an OIP BYTES element: a JSON string (numbers and booleans as their JSON text)."""
    return json.dumps(value if isinstance(value, str) else json.dumps(value))


def _literal(value: Any, encoding: str) -> str:
    if encoding == "json":
        return json.dumps(value)
    if encoding == "url":
        return quote_plus(json.dumps(value))
    if encoding == "fp64":
        return _float_json(float(value))
    if encoding == "bytes":
        return _bytes_literal(value)
    raise ValueError(f"unknown encoding {encoding!r}")


def _float_json(value: float) -> str:
    """A float as json.dumps writes it (repr, and NaN/Infinity for the non-finite)."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _float_texts(values: np.ndarray) -> list[str]:
    floats = values.tolist()
    if np.isfinite(values).all():
        return list(map(float.__repr__, floats))
    return list(map(_float_json, floats))


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of exactly these values (numpy would nest or coerce some)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@dataclass
class _Column:
    """One feature: how to draw it, and how to write what was drawn.

    A discrete column (categorical, constant, strings of a dataset) draws indices into `table`;
    a continuous one draws the values themselves.
    """

    name: str
    kind: str
    draw: Callable[[np.random.Generator, int], np.ndarray] | None = None
    table: list[Any] | None = None
    data: np.ndarray | None = None
    _literals: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def values(self, sample: np.ndarray) -> np.ndarray:
        """The drawn values themselves (Python objects for a discrete column)."""
        if self.table is None:
            return sample
        return _objects(self.table)[sample]

    def texts(self, sample: np.ndarray, encoding: str) -> list[str]:
        """The JSON text of each drawn value (`encoding`: json, url, fp64 or bytes)."""
        if self.table is not None:
            literals = self._literals.get(encoding)
            if literals is None:
                literals = self._literals[encoding] = _objects(
                    [_literal(v, encoding) for v in self.table]
                )
            return literals[sample].tolist()
        if self.kind == "bool":
            words = ("false", "true") if encoding != "bytes" else ('"false"', '"true"')
            return np.array(words, dtype=object)[sample.astype(np.intp)].tolist()
        if self.kind == "int":
            if encoding == "fp64":
                return _float_texts(sample.astype(np.float64))
            texts = list(map(int.__repr__, sample.tolist()))
        else:
            texts = _float_texts(sample)
            if encoding == "url" and (np.abs(sample) >= 1e16).any():
                # repr writes 1e+16; quote_plus turns that '+' into %2B.
                texts = [t.replace("+", "%2B") for t in texts]
        if encoding == "bytes":
            return [f'"{t}"' for t in texts]
        return texts


def _number(spec: Mapping, key: str, fail: Callable[[str], Exception]) -> float:
    if key not in spec:
        raise fail(f'needs "{key}"')
    value = spec[key]
    if not _is_number(value):
        raise fail(f'"{key}" must be a number, got {json.dumps(value)}')
    if not math.isfinite(value):
        raise fail(f'"{key}" must be finite, got {value}')
    return value


def _whole(spec: Mapping, key: str, fail: Callable[[str], Exception]) -> int:
    value = _number(spec, key, fail)
    if isinstance(value, float):
        if not value.is_integer():
            raise fail(f'"{key}" must be a whole number, got {value!r}')
        value = int(value)
    if abs(value) > MAX_EXACT_INTEGER:
        raise fail(f'"{key}" must be within ±2**53, got {value}')
    return value


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or (_is_number(value) and math.isfinite(value))


def _uniform(low: float, high: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(low, high, n)

    return draw


def _uniform_int(low: int, high: int) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Whole numbers in [low, high], from one double each, so draws do not depend on chunking."""
    span = high - low + 1

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        offsets = np.floor(rng.random(n) * span).astype(np.int64)
        np.minimum(offsets, span - 1, out=offsets)
        return offsets + low

    return draw


def _normal(
    mean: float, std: float, low: float | None, high: float | None
) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        values = rng.normal(mean, std, n)
        if low is not None or high is not None:
            np.clip(
                values,
                -math.inf if low is None else low,
                math.inf if high is None else high,
                out=values,
            )
        return values

    return draw


def _choice(
    weights: Sequence[float] | None, count: int
) -> Callable[[np.random.Generator, int], np.ndarray]:
    if weights is None:
        return _uniform_int(0, count - 1)
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    last = max(i for i, w in enumerate(weights) if w > 0)

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        picks = np.searchsorted(cdf, rng.random(n), side="right")
        np.minimum(picks, last, out=picks)
        return picks

    return draw


def _constant(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.intp)


def parse_feature(spec: Any, index: int = 1) -> _Column:
    """One feature spec to a column; FeatureSpecError names the feature and the problem."""
    if not isinstance(spec, Mapping):
        raise FeatureSpecError(
            index,
            None,
            'must be a JSON object like {"name":"f1","type":"numeric","min":0,"max":5}',
        )
    name = spec.get("name")
    shown = name if isinstance(name, str) and name else None

    def fail(problem: str) -> FeatureSpecError:
        return FeatureSpecError(index, shown, problem)

    if "name" not in spec:
        raise fail('needs "name"')
    if not isinstance(name, str) or not name:
        raise fail(f'"name" must be a non-empty string, got {json.dumps(name)}')
    if "type" not in spec:
        raise fail(f'needs "type" (one of {", ".join(FEATURE_TYPES)})')
    kind = spec["type"]
    if kind not in _SPEC_KEYS:
        raise fail(f"unknown type {json.dumps(kind)}; choose one of {', '.join(FEATURE_TYPES)}")
    unknown = sorted(set(spec) - {"name", "type"} - _SPEC_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(_SPEC_KEYS[kind]))
        raise fail(
            f"unknown key {', '.join(map(json.dumps, unknown))} for type {kind} "
            f"(it takes {allowed})"
        )

    if kind == "numeric":
        low, high = _number(spec, "min", fail), _number(spec, "max", fail)
        if low > high:
            raise fail(f"min ({low}) is greater than max ({high})")
        if not math.isfinite(high - low):
            raise fail(f"max - min ({high} - {low}) overflows a float: narrow the range")
        return _Column(name, "float", draw=_uniform(low, high))
    if kind == "integer":
        low, high = _whole(spec, "min", fail), _whole(spec, "max", fail)
        if low > high:
            raise fail(f"min ({low}) is greater than max ({high})")
        return _Column(name, "int", draw=_uniform_int(low, high))
    if kind == "normal":
        mean, std = _number(spec, "mean", fail), _number(spec, "std", fail)
        if std < 0:
            raise fail(f"std ({std}) must not be negative")
        if not math.isfinite(abs(mean) + _NORMAL_REACH * std):
            raise fail(
                f"mean ({mean}) and std ({std}) would draw numbers beyond a float's range "
                f"(mean ± {_NORMAL_REACH:g} std must stay finite)"
            )
        clip_low: float | None = None
        clip_high: float | None = None
        clip = spec.get("clip")
        if clip is not None:
            if not (isinstance(clip, list) and len(clip) == 2):
                raise fail(
                    f'"clip" must be [low, high] (either may be null), got {json.dumps(clip)}'
                )
            bounds = {"low": clip[0], "high": clip[1]}
            clip_low = None if clip[0] is None else _number(bounds, "low", fail)
            clip_high = None if clip[1] is None else _number(bounds, "high", fail)
            if clip_low is not None and clip_high is not None and clip_low > clip_high:
                raise fail(f"clip low ({clip_low}) is greater than clip high ({clip_high})")
        return _Column(name, "float", draw=_normal(mean, std, clip_low, clip_high))
    if kind == "constant":
        if "value" not in spec:
            raise fail('needs "value"')
        value = spec["value"]
        if not _scalar(value):
            raise fail(f'"value" must be a string, number or boolean, got {json.dumps(value)}')
        return _Column(name, _kind_of([value]), draw=_constant, table=[value])
    # categorical
    if "values" not in spec:
        raise fail('needs "values" (a list)')
    values = spec["values"]
    if not isinstance(values, list) or not values:
        raise fail(f'"values" must be a non-empty list, got {json.dumps(values)}')
    for value in values:
        if not _scalar(value):
            raise fail(f'"values" may hold strings, numbers and booleans, not {json.dumps(value)}')
    weights = spec.get("weights")
    if weights is not None:
        if not isinstance(weights, list) or len(weights) != len(values):
            raise fail(f'"weights" must be a list of {len(values)} numbers, one per value')
        for weight in weights:
            if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
                raise fail(f'"weights" must be numbers >= 0, got {json.dumps(weight)}')
        if not sum(weights) > 0:
            raise fail('"weights" must not all be zero')
    return _Column(name, _kind_of(values), draw=_choice(weights, len(values)), table=list(values))


def parse_features(features: Sequence[Any]) -> list[_Column]:
    """Feature specs to columns, checked; duplicate names are refused (JSON keys are unique)."""
    if isinstance(features, (str, bytes, Mapping)) or not isinstance(features, Sequence):
        raise FeatureSpecError(1, None, "features must be a list of feature specs")
    if not features:
        raise FeatureSpecError(1, None, "no features: give at least one feature spec")
    columns: list[_Column] = []
    seen: dict[str, int] = {}
    for index, spec in enumerate(features, 1):
        column = parse_feature(spec, index)
        if column.name in seen:
            raise FeatureSpecError(
                index, column.name, f"the name is already used by feature {seen[column.name]}"
            )
        seen[column.name] = index
        columns.append(column)
    return columns


# --- datasets -------------------------------------------------------------------------


def _table_column(name: str, values: list[Any]) -> _Column:
    index: dict[tuple[type, Any], int] = {}
    table: list[Any] = []
    codes = np.empty(len(values), dtype=np.intp)
    for position, value in enumerate(values):
        key = (type(value), value)
        code = index.get(key)
        if code is None:
            code = index[key] = len(table)
            table.append(value)
        codes[position] = code
    return _Column(name, _kind_of(table), table=table, data=codes)


def _array_column(name: str, array: np.ndarray) -> _Column:
    kind = array.dtype.kind
    if kind == "f":
        return _Column(name, "float", data=np.ascontiguousarray(array, dtype=np.float64))
    if kind in "iu":
        return _Column(name, "int", data=np.ascontiguousarray(array, dtype=np.int64))
    if kind == "b":
        return _Column(name, "bool", data=np.ascontiguousarray(array, dtype=bool))
    values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.tolist()]
    for value in values:
        if not _scalar(value) and not (isinstance(value, float) and math.isnan(value)):
            raise DatasetError(
                f"column {name!r} holds {value!r}; a value must be a string, number or boolean"
            )
    return _table_column(name, values)


def _csv_columns(path: Path, names: Sequence[str] | None) -> tuple[list[_Column], int]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except OSError as exc:
        raise DatasetError(f"cannot read the dataset {path} ({exc.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read the dataset {path} as UTF-8 CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"the dataset {path} is empty")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    header = None if all(numeric(cell) for cell in rows[0]) else rows.pop(0)
    if not rows:
        raise DatasetError(f"the dataset {path} has a header but no rows")
    width = len(rows[0])
    for number, row in enumerate(rows, 2 if header else 1):
        if len(row) != width:
            raise DatasetError(f"{path} row {number} has {len(row)} values, expected {width}")
    if names is None:
        names = header if header is not None else [f"f{i}" for i in range(1, width + 1)]
    if len(names) != width:
        raise DatasetError(f"{len(names)} names for {width} columns of {path}")
    columns = []
    for position, name in enumerate(names):
        cells = [row[position] for row in rows]
        if all(_INTEGER_TEXT.match(cell) for cell in cells):
            data = np.array([int(cell) for cell in cells], dtype=np.int64)
            columns.append(_array_column(name, data))
        elif all(numeric(cell) for cell in cells):
            columns.append(_array_column(name, np.array([float(c) for c in cells])))
        else:
            if any(numeric(cell) for cell in cells):
                for number, cell in enumerate(cells, 2 if header else 1):
                    if not cell.strip():
                        raise DatasetError(f"{path} row {number}: column {name!r} is empty")
            columns.append(_table_column(name, cells))
    return columns, len(rows)


def _dataset_columns(dataset: Any, names: Sequence[str] | None) -> tuple[list[_Column], int]:
    if isinstance(dataset, (str, os.PathLike)):
        columns, rows = _csv_columns(Path(dataset), names)
    elif hasattr(dataset, "columns") and hasattr(dataset, "to_numpy"):
        labels = [str(c) for c in dataset.columns] if names is None else list(names)
        arrays = [dataset[c].to_numpy() for c in dataset.columns]
        if len(labels) != len(arrays):
            raise DatasetError(f"{len(labels)} names for {len(arrays)} columns")
        columns = [_array_column(n, a) for n, a in zip(labels, arrays, strict=True)]
        rows = len(dataset)
    else:
        array = np.asarray(dataset)
        if array.dtype.names:
            fields = array.dtype.names
            labels = list(fields) if names is None else list(names)
            if len(labels) != len(fields):
                raise DatasetError(f"{len(labels)} names for {len(fields)} columns")
            columns = [_array_column(n, array[f]) for n, f in zip(labels, fields, strict=True)]
        else:
            if array.ndim != 2:
                raise DatasetError(
                    f"a dataset array must be 2-D (rows × features), got shape {array.shape}"
                )
            width = array.shape[1]
            labels = [f"f{i}" for i in range(1, width + 1)] if names is None else list(names)
            if len(labels) != width:
                raise DatasetError(f"{len(labels)} names for {width} columns")
            columns = [_array_column(n, array[:, i]) for i, n in enumerate(labels)]
        rows = len(array)
    if rows == 0 or not columns:
        raise DatasetError("the dataset has no rows")
    if len({c.name for c in columns}) != len(columns):
        raise DatasetError("the dataset's column names are not unique")
    return columns, rows


# --- sampling -------------------------------------------------------------------------


@dataclass
class _Plan:
    columns: list[_Column]
    dataset_rows: int = 0

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def samples(self, rows: int, seed: int | None, chunk_rows: int) -> Iterator[list[np.ndarray]]:
        """Raw draws per column (values, or indices into a table), `chunk_rows` rows at a time."""
        sequence = np.random.SeedSequence(seed)
        if self.dataset_rows:
            datas = [c.data for c in self.columns if c.data is not None]
            if len(datas) != len(self.columns):
                raise ValueError("a dataset column holds no data")
            rng = np.random.default_rng(sequence)
            for start in range(0, rows, chunk_rows):
                count = min(chunk_rows, rows - start)
                picks = np.floor(rng.random(count) * self.dataset_rows).astype(np.intp)
                np.minimum(picks, self.dataset_rows - 1, out=picks)
                yield [data[picks] for data in datas]
            return
        draws = [c.draw for c in self.columns if c.draw is not None]
        if len(draws) != len(self.columns):
            raise ValueError("a feature column has no way to draw values")
        rngs = [np.random.default_rng(s) for s in sequence.spawn(len(self.columns))]
        for start in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - start)
            yield [draw(r, count) for draw, r in zip(draws, rngs, strict=True)]


def _plan(features: Sequence[Mapping] | None, dataset: Any, names: Sequence[str] | None) -> _Plan:
    if dataset is not None:
        if features:
            raise ValueError("give features or a dataset, not both")
        columns, rows = _dataset_columns(dataset, names)
        return _Plan(columns, rows)
    if features is None:
        raise ValueError("give features (a list of feature specs) or a dataset")
    return _Plan(parse_features(features))


def _check_seed(seed: int | None) -> None:
    if seed is not None and (
        not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0
    ):
        raise ValueError(f"seed must be a whole number >= 0 or None, got {seed!r}")


def _check_count(name: str, value: int, least: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")


def prediction_rows(
    features: Sequence[Mapping] | None,
    num: int,
    *,
    seed: int | None = 0,
    dataset: Any = None,
    names: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[list[str], Iterator[np.ndarray]]:
    """The feature names and `num` sampled rows, as 2-D arrays of up to `chunk_rows` rows.

    An array is float64 when every feature is a number (int64 when every one is an integer),
    and of Python objects otherwise. The rows are those a replay written with the same
    features, dataset and seed carries.
    """
    _check_count("num", num)
    _check_count("chunk_rows", chunk_rows)
    _check_seed(seed)
    plan = _plan(features, dataset, names)
    kinds = {c.kind for c in plan.columns}
    if kinds <= {"int"}:
        dtype: Any = np.int64
    elif kinds <= set(_NUMERIC_KINDS):
        dtype = np.float64
    else:
        dtype = object

    def chunks() -> Iterator[np.ndarray]:
        for samples in plan.samples(num, seed, chunk_rows):
            out = np.empty((len(samples[0]), len(samples)), dtype=dtype)
            for position, (column, sample) in enumerate(zip(plan.columns, samples, strict=True)):
                out[:, position] = column.values(sample)
            yield out

    return plan.names, chunks()


# --- prediction replays --------------------------------------------------------------


def _clean_key(consumer_key: str | os.PathLike[str] | None, needed_for: str) -> str:
    """The key, URL-encoded; a path (``pathlib.Path``) is a key file, as ``--key`` reads it."""
    if isinstance(consumer_key, os.PathLike):
        consumer_key = key_from_file(consumer_key)
    if consumer_key is None or not str(consumer_key).strip():
        raise ValueError(f"{needed_for} needs a consumer key")
    key = str(consumer_key).strip()
    register_secret(key)
    encoded = quote(key, safe="")
    register_secret(encoded)
    return encoded


def _prediction_formatter(
    plan: _Plan,
    protocol: str,
    options: PredictionOptions,
    consumer_key: str | os.PathLike[str] | None,
) -> Formatter:
    """The protocol's formatter for `options`, after checking the protocol takes each option
    given; `consumer_key` (the key, or a key file) is read only if the protocol takes one."""
    given = [
        option
        for option, present in (
            ("batch", options.batch != 1),
            ("tensor", options.tensor),
            ("outputs", bool(options.outputs)),
            ("seldon_model_header", options.seldon_model_header is not None),
            ("consumer_key", consumer_key is not None and bool(str(consumer_key).strip())),
        )
        if present
    ]
    # A consumer key goes along whatever the protocol (a suite may hand the same options to
    # every endpoint); only a protocol that needs one notices it missing.
    chosen = protocols.check_options(protocol, given, ignored=("consumer_key",))
    if "consumer_key" in chosen.accepts:
        key = _clean_key(consumer_key, f"the {protocol} protocol")
        options = replace(options, consumer_key=key)
    try:
        return chosen.prediction_formatter(plan.columns, options)
    except UnsupportedFeature as exc:
        raise FeatureSpecError(exc.index, exc.name, exc.problem) from None


def write_prediction_replay(
    path: str | os.PathLike[str],
    *,
    protocol: str,
    features: Sequence[Mapping] | None = None,
    num: int = 1000,
    seed: int | None = 0,
    model: str = "iris",
    batch: int = 1,
    dataset: Any = None,
    consumer_key: str | os.PathLike[str] | None = None,
    endpoint_host: str = "seldon-server",
    tensor: bool = False,
    outputs: Sequence[str] = (),
    seldon_model_header: str | None = None,
    names: Sequence[str] | None = None,
    input_name: str = "predict",
    infer_path: str = "",
) -> ReplayFile:
    """Write `num` prediction requests of `batch` rows each, atomically; returns the file.

    Rows come from `features` (specs) or `dataset` (a CSV path, a 2-D or structured numpy
    array, or a DataFrame; `names` names a plain array's columns). `consumer_key` (the key,
    or a ``Path`` to a ``seldon-cli keys`` file) is needed for ``legacy``; `tensor` picks v1's
    tensor form; `outputs` and `seldon_model_header` are for ``v2`` and ``grpc``.
    `infer_path` is the endpoint's prediction path when not the protocol's own (a Core 2
    pipeline's ``/v2/pipelines/NAME/infer``; `SeldonEndpoint.infer_path`).
    Everything is checked before the file is opened.
    """
    _check_count("num", num)
    _check_count("batch", batch)
    _check_seed(seed)
    plan = _plan(features, dataset, names)
    options = PredictionOptions(
        batch=batch,
        model=model,
        endpoint_host=endpoint_host,
        outputs=tuple(outputs),
        tensor=tensor,
        seldon_model_header=seldon_model_header,
        input_name=input_name,
        infer_path=infer_path,
    )
    format_lines = _prediction_formatter(plan, protocol, options, consumer_key)
    lines_per_chunk = max(1, CHUNK_ROWS // batch)
    with atomic_writer(path) as handle:
        for samples in plan.samples(num * batch, seed, lines_per_chunk * batch):
            handle.write("\n".join(format_lines(samples)))
            handle.write("\n")
    return ReplayFile(Path(path), count=num)


# --- recommendation replays -----------------------------------------------------------


def _item_ids(document: Any, source: str) -> list[str] | None:
    """Item ids from parsed JSON, or None when the document is not an item list."""
    if isinstance(document, Mapping) and isinstance(document.get("list"), list):
        document = document["list"]
    if not isinstance(document, list):
        return None
    ids = []
    for position, entry in enumerate(document, 1):
        if isinstance(entry, Mapping):
            if "id" not in entry:
                raise ItemsError(f'{source}: item {position} has no "id"')
            entry = entry["id"]
        if isinstance(entry, bool) or not isinstance(entry, (str, int)):
            raise ItemsError(
                f"{source}: item {position} id must be a string or an integer, "
                f"got {json.dumps(entry)}"
            )
        ids.append(str(entry))
    return ids


def load_items(source: str | os.PathLike[str] | Sequence[str | int]) -> list[str]:
    """Item ids from a file, or a list of ids as given.

    A file may hold a JSON list of ids, a JSON list of objects with ``"id"``, the JSON that
    ``seldon-cli api --endpoint /items`` prints (``{"size":N,"requested":N,"list":[{"id":..}]}``,
    one such document per line is fine too), or one id per line (``#`` lines are skipped).
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ItemsError(f"cannot read the item file {name} ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ItemsError(f"the item file {name} is not UTF-8 text") from None
        ids = _items_from_text(text, name)
    else:
        listed = _item_ids(list(source), "items")
        if listed is None:
            raise ItemsError("items must be a list of ids")
        ids = listed
    ids = [i for i in ids if i != ""]
    if not ids:
        where = f" in {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else ""
        raise ItemsError(f"the item list{where} is empty")
    return ids


def _items_from_text(text: str, source: str) -> list[str]:
    stripped = text.strip()
    if not stripped:
        return []
    try:
        document = json.loads(stripped)
    except ValueError:
        document = None
    else:
        ids = _item_ids(document, source)
        if ids is not None:
            return ids
    lines = [line.strip() for line in stripped.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    documents = []
    for line in lines:
        try:
            documents.append(json.loads(line))
        except ValueError:
            break
    if (
        documents
        and len(documents) == len(lines)
        and all(isinstance(d, Mapping) and "list" in d for d in documents)
    ):
        ids = []
        for document in documents:
            ids.extend(_item_ids(document, source) or [])
        return ids
    if document is not None and not isinstance(document, (str, int, float)):
        raise ItemsError(
            f"{source}: expected a list of item ids, or the JSON of "
            '`seldon-cli api --endpoint /items` ({"list":[{"id":..},..]})'
        )
    return lines


def write_recommendation_replay(
    path: str | os.PathLike[str],
    *,
    items: str | os.PathLike[str] | Sequence[str | int],
    num_actions: int = 1000,
    num_users: int = 10000,
    item_type: int = 1,
    click_probability: float = 0.1,
    consumer_key: str | os.PathLike[str],
    endpoint_host: str = "seldon-server",
    seed: int | None = 0,
) -> ReplayFile:
    """For each of `num_actions` API calls, a recommendation line then an action line.

    As Seldon's ``create_recommendation_replay.py``: the user is uniform in 1..num_users, the
    item uniform over `items`, and the action carries ``&rlabs=1`` (a click on a
    recommendation) with `click_probability`. Unlike the original, item ids are URL-encoded
    (it inserted them raw), so an id with ``&`` or a space cannot break the URL; plain ids
    are written unchanged.
    """
    _check_count("num_actions", num_actions)
    _check_count("num_users", num_users)
    _check_count("item_type", item_type, least=0)
    _check_seed(seed)
    if not (_is_number(click_probability) and 0.0 <= click_probability <= 1.0):
        raise ValueError(f"click probability must be in [0, 1], got {click_probability!r}")
    key = _clean_key(consumer_key, "a recommendation replay")
    host = clean_host(endpoint_host)
    ids = load_items(items)
    encoded = _objects([quote(i, safe="") for i in ids])
    recommendation = recommendation_template(host, key, item_type)
    clicks_text = _objects(["", "&rlabs=1"])
    users_rng, items_rng, clicks_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    with atomic_writer(path) as handle:
        for start in range(0, num_actions, CHUNK_ROWS):
            count = min(CHUNK_ROWS, num_actions - start)
            users = _uniform_int(1, num_users)(users_rng, count)
            picks = _uniform_int(0, len(ids) - 1)(items_rng, count)
            clicks = clicks_rng.random(count) < click_probability
            user_texts = list(map(int.__repr__, users.tolist()))
            item_texts = encoded[picks].tolist()
            click_texts = clicks_text[clicks.astype(np.intp)].tolist()
            lines = map(
                recommendation.format, user_texts, item_texts, user_texts, item_texts, click_texts
            )
            handle.write("\n".join(lines))
            handle.write("\n")
    return ReplayFile(Path(path), count=2 * num_actions)
