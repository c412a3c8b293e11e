"""A V2 replay written by the CLI, replayed by the engine against a real MLServer: no errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_seldon_load.cluster.local import LocalSeldonServer, mlserver_available
from pytest_seldon_load.endpoint import SeldonEndpoint
from pytest_seldon_load.engine import EngineSettings, run_load
from pytest_seldon_load.replay import ReplayFile

pytestmark = pytest.mark.skipif(
    not mlserver_available(), reason="MLServer is not installed (pip install '.[local]')"
)

IRIS = [json.dumps({"name": f"f{i}", "type": "numeric", "min": 0, "max": 5}) for i in range(1, 5)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSeldonServer]:
    local = LocalSeldonServer(tmp_path_factory.mktemp("mlserver"), model="iris").start()
    try:
        yield local
    finally:
        local.stop()


def cli_replay(path: Path, *options: str) -> ReplayFile:
    features = [arg for feature in IRIS for arg in ("--feature", feature)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest_seldon_load.cli", "replay", "prediction",
         "--protocol", "v2", "--model", "iris", "--replay", str(path), *features, *options],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return ReplayFile(path)


@pytest.mark.parametrize(
    "options",
    [
        ("--num", "200", "--seed", "5"),
        ("--num", "50", "--batch", "4", "--output", "predict_proba", "--seldon-model"),
    ],
    ids=["one-row", "batch-of-4-probabilities"],
)
def test_cli_v2_replay_runs_clean_against_mlserver(server, tmp_path, options):
    replay = cli_replay(tmp_path / "iris-v2.replay", *options)
    endpoint = SeldonEndpoint(server.base_url, protocol="v2", model="iris")
    result = run_load(endpoint, replay, rate=80, duration=1.5, warmup=0.25, seed=1,
                      settings=EngineSettings(connections=8))
    assert result.requests > 0
    assert result.errors == 0, result.error_kinds
    assert result.status_codes == {200: result.requests}
