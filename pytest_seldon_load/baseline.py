"""Baselines: a session's load runs saved under a name, for later runs to be compared against.

One file per name (``.load-baselines/NAME.json``) holds, per test run, the whole result: its
HDR histograms, its per-second windows (p50/p99 of each second and their encoded histograms),
counts and rates. The file also says where and from what code it was measured (machine and
commit, as pytest-benchmark records them), because a comparison across machines or rates
compares the machines, not the model, and should say so.

A baseline is written once, at the end of the session (on the xdist controller, which has
every worker's runs), to a temporary file renamed over the old one: an interrupted save
leaves the previous baseline intact, never half a file.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .result import LoadResult

SCHEMA = "pytest-seldon-load/baseline/1"
DEFAULT_NAME = "default"
DEFAULT_DIRECTORY = ".load-baselines"
RUN_FIELDS = ("nodeid", "key", "verdict")
"""What a session entry adds to a result's own dict."""
MACHINE_FIELDS = ("node", "processor", "cpu_count", "machine", "python", "loop")
"""The machine facts whose change makes a comparison suspect."""
GIT_TIMEOUT_S = 5.0

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class BaselineError(Exception):
    """A baseline could not be used; the message says which file and what to do."""


class BaselineMissing(BaselineError):
    """No file for that name."""


class BaselineUnreadable(BaselineError):
    """The file exists but is not a baseline (truncated, edited, another format)."""


def check_name(name: str) -> str:
    """Names become file names: letters, digits, '_', '.', '-'; no paths."""
    if not _NAME.match(name or "") or name in (".", ".."):
        raise ValueError(
            f"baseline name {name!r}: use letters, digits, '_', '.' or '-' (like main or "
            f"release-1.2), starting with a letter or digit"
        )
    return name


def baseline_path(directory: str | os.PathLike[str], name: str) -> Path:
    return Path(directory) / f"{check_name(name)}.json"


# --- where and from what it was measured ------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _event_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    return f"uvloop {uvloop.__version__}"


def machine_info() -> dict[str, Any]:
    """The machine a run was measured on: host, CPU, Python, event loop."""
    return {
        "node": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python_implementation": platform.python_implementation(),
        "python": platform.python_version(),
        "loop": _event_loop(),
    }


def _git(directory: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    )
    return completed.stdout.strip()


def commit_info(directory: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """The code a run measured: git commit, branch, dirty flag, commit time.

    Without git (not installed, not a repository) the CI's variables are used if set, else
    the reason is recorded: a baseline is still worth saving.
    """
    where = Path(directory)
    try:
        commit = _git(where, "rev-parse", "HEAD")
        branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
        dirty = bool(_git(where, "status", "--porcelain", "--untracked-files=no"))
        time = _git(where, "log", "-1", "--format=%cI")
        project = Path(_git(where, "rev-parse", "--show-toplevel")).name
    except FileNotFoundError:
        return _commit_from_environment("git is not installed")
    except subprocess.TimeoutExpired:
        return _commit_from_environment("git did not answer")
    except subprocess.CalledProcessError as exc:
        reason = (exc.stderr or "").strip().splitlines()
        return _commit_from_environment(reason[0] if reason else "git failed")
    return {
        "id": commit,
        "branch": None if branch == "HEAD" else branch,
        "dirty": dirty,
        "time": time,
        "project": project,
    }


def _commit_from_environment(reason: str) -> dict[str, Any]:
    sha = os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA")
    branch = os.environ.get("GITHUB_REF_NAME") or os.environ.get("CI_COMMIT_REF_NAME")
    return {"id": sha, "branch": branch, "dirty": None, "time": None, "error": reason}


def describe_commit(commit: Mapping[str, Any]) -> str:
    if not commit.get("id"):
        return f"unknown commit ({commit.get('error', 'no git')})"
    text = str(commit["id"])[:12]
    if commit.get("branch"):
        text += f" on {commit['branch']}"
    if commit.get("dirty"):
        text += " (with uncommitted changes)"
    return text


def machine_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two machines, as "field: saved → current"."""
    differences = []
    for name in MACHINE_FIELDS:
        before, now = saved.get(name), current.get(name)
        if name == "python":
            before = ".".join(str(before).split(".")[:2]) if before else before
            now = ".".join(str(now).split(".")[:2]) if now else now
        if before is not None and before != now:
            differences.append(f"{name}: {before} → {now}")
    return differences


def run_differences(saved: LoadResult, current: LoadResult) -> list[str]:
    """How two runs of one test were set up differently (rate, arrivals, engine processes)."""
    differences = []
    if abs(saved.target_rate - current.target_rate) > 1e-6 * max(1.0, saved.target_rate):
        differences.append(f"target rate {saved.target_rate:g}/s → {current.target_rate:g}/s")
    if saved.arrival and current.arrival and saved.arrival != current.arrival:
        differences.append(f"arrivals {saved.arrival} → {current.arrival}")
    if saved.processes != current.processes:
        differences.append(f"engine processes {saved.processes} → {current.processes}")
    return differences


# --- the file ---------------------------------------------------------------------------


@dataclass
class Baseline:
    """A saved baseline: its runs by key, and where and from what code they were measured."""

    name: str
    path: Path
    created: str
    machine: dict[str, Any]
    commit: dict[str, Any]
    tests: dict[str, dict[str, Any]]
    _results: dict[str, LoadResult] = field(default_factory=dict, repr=False)

    def result(self, key: str) -> LoadResult | None:
        """The saved run for `key` (parsed once), or None when the baseline has none."""
        if key not in self.tests:
            return None
        if key not in self._results:
            self._results[key] = LoadResult.from_dict(self.tests[key]["result"])
        return self._results[key]

    def describe(self) -> str:
        return (
            f"baseline '{self.name}' ({len(self.tests)} runs, saved {self.created} from "
            f"{describe_commit(self.commit)} on {self.machine.get('node', '?')})"
        )


def build_baseline(
    name: str,
    runs: Iterable[Mapping[str, Any]],
    machine: Mapping[str, Any],
    commit: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """The baseline document for a session's runs, and the keys left out (with why).

    Interrupted runs and runs whose generator fell behind are left out: their numbers say
    more about the generator than the server.
    """
    tests: dict[str, Any] = {}
    skipped: list[str] = []
    for run in runs:
        key = str(run.get("key") or run.get("nodeid") or run.get("label") or "")
        if not key:
            continue
        if run.get("verdict") == "interrupted" or run.get("interrupted"):
            skipped.append(f"{key} (interrupted)")
            continue
        if not run.get("kept_up", True) and not run.get("lag_accepted"):
            skipped.append(f"{key} (the generator fell behind: invalid)")
            continue
        result = {k: v for k, v in run.items() if k not in RUN_FIELDS}
        tests[key] = {
            "nodeid": run.get("nodeid", key),
            "verdict": run.get("verdict"),
            "result": result,
        }
    document = {
        "schema": SCHEMA,
        "name": check_name(name),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": dict(machine),
        "commit": dict(commit),
        "tests": tests,
    }
    return document, skipped


def write_baseline(path: str | os.PathLike[str], document: Mapping[str, Any]) -> Path:
    """Write atomically: readers see the old baseline or the new one, never a part."""
    return atomic_write_json(path, document)


def read_baseline(path: str | os.PathLike[str], name: str | None = None) -> Baseline:
    """Read and check a baseline file; BaselineMissing or BaselineUnreadable say why not."""
    target = Path(path)
    label = name or target.stem
    save_hint = f"save it with --load-baseline-save={label}"
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        siblings = (
            sorted(p.stem for p in target.parent.glob("*.json")) if target.parent.is_dir() else []
        )
        known = f"; baselines in {target.parent}: {', '.join(siblings)}" if siblings else ""
        raise BaselineMissing(
            f"baseline '{label}' not found: {target} does not exist ({save_hint}){known}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise BaselineUnreadable(f"baseline '{label}' is unreadable: {target}: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineUnreadable(
            f"baseline '{label}' is unreadable: {target} is not valid JSON ({exc.msg} at line "
            f"{exc.lineno} column {exc.colno}; truncated or edited?); {save_hint} again"
        ) from None
    return parse_baseline(data, target, label)


def parse_baseline(data: Any, path: Path, label: str) -> Baseline:
    def unreadable(problem: str) -> BaselineUnreadable:
        return BaselineUnreadable(
            f"baseline '{label}' is unreadable: {path}: {problem}; "
            f"save it again with --load-baseline-save={label}"
        )

    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise unreadable(f"not a baseline (schema {found!r}, expected {SCHEMA!r})")
    tests = data.get("tests")
    if not isinstance(tests, dict):
        raise unreadable("it holds no 'tests' table")
    baseline = Baseline(
        name=str(data.get("name") or label),
        path=path,
        created=str(data.get("created", "?")),
        machine=dict(data.get("machine") or {}),
        commit=dict(data.get("commit") or {}),
        tests=tests,
    )
    for key in tests:
        try:
            if not isinstance(tests[key], dict):
                raise ValueError("not a table")
            baseline.result(key)
        except Exception as exc:  # a damaged histogram fails in zlib or base64 as well
            raise unreadable(f"the run {key!r} is damaged ({exc})") from None
    return baseline
