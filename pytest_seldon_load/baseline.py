"""Baselines: a session's load runs saved under a name, for later runs to be compared against.

One file per name (``.load-baselines/NAME.json``) holds, per test run, the whole result: its
HDR histograms, its per-second windows (p50/p99 of each second and their encoded histograms),
counts and rates. The file also says where and from what code it was measured (machine and
commit, as pytest-benchmark records them), because a comparison across machines or rates
compares the machines, not the model, and should say so.

A baseline is written once, at the end of the session (on the xdist controller, which has
every worker's runs), to a temporary file renamed over the old one: an interrupted save
leaves the previous baseline intact, never half a file.

A save never leaves a baseline with less than it had: the session's runs are merged into the
saved ones, under a lock file, so a session that ran only some tests (deselected, skipped,
lagged) keeps the others' runs, and two sessions saving the same name at once both land.
Each run keeps when, from what commit and on what machine it was measured.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write_json
from .saved_result import SavedResultError, checked_result, load_json, result_from_saved

if TYPE_CHECKING:
    from .result import LoadResult

SCHEMA = "pytest-seldon-load/baseline/1"
DEFAULT_NAME = "default"
DEFAULT_DIRECTORY = ".load-baselines"
RUN_FIELDS = ("nodeid", "key", "verdict")
"""What a session entry adds to a result's own dict."""
ENTRY_ORIGIN_FIELDS = ("created", "commit", "machine")
"""What a baseline entry says of where its run came from (runs merged from earlier saves)."""
LOCK_TIMEOUT_S = 60.0
"""How long a save waits for another session's save of the same baseline."""
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
    damaged: dict[str, str] = field(default_factory=dict, repr=False)
    """Runs that cannot be used, by key, with what is wrong (the rest of the file can)."""
    _parsed: dict[str, LoadResult] = field(default_factory=dict, repr=False)
    """Runs read when the file was, not yet fully checked (`result` finishes that once)."""

    def result(self, key: str) -> LoadResult | None:
        """The saved run for `key` (parsed and checked once), or None when the baseline has
        none; BaselineUnreadable, naming the file and field, when that run is damaged."""
        if key not in self.tests:
            return None
        if key not in self._results and key not in self.damaged:
            entry = self.tests[key]
            where = f"tests[{key!r}].result"
            parsed = self._parsed.pop(key, None)
            try:
                self._results[key] = (
                    result_from_saved(entry.get("result"), where)
                    if parsed is None
                    else checked_result(parsed, where)
                )
            except SavedResultError as exc:
                self.damaged[key] = str(exc)
        if key in self.damaged:
            raise BaselineUnreadable(
                f"baseline '{self.name}' ({self.path}): the run {key!r} is damaged: "
                f"{self.damaged[key]}; save it again with --load-baseline-save={self.name}"
            )
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
    created = now_iso()
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
            "created": created,
            "commit": dict(commit),
            "machine": dict(machine),
            "result": result,
        }
    document = {
        "schema": SCHEMA,
        "name": check_name(name),
        "created": created,
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
    return parse_baseline_text(text, target, label)


def parse_baseline_text(text: str, path: Path, label: str) -> Baseline:
    """The baseline in a file's text (`path` and `label` name it in messages): what
    `read_baseline` does once the file is read, kept apart so it can be exercised alone."""
    try:
        data = load_json(text, str(path))
    except SavedResultError as exc:
        raise BaselineUnreadable(
            f"baseline '{label}' is unreadable: {exc}; "
            f"save it with --load-baseline-save={label} again"
        ) from None
    return parse_baseline(data, path, label)


def parse_baseline(data: Any, path: Path, label: str) -> Baseline:
    """The baseline in a parsed document. A document that is not one is BaselineUnreadable;
    a damaged run is kept out (`Baseline.damaged`), the others stay usable."""

    from .result import LoadResult  # numpy: loaded when a baseline is read, not at start

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
    tables = {}
    for name in ("machine", "commit"):
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            raise unreadable(f"'{name}' must be an object, got {type(value).__name__}")
        tables[name] = dict(value or {})
    saved_name = data.get("name")
    baseline = Baseline(
        name=saved_name if isinstance(saved_name, str) and saved_name else label,
        path=path,
        created=str(data.get("created", "?")),
        machine=tables["machine"],
        commit=tables["commit"],
        tests=tests,
    )
    for key, entry in tests.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("result"), dict):
            baseline.damaged[key] = f"tests[{key!r}]: expected an object with a 'result' object"
            continue
        try:
            baseline._parsed[key] = LoadResult.from_dict(entry["result"])
        except (ValueError, RecursionError) as exc:
            baseline.damaged[key] = f"tests[{key!r}].result: {exc}"
    return baseline


# --- saving: merged, under a lock ---------------------------------------------------------


@dataclass(frozen=True)
class SaveOutcome:
    """What a save did: the runs it wrote, the runs it kept from before, and why."""

    path: Path
    measured: list[str]
    kept: list[str]
    """Runs of earlier saves this session did not measure (again), kept as they were."""
    skipped: list[str]
    """This session's runs left out, with why (interrupted, lagged)."""
    concurrent: list[str] = field(default_factory=list)
    """Runs another session saved while this one ran and this one measured too: this
    session's replaced them (the last save wins, run by run)."""
    replaced_unreadable: str = ""
    """Why the previous file could not be merged (it was damaged) and was replaced."""


def save_baseline(
    path: str | os.PathLike[str],
    name: str,
    runs: Iterable[Mapping[str, Any]],
    machine: Mapping[str, Any],
    commit: Mapping[str, Any],
    *,
    started: str = "",
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> SaveOutcome:
    """Merge a session's runs into the baseline at `path` and write it atomically.

    Under a lock on ``.NAME.json.lock`` the file is read again: its runs this session did
    not measure are kept, the others replaced. `started` (when the session began, as
    `now_iso` gives it) names the runs another session saved meanwhile that this one
    replaced. Raises BaselineError when the lock is not had within `lock_timeout`, OSError
    when the file cannot be written.
    """
    target = Path(path)
    document, skipped = build_baseline(name, runs, machine, commit)
    measured = list(document["tests"])
    with _locked(target, lock_timeout):
        previous, unreadable = _previous_tests(target, name)
        kept = [key for key in previous if key not in document["tests"]]
        concurrent = [
            key
            for key in measured
            if started and key in previous and str(previous[key].get("created", "")) >= started
        ]
        document["tests"] = {key: previous[key] for key in kept} | document["tests"]
        write_baseline(target, document)
    return SaveOutcome(target, measured, kept, skipped, concurrent, unreadable)


def now_iso() -> str:
    """The time as baselines record it (UTC, to the second): comparable as text."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _previous_tests(target: Path, name: str) -> tuple[dict[str, Any], str]:
    """The entries of the baseline saved at `target` (each with where it came from), or none
    and why when it is missing or cannot be merged."""
    try:
        baseline = read_baseline(target, name)
    except BaselineMissing:
        return {}, ""
    except BaselineUnreadable as exc:
        return {}, str(exc)
    tests: dict[str, Any] = {}
    for key, entry in baseline.tests.items():
        if key in baseline.damaged:
            continue
        origin = {
            "created": baseline.created,
            "commit": baseline.commit,
            "machine": baseline.machine,
        }
        tests[key] = {**origin, **{k: v for k, v in entry.items() if v is not None}}
    return tests, ""


@contextlib.contextmanager
def _locked(target: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on the baseline's lock file (released if the process dies)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(f".{target.name}.lock")
    with open(lock_path, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                raise BaselineError(
                    f"baseline {target}: another session has held {lock_path} for "
                    f"{timeout:g}s; not saved"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(handle)


def _try_lock(handle: Any) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(handle: Any) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
