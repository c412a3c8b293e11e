"""Every load result of a session in one JSON file, histograms included (``--load-json``).

It is the input of ``seldon-load compare`` and ``seldon-load report``, which also read the
other two saved forms: a baseline file, and a single result (``result.to_json()``).
"""

from __future__ import annotations

import json
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

SCHEMA = "pytest-seldon-load/session/1"


def session_document(
    runs: Sequence[Mapping[str, Any]],
    machine: Mapping[str, Any],
    commit: Mapping[str, Any],
    created: str,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created": created,
        "machine": dict(machine),
        "commit": dict(commit),
        "runs": [dict(run) for run in runs],
    }


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

    def result(self, key: str) -> LoadResult:
        run = self.runs[key]
        return LoadResult.from_dict({k: v for k, v in run.items() if k not in RUN_FIELDS})


class SavedRunsError(ValueError):
    """A file that is none of the saved forms, or is damaged."""


def read_saved_runs(path: str | os.PathLike[str]) -> SavedRuns:
    """A session JSON, a baseline, or one result, as SavedRuns; SavedRunsError if none."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise SavedRunsError(f"cannot read {source} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SavedRunsError(f"{source} is not a text file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SavedRunsError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}; truncated?)"
        ) from None
    schema = data.get("schema") if isinstance(data, dict) else None
    try:
        if schema == SCHEMA:
            return _from_session(data, str(source))
        if schema == BASELINE_SCHEMA:
            baseline = parse_baseline(data, source, source.stem)
            runs = {
                key: {
                    **entry["result"],
                    "nodeid": entry.get("nodeid", key),
                    "key": key,
                    "verdict": entry.get("verdict"),
                }
                for key, entry in baseline.tests.items()
            }
            return SavedRuns(
                str(source), "baseline", runs, baseline.machine, baseline.commit, baseline.created
            )
        if schema == RESULT_SCHEMA:
            LoadResult.from_dict(data)
            key = str(data.get("label") or source.stem)
            return SavedRuns(str(source), "result", {key: {**data, "key": key}})
    except BaselineError as exc:
        raise SavedRunsError(str(exc)) from None
    except Exception as exc:  # a damaged histogram fails in zlib or base64 as well
        raise SavedRunsError(f"{source}: damaged ({exc})") from None
    raise SavedRunsError(
        f"{source} holds no load results (schema {schema!r}); expected a --load-json report, "
        f"a baseline from --load-baseline-save, or a saved result"
    )


def _from_session(data: dict[str, Any], source: str) -> SavedRuns:
    saved = SavedRuns(
        source,
        "session",
        {},
        dict(data.get("machine") or {}),
        dict(data.get("commit") or {}),
        str(data.get("created", "")),
    )
    for run in data.get("runs", []):
        key = str(run.get("key") or run.get("nodeid") or run.get("label") or "")
        if key:
            LoadResult.from_dict({k: v for k, v in run.items() if k not in RUN_FIELDS})
            saved.runs[key] = run
    return saved
