"""The engine registry: built-in engines, engines from other packages (entry points), engines a
conftest.py adds (the pytest hook), and one clear error for a name that is not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from servers import V2_OK, ServerThread, fixed

from pytest_seldon_load import LoadResult, SeldonEndpoint, write_replay
from pytest_seldon_load.engine import EmbeddedEngine
from pytest_seldon_load.engines import (
    ENGINES,
    ENTRY_POINT_GROUP,
    EngineContext,
    EngineError,
    EngineRegistry,
    EngineUnavailable,
)
from pytest_seldon_load.plan import EngineSettings, RunPlan
from pytest_seldon_load.replay import ReplayFile

ENGINE_MODULE = '''
"""An engine from another package: it records the plan it was given instead of sending."""
import json

from pytest_seldon_load import LoadResult


class PlanEcho:
    name = "echo"

    def __init__(self, context):
        self.caller = context.caller

    def run(self, endpoint, replay, plan):
        print("echo-engine " + json.dumps({
            "caller": self.caller, "rate": plan.rate, "duration": plan.duration,
            "seed": plan.seed, "connections": plan.settings.connections,
        }), flush=True)
        return LoadResult(
            target_rate=plan.rate, duration=plan.duration, engine=self.name, label=plan.label
        )
'''


def install_engine_package(directory: Path, entry_points: str) -> Path:
    """A package on `directory` declaring `entry_points`, as an installed distribution would
    (a .dist-info with entry_points.txt, which importlib.metadata reads from sys.path)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "echo_engine.py").write_text(ENGINE_MODULE)
    info = directory / "echo_engine-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-engine\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")
    return directory


@pytest.fixture
def v2_replay(tmp_path):
    return write_replay(
        tmp_path / "v2.replay",
        ['POST /v2/models/iris/infer Content-Type:application/json {"inputs":[]}'],
    )


def test_the_built_in_engines_are_registered():
    assert {"embedded", "iago"} <= set(ENGINES.names())
    assert isinstance(ENGINES.create("embedded"), EmbeddedEngine)


def test_an_unknown_engine_is_one_error_listing_the_available_ones():
    with pytest.raises(EngineError) as unknown:
        ENGINES.create("k7")
    message = str(unknown.value)
    assert message.startswith("unknown engine 'k7'; available: ")
    assert "embedded" in message and "iago" in message


def test_the_iago_engine_says_it_needs_a_pytest_session():
    with pytest.raises(EngineUnavailable) as unavailable:
        ENGINES.create("iago", EngineContext(caller="seldon-load run"))
    message = str(unavailable.value)
    assert "pod in the cluster" in message and "pytest" in message
    assert "seldon-load run has no such session" in message


def test_the_iago_engine_refuses_a_grpc_target_before_reaching_the_cluster(tmp_path):
    asked: list[str] = []

    def resources(name: str, **_: object) -> object:
        asked.append(name)
        raise AssertionError("the cluster must not be reached for a gRPC target")

    engine = ENGINES.create("iago", EngineContext(caller="a test", resources=resources))
    endpoint = SeldonEndpoint("grpc://127.0.0.1:9", protocol="grpc", name="mesh-grpc")
    plan = RunPlan(rate=10, duration=1, seed=1, label="grpc")
    with pytest.raises(EngineUnavailable, match="HTTP only; mesh-grpc speaks gRPC"):
        engine.run(endpoint, ReplayFile(tmp_path / "unused.replay"), plan)
    assert asked == []


def test_the_embedded_engine_runs_a_plan(v2_replay):
    plan = RunPlan(rate=40, duration=1, seed=3, label="planned", settings=EngineSettings(4))
    with ServerThread(fixed(200, V2_OK)) as server:
        result = ENGINES.create("embedded").run(SeldonEndpoint(server.url), v2_replay, plan)
    assert (result.engine, result.label, result.seed) == ("embedded", "planned", 3)
    assert result.ok == result.scheduled == 40


def test_registering_checks_names_and_factories():
    registry = EngineRegistry(entry_point_group=None)
    registry.add("mine", EmbeddedEngine)
    with pytest.raises(EngineError, match="'mine' is already registered"):
        registry.add("mine", EmbeddedEngine)
    for bad in ("", "two words", 3):
        with pytest.raises(EngineError, match="must be a word"):
            registry.add(bad, EmbeddedEngine)  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="must be callable"):
        registry.add("broken", 42)  # type: ignore[arg-type]
    registry.add("nothing", lambda context: object())
    with pytest.raises(EngineError, match="which has no run"):
        registry.create("nothing")
    registry.add("missing", "no_such_module_here:Engine")
    with pytest.raises(EngineError, match=r"'missing' \(built in: no_such_module_here:Engine\)"):
        registry.create("missing")
    copy = registry.copy()
    copy.add("only-in-the-copy", EmbeddedEngine)
    assert "only-in-the-copy" in copy and "only-in-the-copy" not in registry


def test_another_package_adds_an_engine_through_its_entry_point(tmp_path, monkeypatch):
    packages = install_engine_package(tmp_path, "echo = echo_engine:PlanEcho")
    monkeypatch.syspath_prepend(str(packages))
    registry = EngineRegistry()
    assert registry.names() == ["echo"]
    engine = registry.create("echo", EngineContext(caller="a test"))
    result = engine.run(SeldonEndpoint("http://127.0.0.1:1"), None, RunPlan(rate=3, duration=2))
    assert isinstance(result, LoadResult) and result.engine == "echo"


def test_an_entry_point_may_not_take_a_built_in_name(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(
        str(install_engine_package(tmp_path, "embedded = echo_engine:PlanEcho"))
    )
    registry = EngineRegistry(entry_point_group=None)
    registry.add("embedded", "pytest_seldon_load.engine:EmbeddedEngine")
    registry._group, registry._discovered = ENTRY_POINT_GROUP, False
    with pytest.raises(EngineError, match="'embedded' is registered twice"):
        registry.names()


def test_seldon_load_run_uses_the_same_registry(tmp_path, v2_replay):
    packages = install_engine_package(tmp_path / "site", "echo = echo_engine:PlanEcho")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(packages), *sys.path])}
    command = [sys.executable, "-m", "pytest_seldon_load.cli", "run", "--url", "http://x:1"]
    command += ["--replay", str(v2_replay), "--rate", "7", "--duration", "3s", "--seed", "5"]
    done = subprocess.run(
        [*command, "--engine", "echo", "--connections", "2"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("echo-engine "))
    assert json.loads(line.split(" ", 1)[1]) == {
        "caller": "seldon-load run",
        "rate": 7.0,
        "duration": 3.0,
        "seed": 5,
        "connections": 2,
    }
    for engine, message in (
        ("iago", "--engine: the iago engine sends from a pod in the cluster"),
        ("k7", "--engine: unknown engine 'k7'; available: echo, embedded, iago"),
    ):
        refused = subprocess.run(
            [*command, "--engine", engine],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 2, refused.stderr
        assert message in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_conftest_adds_an_engine_for_its_session(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(pytester.path)!r})
        from echo_engine import PlanEcho

        def pytest_seldon_load_engines(config, registry):
            registry.add("echo", PlanEcho)
        """)
    )
    (pytester.path / "echo_engine.py").write_text(ENGINE_MODULE)
    pytester.makepyfile(
        test_echo="""
import pytest

@pytest.mark.load(rate=4, duration="2s", engine="echo")
def test_marker_engine(replay_file, load_run):
    from pytest_seldon_load import SeldonEndpoint
    endpoint = SeldonEndpoint("http://127.0.0.1:1")
    result = load_run(endpoint, replay_file.from_requests(["/"]), connections=3)
    assert result.engine == "echo" and result.target_rate == 8

def test_option_engine(replay_file, load_run):
    from pytest_seldon_load import SeldonEndpoint
    endpoint = SeldonEndpoint("http://127.0.0.1:1")
    result = load_run(endpoint, replay_file.from_requests(["/"]), rate=5, duration=1)
    assert result.engine == "echo"

@pytest.mark.load(rate=4, duration="2s", engine="k7")
def test_unknown_engine():
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-s", "--load-engine=echo", "--load-rate-scale=2"
    )
    result.assert_outcomes(passed=2, errors=1)
    output = result.stdout.str()
    assert '"caller": "this pytest session"' in output
    assert '"connections": 3' in output
    assert "engine: unknown engine 'k7'; available: echo, embedded, iago" in output
    unknown = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--load-engine=k7")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    assert "--load-engine: unknown engine 'k7'; available: echo, embedded, iago" in (
        unknown.stderr.str()
    )
