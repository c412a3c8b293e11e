"""The fixtures users write: the server under test, replay files, and load runs."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..endpoint import SeldonEndpoint
from ..engines import ENGINES, EngineContext, EngineError, EngineRegistry
from ..interrupts import RunInterrupted
from ..replay import ReplayFile, ReplayRequest, parse_line, write_replay
from .run_registry import register_result
from .secured import secured_ingress
from .waiting import run_turn

if TYPE_CHECKING:
    from ..result import LoadResult

COMPANION_KEY: pytest.StashKey[Callable[[pytest.FixtureRequest], Any]] = pytest.StashKey()
"""Where a plugin stashes a factory of engine companions (the live progress line, say): called
with the test's request, it returns an async context manager entered around the run, or None."""

REGISTRY_KEY = pytest.StashKey[EngineRegistry]()


def engine_registry(config: pytest.Config) -> EngineRegistry:
    """The session's engines: the built-in and entry-point ones, plus those its plugins and
    conftest.py add through the ``pytest_seldon_load_engines(config, registry)`` hook."""
    registry = config.stash.get(REGISTRY_KEY, None)
    if registry is None:
        registry = config.stash[REGISTRY_KEY] = ENGINES.copy()
        config.hook.pytest_seldon_load_engines(config=config, registry=registry)
    return registry


IRIS_FEATURES = tuple({"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5))
"""The iris example of Seldon's original replay script: four features, each uniform in 0..5."""


@functools.cache
def load_run_keys() -> frozenset[str]:
    """What load_run takes besides `label`: the plan's options (read when first needed: the
    plan's modules load numpy, which a session without load tests never needs)."""
    from ..plan import RUN_OPTIONS

    return (RUN_OPTIONS - {"label"}) | {"engine", "allow_lag"}


def marker_keys() -> frozenset[str]:
    return load_run_keys() | {"budgets"}


def load_marker_kwargs(item: pytest.Item) -> dict[str, Any]:
    """The `load` marker's arguments, closest marker winning; unknown names are an error."""
    merged: dict[str, Any] = {}
    for marker in reversed(list(item.iter_markers("load"))):
        if marker.args:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.load takes keyword arguments only "
                f"(rate=..., duration=..., warmup=..., budgets={{...}}), got {marker.args!r}"
            )
        merged.update(marker.kwargs)
    if not merged:  # no load marker (or an empty one): nothing to check
        return merged
    from ..assertions import budget_checks
    from ..plan import RUN_OPTIONS, PlanError, RunPlan

    unknown = sorted(set(merged) - marker_keys())
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.load got unknown argument(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(marker_keys()))}"
        )
    if "budgets" in merged:
        try:
            budget_checks(merged["budgets"])
        except ValueError as exc:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.load {exc}") from None
    options = {k: v for k, v in merged.items() if k in RUN_OPTIONS}
    try:
        # Each value the marker gives is read now, by the plan's own rules (a test's call may
        # still supply the rest).
        RunPlan.from_options({"rate": 1, "duration": 1, **options})
    except PlanError as exc:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.load {exc}") from None
    engine = merged.get("engine")
    if engine is not None and engine not in engine_registry(item.config):
        names = ", ".join(engine_registry(item.config).names())
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.load engine: unknown engine {engine!r}; "
            f"available: {names}"
        )
    return merged


@pytest.fixture(scope="session")
def seldon_local_server(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config):
    """The running local model server (`LocalSeldonServer`): MLServer serving sklearn iris on
    loopback over HTTP and gRPC (`.endpoint("v2")`, `.endpoint("grpc")`)."""
    from ..cluster.local import INSTALL_HINT, LocalSeldonServer, mlserver_available

    if not mlserver_available():
        pytest.skip(f"MLServer is not installed; install it with: {INSTALL_HINT}")
    extra_latency = float(pytestconfig.getoption("seldon_local_extra_latency") or 0.0)
    server = LocalSeldonServer(
        tmp_path_factory.mktemp("seldon-local"), extra_latency_ms=extra_latency
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seldon_local(seldon_local_server: Any, pytestconfig: pytest.Config) -> SeldonEndpoint:
    """A real Seldon model server (MLServer, sklearn iris) on loopback: V2 over HTTP, or over
    gRPC with ``--seldon-protocol grpc``."""
    from ..cluster.local import SERVED_PROTOCOLS

    protocol = pytestconfig.getoption("seldon_protocol", default="v2")
    # The local server speaks V2 (HTTP) and gRPC; for other protocols it stays V2, as ever.
    served = protocol if protocol in SERVED_PROTOCOLS else "v2"
    return seldon_local_server.endpoint(served, "seldon-local")


@pytest.fixture(scope="session")
def seldon_endpoint(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> SeldonEndpoint:
    """The target under test: ``--seldon-url``, else ``--seldon-deployment`` in the cluster,
    else the local server."""
    url = pytestconfig.getoption("seldon_url")
    deployment = pytestconfig.getoption("seldon_deployment", default=None)
    if not url and deployment:
        grpc = pytestconfig.getoption("seldon_protocol", default="v2") == "grpc"
        endpoint = request.getfixturevalue("seldon_cluster").endpoint_for(deployment, grpc=grpc)
        token = secured_ingress(pytestconfig).headers
        return dataclasses.replace(endpoint, headers={**endpoint.headers, **token})
    if url:
        return SeldonEndpoint(
            url,
            protocol=pytestconfig.getoption("seldon_protocol"),
            model=pytestconfig.getoption("seldon_model"),
            headers={
                **dict(pytestconfig.getoption("seldon_header", default=None) or ()),
                **secured_ingress(pytestconfig).headers,
            },
            name="--seldon-url",
        )
    return request.getfixturevalue("seldon_local")


class ReplayFactory:
    """Writes replay files under the test's temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._numbers = itertools.count(1)

    def _next_path(self, kind: str) -> Path:
        return self.directory / f"{kind}-{next(self._numbers)}.replay"

    def prediction(
        self,
        endpoint: SeldonEndpoint,
        features: Sequence[Mapping[str, Any]] | None = None,
        num: int = 1000,
        seed: int | None = 0,
        **options: Any,
    ) -> ReplayFile:
        """Prediction requests in the endpoint's protocol from feature specs (default: iris),
        to the endpoint's prediction path (a Core 2 pipeline's, say)."""
        from ..generate import write_prediction_replay

        options.setdefault("infer_path", endpoint.infer_path)
        return write_prediction_replay(
            self._next_path("prediction"),
            protocol=endpoint.protocol,
            features=list(features) if features is not None else list(IRIS_FEATURES),
            num=num,
            seed=seed,
            model=endpoint.model,
            **options,
        )

    def recommendation(self, **options: Any) -> ReplayFile:
        """Seldon's recommendation + action pairs for the legacy JS API."""
        from ..generate import write_recommendation_replay

        return write_recommendation_replay(self._next_path("recommendation"), **options)

    def from_requests(
        self, requests: Iterable[ReplayRequest | str | Mapping[str, Any]]
    ) -> ReplayFile:
        """Requests as ReplayRequest, replay lines, or dicts (method, path, json|body, headers)."""
        lines = []
        for number, request in enumerate(requests, 1):
            lines.append(_as_request(request, number))
        if not lines:
            raise ValueError("from_requests: no requests given")
        return write_replay(self._next_path("requests"), lines)

    def load(self, path: str | os.PathLike[str], skip_bad_lines: bool = False) -> ReplayFile:
        """An existing replay file, checked now (a bad line fails here, naming file and line)."""
        replay = ReplayFile(Path(path), skip_bad_lines=skip_bad_lines)
        replay.count = sum(1 for _ in replay)
        if replay.count == 0:
            raise ValueError(f"{path}: the replay file holds no requests")
        return replay


def _as_request(request: ReplayRequest | str | Mapping[str, Any], number: int) -> ReplayRequest:
    if isinstance(request, ReplayRequest):
        return request
    if isinstance(request, str):
        parsed = parse_line(request, number, "from_requests")
        if parsed is None:
            raise ValueError(f"from_requests: request {number} is blank or a comment")
        return parsed
    if isinstance(request, Mapping):
        method = str(
            request.get("method", "POST" if ("json" in request or "body" in request) else "GET")
        ).upper()
        path = request.get("path") or request.get("url")
        if not path:
            raise ValueError(f"from_requests: request {number} has no 'path'")
        headers = dict(request.get("headers", {}))
        body = request.get("body")
        if "json" in request:
            body = json.dumps(request["json"], separators=(",", ":"))
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        line = ReplayRequest(method, str(path), tuple(headers.items()), body).to_line()
        parsed = parse_line(line, number, "from_requests")
        assert parsed is not None
        return parsed
    raise TypeError(f"from_requests: request {number} is a {type(request).__name__}")


@pytest.fixture
def replay_file(tmp_path: Path) -> ReplayFactory:
    """A factory of Iago-format replay files: prediction, recommendation, from_requests, load."""
    return ReplayFactory(tmp_path)


class LoadRunner:
    """Runs one load and returns its LoadResult; the `load` marker supplies defaults."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.item = request.node
        self.config = request.config
        self.defaults = load_marker_kwargs(self.item)
        self.results: list[LoadResult] = []

    def _resource(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    def __call__(
        self,
        endpoint: SeldonEndpoint,
        replay: ReplayFile | str | os.PathLike[str],
        **options: Any,
    ) -> LoadResult:
        from ..plan import PlanError, RunPlan

        unknown = sorted(set(options) - load_run_keys() - {"label"})
        if unknown:
            raise TypeError(
                f"load_run got unknown argument(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(load_run_keys() | {'label'}))}"
            )
        values = {k: v for k, v in self.defaults.items() if k != "budgets"}
        values.update({k: v for k, v in options.items() if v is not None})
        config = self.config
        engine_name = values.pop("engine", None) or config.getoption("load_engine")
        allow_lag = bool(values.pop("allow_lag", False)) or config.getoption("load_allow_lag")
        for required in ("rate", "duration"):
            if values.get(required) is None:
                raise ValueError(
                    f"load_run needs a {required}: pass {required}=... or set it on "
                    f"@pytest.mark.load({required}=...)"
                )
        values.setdefault("connections", config.getoption("load_connections"))
        values.setdefault("timeout", config.getoption("load_timeout"))
        for name, value in secured_ingress(config).engine_settings().items():
            values.setdefault(name, value)
        values.setdefault("processes", config.getoption("load_processes"))
        if values.get("seed") is None:
            # Reproducible by default: the same test gets the same schedule every run.
            values["seed"] = zlib.crc32(self.item.nodeid.encode("utf-8"))
        values["label"] = options.get("label") or self.item.nodeid
        try:
            plan = RunPlan.from_options(values).scaled(
                time=config.getoption("load_scale"), rate=config.getoption("load_rate_scale")
            )
        except PlanError as exc:
            raise ValueError(f"load_run: {exc}") from None
        factory = config.stash.get(COMPANION_KEY, None)
        context = EngineContext(
            caller="this pytest session",
            resources=self._resource,
            companion=factory(self.request) if factory is not None else None,
        )
        try:
            engine = engine_registry(config).create(engine_name, context)
        except EngineError as exc:
            raise type(exc)(f"load_run: {exc}") from None
        if not isinstance(replay, ReplayFile):
            replay = ReplayFile(Path(replay))
        try:
            with run_turn(config, endpoint, self.item.nodeid):
                result = engine.run(endpoint, replay, plan)
        except RunInterrupted as interrupted:
            register_result(self.config, self.item, interrupted.result)
            raise
        result.lag_accepted = allow_lag
        self.results.append(result)
        register_result(self.config, self.item, result)
        return result


@pytest.fixture
def load_run(request: pytest.FixtureRequest) -> LoadRunner:
    """Run a load: ``load_run(endpoint, replay, rate=200, duration="20s", warmup="5s")``."""
    runner = LoadRunner(request)
    request.node.stash[RUNNER_KEY] = runner
    return runner


RUNNER_KEY = pytest.StashKey[LoadRunner]()
