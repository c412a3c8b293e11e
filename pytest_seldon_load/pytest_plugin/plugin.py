"""The pytest plugin: options, the `load` marker, marker budgets, and the run summary."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from ..durations import duration_option, number_option
from ..endpoint import PROTOCOLS, parse_header
from ..redact import SECRET_HEADERS, redact_url, register_secret
from ..report.terminal import write_summary
from . import capacities, masking
from .fixtures import (  # noqa: F401  (fixtures are found by name on the plugin module)
    RUNNER_KEY,
    engine_registry,
    load_marker_kwargs,
    load_run,
    replay_file,
    seldon_endpoint,
    seldon_local,
    seldon_local_server,
)
from .options import add_option, group, resolve_options
from .run_registry import attach_to_report, collect_from_report, session_runs
from .secured import add_secured_options, secured_ingress
from .waiting import close_wait_terminal, open_wait_terminal

OUTCOME_KEY = pytest.StashKey[str]()
FAILURE_KEY = pytest.StashKey[str]()
FAILURE_CHARS = 4000
"""Characters of a failed test's exception kept for the HTML and JSON reports."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    target = group(parser, "target")
    add_option(
        target,
        "--seldon-url",
        env="SELDON_LOAD_URL",
        type=_url,
        metavar="URL",
        help="base URL of the Seldon server under test (default: start a local "
        "MLServer); may include a route prefix such as /seldon/ns/name",
    )
    add_option(
        target,
        "--seldon-protocol",
        env="SELDON_LOAD_PROTOCOL",
        default="v2",
        choices=PROTOCOLS,
        help="protocol of --seldon-url: v2 (Open Inference), v1 (Seldon Core), "
        "legacy (seldon-server JS API) or grpc (Open Inference over gRPC, with "
        "--seldon-url grpc://HOST:PORT; with --seldon-deployment model/NAME, pipeline/ or "
        "experiment/, through the Core 2 mesh's gRPC; with neither, the local server's gRPC "
        "port). Default: v2",
    )
    add_option(
        target,
        "--seldon-model",
        env="SELDON_LOAD_MODEL",
        default="iris",
        metavar="NAME",
        help="model name for V2 paths (/v2/models/NAME/infer). Default: iris",
    )
    add_option(
        target,
        "--seldon-header",
        action="append",
        env="SELDON_LOAD_HEADERS",
        type=parse_header,
        metavar="NAME:VALUE",
        help="a header sent with every request to --seldon-url (gRPC metadata with "
        "--seldon-protocol grpc), repeatable (a mesh reached by URL needs Seldon-Model:NAME); "
        "in the environment, one per line",
    )
    add_secured_options(target)
    add_option(
        target,
        "--seldon-local-extra-latency",
        default=0.0,
        metavar="MS",
        type=number_option(allow_zero=True),
        help="make the local MLServer's model this many ms slower (to see a "
        "regression caught). Default: 0",
    )
    load = group(parser, "load")
    add_option(
        load,
        "--load-scale",
        default=1.0,
        metavar="FACTOR",
        type=number_option(),
        help="multiply every load duration (duration, warm-up, ramp) by FACTOR, "
        "e.g. 0.1 for a quick pre-merge run. Default: 1",
    )
    add_option(
        load,
        "--load-rate-scale",
        default=1.0,
        metavar="FACTOR",
        type=number_option(),
        help="multiply every load rate by FACTOR. Default: 1",
    )
    add_option(
        load,
        "--load-engine",
        default="embedded",
        metavar="NAME",
        help="what generates the load: embedded (the in-process open-loop engine), iago (an "
        "Iago pod in the cluster), kubernetes (a Job of --load-pods load pods), or an engine "
        "another package adds. Default: embedded",
    )
    add_option(
        load,
        "--load-connections",
        default=64,
        metavar="N",
        type=number_option(whole=True),
        help="keep-alive connections (and in-flight requests) per load run. Default: 64",
    )
    add_option(
        load,
        "--load-timeout",
        default="10s",
        metavar="DURATION",
        type=duration_option(),
        help="per-request timeout, e.g. 2s, 500ms or 1m30s. Default: 10s",
    )
    add_option(
        load,
        "--load-allow-lag",
        action="store_true",
        default=False,
        help="judge budgets even when the load generator fell behind its schedule "
        "(by default such a measurement is reported invalid)",
    )
    add_option(
        load,
        "--load-processes",
        default=1,
        metavar="N",
        type=number_option(whole=True),
        help="split each run's schedule over N worker processes of this machine (one "
        "merged result). Default: 1",
    )
    add_option(
        load,
        "--load-pods",
        default=3,
        metavar="N",
        type=number_option(whole=True),
        help="with --load-engine kubernetes: load pods of the Job each run makes. Default: 3",
    )
    add_option(
        load,
        "--load-image",
        default=None,
        metavar="IMAGE",
        help="with --load-engine kubernetes: the image of the load pods (docker/Dockerfile). "
        "Default: the released image",
    )


def _url(text: str) -> str:
    from .. import protocols

    schemes = sorted({s for name in protocols.names() for s in protocols.get(name).schemes})
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(
            f"must look like http://host[:port][/prefix] (schemes: {', '.join(schemes)}), "
            f"got {redact_url(text)!r}"
        )
    return text


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """First, so every plugin hook and fixture reads resolved option values."""
    resolve_options(config)
    _hide_secret_headers(config)
    secured_ingress(config)  # a bad TLS, proxy or token option stops the session here
    config.addinivalue_line(
        "markers",
        "load(rate=None, duration=None, warmup=None, budgets=None, **load_run_options): a load "
        "test; load_run takes its defaults from here, and budgets such as "
        "{'p99': '50ms', 'error_rate': 0.001} are checked after the test body.",
    )
    _check_engine_option(config)
    session_runs(config)
    open_wait_terminal(config)
    config.pluginmanager.register(_RunCollector(config), "seldon-load-runs")
    config.pluginmanager.register(masking, "seldon-load-masking")
    capacities.register(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    close_wait_terminal(config)


def _hide_secret_headers(config: pytest.Config) -> None:
    for name, value in config.getoption("seldon_header"):
        if name.lower() in SECRET_HEADERS and value:
            register_secret(value)


def _check_engine_option(config: pytest.Config) -> None:
    engine = config.getoption("load_engine")
    registry = engine_registry(config)
    if engine not in registry:
        raise pytest.UsageError(
            f"--load-engine: unknown engine {engine!r}; available: {', '.join(registry.names())}"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    try:
        load_marker_kwargs(item)
    except pytest.UsageError as exc:  # the test's own mistake: its message, not our code
        pytest.fail(str(exc), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After the test body: check the marker's budgets on every run the test made."""
    __tracebackhide__ = True
    outcome = yield
    budgets = load_marker_kwargs(item).get("budgets")
    if not budgets:
        return outcome
    from ..assertions import BudgetExceeded, InvalidMeasurement, budget_checks

    runner = item.stash.get(RUNNER_KEY, None)
    results = runner.results if runner is not None else []
    if not results:
        raise InvalidMeasurement(
            f"@pytest.mark.load declares budgets {budgets!r}, but the test ran no load: call the "
            f"load_run fixture in the test"
        )
    failures: list[AssertionError] = []
    texts: list[str] = []
    for result in results:
        missed = []
        for check in budget_checks(budgets):
            try:
                check(result)
            except AssertionError as failure:
                missed.append(failure)
        if missed:
            failures.extend(missed)
            texts.append(_one_description(result, missed))
    if failures:
        message = "marker budget failed:\n" + "\n\n".join(texts)
        if all(isinstance(f, InvalidMeasurement) for f in failures):
            raise InvalidMeasurement(message)
        raise BudgetExceeded(message)
    return outcome


def _one_description(result, failures: list[AssertionError]) -> str:
    """Each missed budget's headline, then the run described once (every assertion's
    message ends with the same description of the run)."""
    from ..assertions import describe_run

    described = describe_run(result)
    headlines = [str(f).removesuffix(described).rstrip("\n") for f in failures]
    return "\n".join(headlines) + "\n" + described


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[OUTCOME_KEY] = report.outcome
        if report.failed:
            item.stash[FAILURE_KEY] = _failure_text(call, report)
    elif report.when == "teardown":
        attach_to_report(
            item,
            report,
            item.stash.get(OUTCOME_KEY, "passed"),
            failure=item.stash.get(FAILURE_KEY, ""),
        )
    return report


def _failure_text(call: pytest.CallInfo, report: pytest.TestReport) -> str:
    """The failed test's exception as the reports show it (masked when they render it)."""
    text = call.excinfo.exconly() if call.excinfo is not None else report.longreprtext
    return text if len(text) <= FAILURE_CHARS else text[: FAILURE_CHARS - 1] + "…"


class _RunCollector:
    """Gathers every run's summary from the reports (on the xdist controller too)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and report.user_properties:
            collect_from_report(self.config, report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        runs = session_runs(self.config).runs
        if runs:
            write_summary(terminalreporter, runs, self.config.option.verbose)
