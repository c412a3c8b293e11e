"""The reporting side of the plugin: baselines, JSON/JUnit/HTML reports, live progress.

Runs are judged where they happen (on the xdist worker that ran the test, against the
baseline file it reads itself), and gathered where the session ends (on the controller, from
the teardown reports), which alone writes the baseline and the reports: one file each, whole.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..atomic import check_output_path
from ..baseline import (
    DEFAULT_DIRECTORY,
    DEFAULT_NAME,
    Baseline,
    BaselineError,
    SaveOutcome,
    baseline_path,
    check_name,
    commit_info,
    machine_differences,
    machine_info,
    now_iso,
    read_baseline,
    run_differences,
    save_baseline,
)
from ..judgement import Judgement
from ..redact import redact_text
from ..report.github import append_step_summary, comparisons
from . import fixtures
from .capacities import session_capacities
from .progress import LiveProgress, terminal_progress
from .run_registry import item_results, key_of, run_keys, session_runs

if TYPE_CHECKING:
    from ..regression import RegressionVerdict
    from ..result import LoadResult

# The statistics, the HTML and JSON writers and the results load numpy: they are imported
# where first used, so a session without load tests starts without them.

DEFAULT_CRITERIA = (("p99", "10%"),)


class BaselineWarning(pytest.PytestWarning):
    """A comparison with the baseline was skipped or may mislead (other machine, other rate)."""


def _min_detectable(text: str) -> float:
    from ..regression import parse_min_detectable

    try:
        return parse_min_detectable(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _criterion(text: str) -> tuple[str, str]:
    from ..regression import METRICS, parse_tolerance

    metric, separator, tolerance = text.partition(":")
    metric = metric.strip()
    if not separator or metric not in METRICS:
        raise argparse.ArgumentTypeError(
            f"expected METRIC:TOLERANCE like p99:10%, with METRIC one of {', '.join(METRICS)}; "
            f"got {text!r}"
        )
    try:
        parse_tolerance(metric, tolerance.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return metric, tolerance.strip()


def _name(option: str):
    def parse(text: str) -> str:
        try:
            return check_name(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{option}: {exc}") from None

    return parse


def pytest_addoption(parser: pytest.Parser) -> None:
    from .options import add_option, group

    baselines = group(parser, "baselines")
    reports = group(parser, "reports")
    add_option(
        baselines,
        "--load-baseline-save",
        nargs="?",
        const=DEFAULT_NAME,
        default=None,
        metavar="NAME",
        type=_name("--load-baseline-save"),
        help=f"save every load run of the session as baseline NAME (default name: "
        f"{DEFAULT_NAME}), written at the end of the session. Use the = form: "
        f"--load-baseline-save=main",
    )
    add_option(
        baselines,
        "--load-baseline-compare",
        nargs="?",
        const=DEFAULT_NAME,
        default=None,
        metavar="NAME",
        type=_name("--load-baseline-compare"),
        help=f"compare every load run with its run in baseline NAME (default name: "
        f"{DEFAULT_NAME}); a significant change beyond --load-baseline-fail fails the test",
    )
    add_option(
        baselines,
        "--load-baseline-dir",
        default=DEFAULT_DIRECTORY,
        metavar="DIR",
        help=f"where baselines are kept, one NAME.json each. Default: {DEFAULT_DIRECTORY}",
    )
    add_option(
        baselines,
        "--load-baseline-fail",
        action="append",
        metavar="METRIC:TOLERANCE",
        type=_criterion,
        help="what counts as a regression, repeatable: METRIC (p50, p90, p95, p99, p999, "
        "error_rate, throughput) significantly worse by more than TOLERANCE (10%% relative; "
        "5ms; for error_rate 0.5%% means points). Default: p99:10%%",
    )
    add_option(
        baselines,
        "--load-baseline-min-detectable",
        metavar="PCT",
        type=_min_detectable,
        help="fail a baseline comparison whose runs could not have detected a worsening of "
        "PCT (10%% relative; for error_rate, points) 95 times in 100: a pass of a short, "
        "noisy run then says how little it shows. Default: no minimum",
    )
    add_option(
        baselines,
        "--load-baseline-missing",
        default="warn",
        choices=("warn", "error"),
        help="when the compared baseline is missing or unreadable: warn and compare nothing "
        "(default), or stop with an error",
    )
    add_option(
        reports,
        "--load-json",
        default=None,
        metavar="PATH",
        help="write every load result of the session, histograms included, to PATH",
    )
    add_option(
        reports,
        "--load-html",
        default=None,
        metavar="PATH",
        help="write one self-contained HTML report with charts of every load run to PATH",
    )
    add_option(
        reports,
        "--load-no-progress",
        action="store_true",
        default=False,
        help="no live progress line while a load runs (it shows only on a terminal, and not "
        "with -q, under CI or in xdist workers)",
    )


REPORTING_KEY = pytest.StashKey["Reporting"]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Last, so the terminal reporter exists (live progress writes beside it)."""
    reporting = Reporting(config)
    config.stash[REPORTING_KEY] = reporting
    config.pluginmanager.register(reporting, "seldon-load-reporting")


def pytest_unconfigure(config: pytest.Config) -> None:
    reporting = config.stash.get(REPORTING_KEY, None)
    if reporting is not None:
        reporting.close()
        config.pluginmanager.unregister(reporting)
        del config.stash[REPORTING_KEY]


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class Reporting:
    """Per session: the baseline compared against, the criteria, and what to write at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.directory = Path(config.getoption("load_baseline_dir"))
        self.save_name: str | None = config.getoption("load_baseline_save")
        self.compare_name: str | None = config.getoption("load_baseline_compare")
        self.criteria: list[tuple[str, str]] = list(
            config.getoption("load_baseline_fail") or DEFAULT_CRITERIA
        )
        self.min_detectable: float | None = config.getoption("load_baseline_min_detectable")
        self.json_path: str | None = config.getoption("load_json")
        self.html_path: str | None = config.getoption("load_html")
        self.baseline: Baseline | None = None
        self.item: pytest.Item | None = None
        self.notes: list[tuple[str, bool]] = []
        self.failed_writes = False
        self.started = now_iso()
        outputs = {"--load-json": self.json_path, "--load-html": self.html_path}
        if self.save_name:
            outputs["--load-baseline-save"] = str(baseline_path(self.directory, self.save_name))
        for option, path in outputs.items():
            if path and not _is_worker(config):
                try:  # now, not after the session's load has run
                    check_output_path(path, option)
                except OSError as exc:
                    raise pytest.UsageError(str(exc)) from None
        session_runs(config).keep_histograms = bool(
            self.save_name or self.json_path or self.html_path
        )
        if self.compare_name:
            self._load_baseline(self.compare_name)
        self.lookup_registered = bool(self.compare_name)
        if self.lookup_registered:  # for assert_no_regression(result) without a baseline
            from ..regression import use_baseline_lookup

            use_baseline_lookup(self.lookup)
        if self.min_detectable is not None:
            from ..regression import require_detectable

            require_detectable(self.min_detectable)
        self.progress: LiveProgress | None = None
        self.progress = terminal_progress(config)
        if self.progress is not None:
            config.stash[fixtures.COMPANION_KEY] = self.progress_companion

    # --- the baseline compared against ------------------------------------------------
    def _load_baseline(self, name: str) -> None:
        worker = _is_worker(self.config)
        try:
            self.baseline = read_baseline(baseline_path(self.directory, name), name)
        except BaselineError as exc:
            if self.config.getoption("load_baseline_missing") == "error":
                raise pytest.UsageError(f"--load-baseline-compare: {exc}") from None
            if not worker:
                self.config.issue_config_time_warning(
                    BaselineWarning(f"{exc}; runs are not compared with a baseline"), stacklevel=2
                )
            return
        differences = machine_differences(self.baseline.machine, machine_info())
        if differences and not worker:
            self.config.issue_config_time_warning(
                BaselineWarning(
                    f"{self.baseline.describe()} was measured on another machine "
                    f"({'; '.join(differences)}): a change may be the machine's, not the "
                    f"model's"
                ),
                stacklevel=2,
            )

    def lookup(self, result: LoadResult) -> tuple[LoadResult, str] | None:
        """The baseline run of `result` (for assert_no_regression(result)), or None."""
        if self.baseline is None:
            return None
        key = key_of(self.item, result) if self.item is not None else None
        key = key or result.label
        saved = self._saved(key)
        if saved is None:
            return None
        return saved, self.baseline.name

    def _saved(self, key: str) -> LoadResult | None:
        assert self.baseline is not None
        key = redact_text(key)  # baselines hold masked test ids (run_registry._entry)
        try:
            saved = self.baseline.result(key)
        except BaselineError as exc:
            self._warn(f"{exc}; not compared")
            return None
        if saved is None:
            self._warn(
                f"baseline '{self.baseline.name}' has no run {key!r} (a new test, or one "
                f"renamed): not compared"
            )
        return saved

    def _warn(self, text: str) -> None:
        """A BaselineWarning located at the running test (its file and line, its node id in
        the warnings summary), not at this plugin's code."""
        item = self.item
        if item is None:
            warnings.warn(BaselineWarning(text), stacklevel=3)
            return
        prefix = "" if item.nodeid in text else f"{item.nodeid}: "
        item.warn(BaselineWarning(prefix + text))

    # --- judging each test's runs --------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        self.item = item
        try:
            return (yield)
        finally:
            self.item = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        """After the test body: compare each run with the baseline on every criterion."""
        __tracebackhide__ = True
        try:
            outcome = yield
        except Exception:
            self._compare(item)
            raise
        failures = self._compare(item)
        if failures:
            from ..regression import PerformanceRegression

            raise PerformanceRegression("\n\n".join(failures))
        return outcome

    def _compare(self, item: pytest.Item) -> list[str]:
        if self.baseline is None:
            return []
        failures = []
        results = item_results(item)
        for result, key in zip(results, run_keys(item.nodeid, results), strict=True):
            saved = self._saved(key)
            if saved is None:
                continue
            differences = run_differences(saved, result)
            if differences:
                self._warn(
                    f"{key}: the baseline run was set up differently "
                    f"({'; '.join(differences)}): the comparison compares the set-ups too"
                )
            failures.extend(self._judge(result, saved, key))
        return failures

    def _judge(self, result: LoadResult, saved: LoadResult, key: str) -> list[str]:
        """Judge each criterion with `judge_regression`, the rule assert_no_regression and
        ``seldon-load compare`` apply too; what a test body already compared is not redone."""
        from ..assertions import describe_run
        from ..regression import judge_regression

        assert self.baseline is not None
        name = self.baseline.name
        done = {
            judgement.comparison.get("metric")
            for judgement in map(Judgement.from_dict, result.judgements)
            if judgement.comparison and judgement.comparison.get("baseline_name") == name
        }
        regressions: list[RegressionVerdict] = []
        for metric, tolerance in self.criteria:
            if metric in done:
                continue
            verdict = judge_regression(
                saved,
                result,
                metric,
                tolerance,
                baseline_name=name,
                min_detectable=self.min_detectable,
            )
            if verdict.comparison is None:
                self._warn(f"{key}: not compared with baseline '{name}': {verdict.reason}")
                continue
            result.judgements.append(verdict.judgement)
            if verdict.underpowered:
                regressions.append(verdict)
            elif verdict.invalid:
                self._warn(
                    f"{key}: {metric} not judged against baseline '{name}': {verdict.reason}"
                )
            elif verdict.is_regression:
                regressions.append(verdict)
        if not regressions:
            return []
        lines = [verdict.message() for verdict in regressions]
        return [f"{key}:\n" + "\n".join(lines) + "\n" + describe_run(result)]

    # --- live progress ----------------------------------------------------------------
    def progress_companion(self, request: pytest.FixtureRequest):
        """A progress line for a run of `request`'s test (the fixtures' companion seam)."""
        if self.progress is None:
            return None
        return self.progress.companion(request.node.name)

    # --- the end of the session ---------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _is_worker(self.config):
            return
        runs = session_runs(self.config).runs
        if not (
            self.save_name
            or self.json_path
            or self.html_path
            or os.environ.get("GITHUB_STEP_SUMMARY")
        ):
            return
        machine = machine_info()
        commit = commit_info(self.config.rootpath)
        if self.save_name:
            self._save(runs, machine, commit, exitstatus)
        if self.json_path:
            from ..report.json_report import session_document, write_session_json

            self._write(
                "JSON report",
                lambda: write_session_json(
                    self.json_path,
                    session_document(
                        runs, machine, commit, now_iso(), session_capacities(self.config)
                    ),
                ),
            )
        if self.html_path:
            self._write("HTML report", lambda: self._write_html(runs, machine, commit))
        self._write(
            "GitHub step summary",
            lambda: append_step_summary(runs, capacities=session_capacities(self.config)),
            quiet=True,
        )
        if self.failed_writes and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _save(self, runs, machine, commit, exitstatus: int) -> None:
        assert self.save_name is not None
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.notes.append(
                (
                    f"baseline '{self.save_name}' not saved: the session was "
                    f"interrupted, and a partial baseline would replace a whole one",
                    True,
                )
            )
            return
        if not runs:
            self.notes.append((f"baseline '{self.save_name}' not saved: no load ran", True))
            return
        path = baseline_path(self.directory, self.save_name)
        outcome: list[SaveOutcome] = []

        def save() -> None:
            assert self.save_name is not None
            outcome.append(
                save_baseline(path, self.save_name, runs, machine, commit, started=self.started)
            )

        if not self._write(f"baseline '{self.save_name}'", save, quiet=True):
            return
        done = outcome[0]
        text = f"baseline '{self.save_name}' saved to {path}: {len(done.measured)} runs"
        if done.kept:
            text += f", and {len(done.kept)} kept from earlier saves (not measured this session)"
        self.notes.append((text, False))
        if done.concurrent:
            self.notes.append(
                (
                    f"  another session saved {len(done.concurrent)} of these runs while this "
                    f"one ran; this session's replaced them: {', '.join(done.concurrent)}",
                    True,
                )
            )
        if done.replaced_unreadable:
            self.notes.append((f"  replaced: {done.replaced_unreadable}", True))
        for reason in done.skipped:
            kept = " (its earlier run is kept)" if reason.split(" (")[0] in done.kept else ""
            self.notes.append((f"  not in the baseline: {reason}{kept}", True))

    def _write(self, what: str, write, quiet: bool = False) -> bool:
        try:
            written = write()
        except (OSError, BaselineError) as exc:
            self.failed_writes = True
            self.notes.append((f"{what} NOT written: {exc}", True))
            return False
        if written is not None and not quiet:
            self.notes.append((f"{what} written to {written}", False))
        return True

    def _write_html(self, runs, machine, commit) -> Path:
        assert self.html_path is not None
        overlays: dict[str, LoadResult] = {}
        if self.baseline is not None:
            for run in runs:
                key = str(run.get("key", ""))
                if key in self.baseline.tests:
                    try:
                        saved = self.baseline.result(key)
                    except BaselineError:  # damaged: already warned about during the test
                        continue
                    if saved is not None:
                        overlays[key] = saved
        from ..report.html import render_report, write_report

        page = render_report(
            runs,
            overlays,
            created=now_iso(),
            machine=machine,
            commit=commit,
            capacities=session_capacities(self.config),
        )
        return write_report(self.html_path, page)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """Comparisons and what was written; under -q without the heading, under -qq only
        what went wrong (a report not written, a baseline not saved)."""
        verbosity = self.config.option.verbose
        runs = session_runs(self.config).runs
        compared = [(run, c) for run in runs for c in comparisons(run)]
        notes = self.notes
        if verbosity <= -2:
            compared = []
            notes = [(text, bad) for text, bad in notes if bad]
        if not (compared or notes):
            return
        if verbosity >= 0:
            terminalreporter.write_sep("-", "seldon-load baseline and reports")
        for run, comparison in compared:
            bad = comparison.get("verdict") == "regression"
            short = str(run.get("key") or run.get("nodeid", "?")).split("::", 1)[-1]
            terminalreporter.write_line(f"{short}: {comparison.get('text')}", red=bad, bold=bad)
        for text, bad in notes:
            terminalreporter.write_line(text, red=bad)

    def close(self) -> None:
        if self.lookup_registered:
            from ..regression import drop_baseline_lookup

            drop_baseline_lookup(self.lookup)
        if self.min_detectable is not None:
            from ..regression import drop_required_detectable

            drop_required_detectable(self.min_detectable)
        if self.progress is not None:
            self.progress.close()
            self.progress = None
