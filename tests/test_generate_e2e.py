"""A V2 replay written by the CLI, checked by the CLI, replayed through the plugin's own
fixtures (`replay_file.load`, `load_run`) against the real MLServer of `seldon_local`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

IRIS = [json.dumps({"name": f"f{i}", "type": "numeric", "min": 0, "max": 5}) for i in range(1, 5)]


def seldon_load(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_seldon_load.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "options",
    [
        ("--num", "200", "--seed", "5"),
        ("--num", "50", "--batch", "4", "--output", "predict_proba", "--seldon-model"),
    ],
    ids=["one-row", "batch-of-4-probabilities"],
)
def test_cli_v2_replay_runs_clean_against_mlserver(
    seldon_local, replay_file, load_run, tmp_path: Path, options
):
    path = tmp_path / "iris-v2.replay"
    features = [arg for feature in IRIS for arg in ("--feature", feature)]
    written = seldon_load(
        "replay",
        "prediction",
        "--protocol",
        "v2",
        "--model",
        "iris",
        "--replay",
        str(path),
        *features,
        *options,
    )
    assert written.returncode == 0, written.stderr
    checked = seldon_load("replay", "check", str(path))
    assert checked.returncode == 0, checked.stderr
    assert f"{path.name}: {options[1]} requests, 0 bad lines" in checked.stdout

    replay = replay_file.load(path)
    # Punctuality is judged loosely: other tests share the two cores with this one.
    result = load_run(
        seldon_local,
        replay,
        rate=80,
        duration=1.5,
        warmup=0.25,
        seed=1,
        connections=8,
        lag_threshold_ms=50,
    )
    assert result.requests > 0
    assert result.errors == 0, result.error_kinds
    assert result.status_codes == {200: result.requests}
