"""Every load result of a session in one JSON file, histograms included (``--load-json``).

It is the input of ``seldon-load compare`` and ``seldon-load report``, which also read the
other two saved forms: a baseline file, and a single result (``result.to_json()``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_json
from ..baseline import RUN_FIELDS, BaselineError, parse_baseline
from ..baseline import SCHEMA as BASELINE_SCHEMA
from ..result import SCHEMA as RESULT_SCHEMA
from ..result import LoadResult
from ..saved_result import SavedResultError, load_json, result_from_saved

SCHEMA = "pytest-seldon-load/session/1"


def session_document(
    runs: Sequence[Mapping[str, Any]],
    machine: Mapping[str, Any],
    commit: Mapping[str, Any],
    created: str,
    capacities: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The file: its runs, and the session's capacity searches (`Capacity.to_dict()` plus
    ``nodeid``) when it made any."""
    document = {
        "schema": SCHEMA,
        "created": created,
        "machine": dict(machine),
        "commit": dict(commit),
        "runs": [dict(run) for run in runs],
    }
    if capacities:
        document["capacities"] = [dict(search) for search in capacities]
    return document


def write_session_json(path: str | os.PathLike[str], document: Mapping[str, Any]) -> Path:
    return atomic_write_json(path, document)


@dataclass
class SavedRuns:
    """Runs read back from any saved form, by key (the test's run, as baselines name it)."""

    source: str
    kind: str
    """session, baseline or result."""
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Session-style entries: a result's dict plus nodeid, key and verdict."""
    machine: dict[str, Any] = field(default_factory=dict)
    commit: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    damaged: dict[str, str] = field(default_factory=dict)
    """Runs that cannot be used, by key, with the field at fault; the others can."""
    capacities: list[dict[str, Any]] = field(default_factory=list)
    """A session's capacity searches, each readable by `Capacity.from_dict`."""
    damaged_capacities: list[str] = field(default_factory=list)
    """Searches that cannot be read, each with the field at fault; set aside, as runs are."""

    def result(self, key: str) -> LoadResult:
        """The run `key` as a LoadResult, checked down to its per-second histograms;
        SavedRunsError naming the file and field when it is damaged."""
        if key not in self.damaged:
            run = self.runs[key]
            try:
                return result_from_saved(
                    {k: v for k, v in run.items() if k not in RUN_FIELDS}, f"run {key!r}"
                )
            except SavedResultError as exc:
                self.damaged[key] = str(exc)
        raise SavedRunsError(f"{self.source}: {self.damaged[key]}")


class SavedRunsError(ValueError):
    """A file that is none of the saved forms, or is damaged."""


def read_saved_runs(path: str | os.PathLike[str]) -> SavedRuns:
    """A session JSON, a baseline, or one result, as SavedRuns; SavedRunsError if none.

    A damaged run does not make the file unreadable: it is named in `damaged`, and
    `result(key)` says what is wrong with it.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise SavedRunsError(f"cannot read {source} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SavedRunsError(f"{source} is not a text file") from None
    try:
        data = load_json(text, str(source))
    except SavedResultError as exc:
        raise SavedRunsError(str(exc)) from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == SCHEMA:
        return _from_session(data, str(source))
    if schema == BASELINE_SCHEMA:
        try:
            baseline = parse_baseline(data, source, source.stem)
        except BaselineError as exc:
            raise SavedRunsError(str(exc)) from None
        saved = SavedRuns(
            str(source), "baseline", {}, baseline.machine, baseline.commit, baseline.created
        )
        for key, entry in baseline.tests.items():
            if key in baseline.damaged:
                saved.runs[key] = {"key": key}
                saved.damaged[key] = baseline.damaged[key]
                continue
            saved.runs[key] = {
                **entry["result"],
                "nodeid": entry.get("nodeid", key),
                "key": key,
                "verdict": entry.get("verdict"),
            }
        return saved
    if schema == RESULT_SCHEMA or (isinstance(data, dict) and data.get("kind") == "summary-only"):
        try:
            result_from_saved(data, "the result")
        except SavedResultError as exc:
            raise SavedRunsError(f"{source}: {exc}") from None
        label = data.get("label")
        key = label if isinstance(label, str) and label else source.stem
        return SavedRuns(str(source), "result", {key: {**data, "key": key}})
    raise SavedRunsError(
        f"{source} holds no load results (schema {schema!r:.60}); expected a --load-json "
        f"report, a baseline from --load-baseline-save, or a saved result"
    )


def _from_session(data: dict[str, Any], source: str) -> SavedRuns:
    tables = {}
    for name in ("machine", "commit"):
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            raise SavedRunsError(
                f"{source}: '{name}' must be an object, got {type(value).__name__}"
            )
        tables[name] = dict(value or {})
    runs = data.get("runs", [])
    if not isinstance(runs, list):
        raise SavedRunsError(f"{source}: 'runs' must be a list, got {type(runs).__name__}")
    saved = SavedRuns(
        source, "session", {}, tables["machine"], tables["commit"], str(data.get("created", ""))
    )
    saved.capacities, saved.damaged_capacities = _capacities(data.get("capacities", []), source)
    for index, run in enumerate(runs):
        if not isinstance(run, dict):
            raise SavedRunsError(f"{source}: runs[{index}] must be an object")
        key = next(
            (
                v
                for v in (run.get(k) for k in ("key", "nodeid", "label"))
                if isinstance(v, str) and v
            ),
            "",
        )
        if not key:
            continue
        saved.runs[key] = run
        try:
            LoadResult.from_dict({k: v for k, v in run.items() if k not in RUN_FIELDS})
        except (ValueError, RecursionError) as exc:
            saved.damaged[key] = f"runs[{index}] ({key!r}): {exc}"
    return saved


def _capacities(searches: Any, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The session's readable capacity searches, and what is wrong with the others."""
    from ..capacity import Capacity

    if not isinstance(searches, list):
        return [], [f"{source}: 'capacities' must be a list, got {type(searches).__name__}"]
    readable, damaged = [], []
    for index, search in enumerate(searches):
        try:
            Capacity.from_dict(search)
        except ValueError as exc:
            damaged.append(f"{source}: capacities[{index}]: {exc}")
            continue
        readable.append(dict(search))
    return readable, damaged
