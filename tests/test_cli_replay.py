"""``seldon-load replay ...`` as a user runs it: exit codes, stdout/stderr (in this process, as
the entry point runs it; Ctrl-C in a subprocess of its own)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import run_cli

from pytest_seldon_load.cli import main
from pytest_seldon_load.replay import ReplayFile

KEY = "ZqP4xYkeyW9sT2"
IRIS = [json.dumps({"name": f"f{i}", "type": "numeric", "min": 0, "max": 5}) for i in range(1, 5)]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = run_cli(*args, cwd=cwd)
    assert KEY not in result.stdout and KEY not in result.stderr
    return result


def feature_args(features: list[str]) -> list[str]:
    return [arg for feature in features for arg in ("--feature", feature)]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            [
                {
                    "db": "ClientDB",
                    "client": "iris",
                    "key": KEY,
                    "secret": "NotShownEither9",
                    "scope": "js",
                }
            ]
        )
        + "\n"
    )
    return path


def test_legacy_prediction_replay_like_the_iris_script(tmp_path, key_file):
    out = tmp_path / "iris.replay"
    result = run(
        "replay",
        "prediction",
        "--key",
        str(key_file),
        "--replay",
        str(out),
        *feature_args(IRIS),
        "--num",
        "50",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 50 legacy prediction requests to {out}"
    assert result.stderr == ""
    lines = out.read_text().splitlines()
    assert len(lines) == 50
    assert all(
        line.startswith("http://seldon-server/js/predict?json=%7B%22f1%22%3A+")
        and line.endswith(f"%7D&consumer_key={KEY}&jsonpCallback=j")
        for line in lines
    )

    check = run("replay", "check", str(out))
    assert check.returncode == 0
    assert f"{out}: 50 requests, 0 bad lines" in check.stdout
    assert "GET    /js/predict" in check.stdout


def test_v1_and_v2_prediction_replays(tmp_path):
    v1 = tmp_path / "v1.replay"
    result = run(
        "replay",
        "prediction",
        "--protocol",
        "v1",
        "--tensor",
        "--batch",
        "2",
        "--replay",
        str(v1),
        *feature_args(IRIS),
        "--num",
        "10",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr
    requests = list(ReplayFile(v1))
    assert len(requests) == 10
    assert json.loads(requests[0].body)["data"]["tensor"]["shape"] == [2, 4]

    v2 = tmp_path / "v2.replay"
    result = run(
        "replay",
        "prediction",
        "--protocol",
        "v2",
        "--model",
        "iris",
        "--batch",
        "4",
        "--output",
        "predict_proba",
        "--seldon-model",
        "--replay",
        str(v2),
        *feature_args(IRIS),
        "--num",
        "10",
        "--seed",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 10 v2 prediction requests (4 rows each) to" in result.stdout
    request = next(iter(ReplayFile(v2)))
    assert request.path == "/v2/models/iris/infer"
    assert dict(request.headers)["Seldon-Model"] == "iris"
    document = json.loads(request.body)
    assert document["inputs"][0]["shape"] == [4, 4]
    assert document["outputs"] == [{"name": "predict_proba"}]
    v1_values = [v for r in ReplayFile(v1) for v in json.loads(r.body)["data"]["tensor"]["values"]]
    v2_values = [v for r in ReplayFile(v2) for v in json.loads(r.body)["inputs"][0]["data"]]
    assert v1_values == v2_values[: len(v1_values)]


def test_dataset_prediction_replay(tmp_path):
    data = tmp_path / "iris.csv"
    data.write_text("sepal_length,sepal_width,species\n5.1,3.5,setosa\n7.0,3.2,versicolor\n")
    out = tmp_path / "d.replay"
    result = run(
        "replay",
        "prediction",
        "--protocol",
        "v2",
        "--dataset",
        str(data),
        "--replay",
        str(out),
        "--num",
        "5",
    )
    assert result.returncode == 0, result.stderr
    inputs = json.loads(next(iter(ReplayFile(out))).body)["inputs"]
    assert [i["name"] for i in inputs] == ["sepal_length", "sepal_width", "species"]


def test_recommendation_replay_and_check(tmp_path, key_file):
    items = tmp_path / "items.json"
    items.write_text(
        json.dumps(
            {
                "size": 3,
                "requested": 3,
                "list": [{"id": "1210", "name": "a"}, {"id": "1211"}, {"id": "12 12"}],
            }
        )
    )
    out = tmp_path / "rec.replay"
    result = run(
        "replay",
        "recommendation",
        "--key",
        str(key_file),
        "--items",
        str(items),
        "--replay",
        str(out),
        "--num-actions",
        "400",
        "--num-users",
        "50",
        "--click-percent",
        "25",
        "--item-type",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"wrote 800 requests (400 recommendation + action pairs) to {out}"
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 800
    assert all("/js/recommendations?" in line for line in lines[::2])
    assert all("/js/action/new?" in line and "&type=2" in line for line in lines[1::2])
    assert 40 < sum("&rlabs=1&" in line for line in lines[1::2]) < 160

    check = run("replay", "check", str(out))
    assert check.returncode == 0
    assert "800 requests, 0 bad lines" in check.stdout
    assert "400  GET    /js/action/new" in check.stdout
    assert "400  GET    /js/recommendations" in check.stdout


def test_check_lists_bad_lines_without_the_key(tmp_path):
    replay = tmp_path / "bad.replay"
    replay.write_text(
        "# comment\n"
        f"http://seldon-server/js/predict?json=%7B%7D&consumer_key={KEY}&jsonpCallback=j\n"
        f"FETCH /x?consumer_key={KEY}\n"
        "POST /v2/models/iris/infer Content-Type:application/json {not json\n"
        f"not-a-url consumer_key={KEY}\n"
    )
    result = run("replay", "check", str(replay))
    assert result.returncode == 1
    assert "1 requests, 3 bad lines" in result.stdout
    assert "line 3: unknown method 'FETCH'" in result.stdout
    assert "line 4: the body is not valid JSON" in result.stdout
    assert "line 5:" in result.stdout
    assert "consumer_key=***" in result.stdout


def test_help_documents_every_option():
    result = run("replay", "prediction", "--help")
    assert result.returncode == 0
    for option in (
        "--endpoint",
        "--key",
        "--replay",
        "--num",
        "--feature",
        "--protocol",
        "--seed",
        "--batch",
        "--model",
        "--dataset",
        "--tensor",
        "--output",
        "--seldon-model",
        "numeric",
        "integer",
        "categorical",
        "constant",
        "normal",
    ):
        assert option in result.stdout
    result = run("replay", "recommendation", "--help")
    for option in (
        "--items",
        "--item-type",
        "--num-actions",
        "--num-users",
        "--click-percent",
        "URL-encoded",
    ):
        assert option in result.stdout
    assert main(["replay", "check", "--help"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--feature", IRIS[0], "--feature", '{"name":"f2","type":"numeric","min":5,"max":1}'],
            "seldon-load: error: --feature 2 (f2): min (5) is greater than max (1)",
        ),
        (
            ["--feature", '{"name":"f1","type":"uniform","min":0,"max":1}'],
            'seldon-load: error: --feature 1 (f1): unknown type "uniform"; choose one of numeric, '
            "integer, categorical, constant, normal",
        ),
        (
            ["--feature", "{name: f1}"],
            "seldon-load: error: --feature 1: not valid JSON (Expecting property name enclosed in "
            "double quotes at column 2)",
        ),
        (
            ["--key", "missing-dir/key.json", "--feature", IRIS[0]],
            "seldon-load: error: --key: cannot read the key file missing-dir/key.json: no such "
            "file",
        ),
        (
            ["--key", "__KEYFILE__", "--feature", IRIS[0], "--batch", "2"],
            "seldon-load: error: --batch applies to --protocol v2, v1 and grpc only, not legacy",
        ),
        (
            ["--protocol", "v2", "--key", KEY, "--feature", IRIS[0]],
            "seldon-load: error: --key applies to --protocol legacy only, not v2",
        ),
        (
            ["--protocol", "v1", "--feature", IRIS[0], "--num", "0"],
            "seldon-load replay prediction: error: argument --num: must be at least 1, got 0",
        ),
        ([], "seldon-load: error: give at least one --feature spec, or a --dataset"),
    ],
)
def test_bad_prediction_input_is_one_clear_line(tmp_path, key_file, args, message):
    out = tmp_path / "out.replay"
    out.write_text("previous\n")
    args = [str(key_file) if a == "__KEYFILE__" else a for a in args]
    result = run("replay", "prediction", "--replay", str(out), *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert result.stdout == ""
    assert out.read_text() == "previous\n"


@pytest.mark.parametrize(
    ("items_text", "key_text", "message"),
    [
        (
            '{"size":0,"requested":0,"list":[]}',
            None,
            "seldon-load: error: --items: the item list in {items} is empty",
        ),
        (
            '["1"]',
            "[]",
            "seldon-load: error: --key: the key file {key} lists no keys: does the client exist, "
            "and was `seldon-cli keys` asked with --scope js?",
        ),
        (
            '["1"]',
            '[{"client":"iris"}]',
            "seldon-load: error: --key: the key file {key} holds no consumer key: no entry has a "
            '"key" (expected [{"key": "...", "scope": "js", ...}])',
        ),
    ],
)
def test_bad_recommendation_input_is_one_clear_line(
    tmp_path, key_file, items_text, key_text, message
):
    items = tmp_path / "items.json"
    items.write_text(items_text)
    if key_text is not None:
        key_file.write_text(key_text)
    result = run(
        "replay",
        "recommendation",
        "--key",
        str(key_file),
        "--items",
        str(items),
        "--replay",
        str(tmp_path / "r.replay"),
    )
    assert result.returncode == 2
    expected = message.replace("{items}", str(items)).replace("{key}", str(key_file))
    assert result.stderr == expected + "\n"
    assert not (tmp_path / "r.replay").exists()


def test_key_given_as_text_never_shows(tmp_path, capsys):
    out = tmp_path / "k.replay"
    assert (
        main(
            [
                "replay",
                "prediction",
                "--key",
                KEY,
                "--replay",
                str(out),
                "--feature",
                IRIS[0],
                "--num",
                "3",
            ]
        )
        == 0
    )
    assert main(["replay", "check", str(out)]) == 0
    assert main(["replay", "check", str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err
    assert KEY in out.read_text()


def test_ctrl_c_leaves_no_replay_file(tmp_path):
    out = tmp_path / "big.replay"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_seldon_load.cli",
            "replay",
            "prediction",
            "--protocol",
            "v2",
            "--replay",
            str(out),
            *feature_args(IRIS),
            "--num",
            "5000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not any(p.name.endswith(".part") for p in tmp_path.iterdir()):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert stderr == "seldon-load: interrupted; no file was written\n"
    assert list(tmp_path.iterdir()) == []
