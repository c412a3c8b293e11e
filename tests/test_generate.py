"""Replay generation: byte-compatibility with Seldon's scripts, round trips, statistics, keys."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit

import numpy as np
import pytest

from pytest_seldon_load import generate
from pytest_seldon_load.consumer_keys import (
    ConsumerKeyError,
    key_from_json,
    load_consumer_key,
)
from pytest_seldon_load.generate import (
    DatasetError,
    FeatureSpecError,
    ItemsError,
    load_items,
    prediction_rows,
    write_prediction_replay,
    write_recommendation_replay,
)
from pytest_seldon_load.protocols import (
    judge,
    legacy_predict_line,
    unwrap_jsonp,
    v1_request,
    v2_request,
    v2_request_columns,
)
from pytest_seldon_load.redact import redact_text
from pytest_seldon_load.replay import ReplayFile, parse_line

IRIS = [{"name": f"f{i}", "type": "numeric", "min": 0, "max": 5} for i in range(1, 5)]
MIXED = [
    {"name": "x", "type": "numeric", "min": -2.5, "max": 7},
    {"name": "n", "type": "integer", "min": -3, "max": 3},
    {
        "name": "colour",
        "type": "categorical",
        "values": ["red", "green", "blue"],
        "weights": [1, 2, 7],
    },
    {"name": "k", "type": "constant", "value": "a b&c/ü"},
    {"name": "g", "type": "normal", "mean": 10, "std": 4, "clip": [8, 12]},
]
KEY = "Uh7PcNqbRkZ3vX"


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def all_rows(features, num, **kwargs) -> list[list]:
    _, chunks = prediction_rows(features, num, **kwargs)
    return [row for chunk in chunks for row in chunk.tolist()]


def original_script_line(values: dict, key: str, endpoint: str = "seldon-server") -> str:
    """What Seldon's create_prediction_replay.py wrote for these values (its template)."""
    template = "http://%ENDPOINT%/js/predict?json=%JSON%&consumer_key=%KEY%&jsonpCallback=j"
    return (
        template.replace("%ENDPOINT%", endpoint)
        .replace("%KEY%", key)
        .replace("%JSON%", quote_plus(json.dumps(values)))
    )


# --- legacy: byte for byte ---------------------------------------------------------------


def test_legacy_line_matches_the_documented_literal(tmp_path):
    features = [
        {"name": "f1", "type": "numeric", "min": 0.67, "max": 0.67},
        {"name": "f2", "type": "numeric", "min": 4.23, "max": 4.23},
    ]
    out = tmp_path / "p.replay"
    write_prediction_replay(out, protocol="legacy", features=features, num=2, consumer_key="KEY")
    expected = (
        "http://seldon-server/js/predict?json=%7B%22f1%22%3A+0.67%2C+%22f2%22%3A+4.23%7D"
        "&consumer_key=KEY&jsonpCallback=j"
    )
    assert lines_of(out) == [expected, expected]
    assert out.read_bytes().endswith(b"j\n")


def test_legacy_lines_equal_the_original_script_output(tmp_path):
    out = tmp_path / "iris.replay"
    replay = write_prediction_replay(
        out,
        protocol="legacy",
        features=IRIS,
        num=500,
        seed=7,
        consumer_key=KEY,
        endpoint_host="seldon-server:8080",
    )
    assert replay.count == 500
    rows = all_rows(IRIS, 500, seed=7)
    for line, row in zip(lines_of(out), rows, strict=True):
        values = dict(zip(["f1", "f2", "f3", "f4"], row, strict=True))
        assert line == original_script_line(values, KEY, "seldon-server:8080")
        assert line == legacy_predict_line(values, KEY, "seldon-server:8080")


def test_legacy_encodes_every_kind_of_value_like_json_dumps(tmp_path):
    features = [
        *MIXED,
        {"name": "big", "type": "numeric", "min": 1e16, "max": 1e17},
        {"name": "tiny", "type": "numeric", "min": 0, "max": 1e-6},
        {"name": "flag", "type": "categorical", "values": [True, False, 3, "ü"]},
        {"name": "naïve key", "type": "constant", "value": 2},
    ]
    out = tmp_path / "mixed.replay"
    write_prediction_replay(
        out, protocol="legacy", features=features, num=300, seed=3, consumer_key=KEY
    )
    names = [f["name"] for f in features]
    for line, row in zip(lines_of(out), all_rows(features, 300, seed=3), strict=True):
        assert line == legacy_predict_line(dict(zip(names, row, strict=True)), KEY)
    assert any("e%2B16" in line for line in lines_of(out))


# --- recommendation replays -------------------------------------------------------------


def test_recommendation_pair_matches_the_documented_literals(tmp_path):
    out = tmp_path / "r.replay"
    write_recommendation_replay(
        out, items=["1210"], num_actions=1, num_users=1, click_probability=0.0, consumer_key="KEY"
    )
    assert lines_of(out) == [
        "http://seldon-server/js/recommendations?consumer_key=KEY&user=1&item=1210&limit=10"
        "&jsonpCallback=j",
        "http://seldon-server/js/action/new?consumer_key=KEY&user=1&item=1210&type=1"
        "&jsonpCallback=j",
    ]
    write_recommendation_replay(
        out,
        items=["1210"],
        num_actions=1,
        num_users=1,
        item_type=3,
        click_probability=1.0,
        consumer_key="KEY",
    )
    assert lines_of(out)[1] == (
        "http://seldon-server/js/action/new?consumer_key=KEY&user=1&item=1210&type=3&rlabs=1"
        "&jsonpCallback=j"
    )


def test_recommendation_pairs_users_items_and_click_ratio(tmp_path):
    items = [str(i) for i in range(1000, 1050)] + ["a b", "x&y", "ü/é"]
    calls, users = 20_000, 300
    out = tmp_path / "r.replay"
    replay = write_recommendation_replay(
        out, items=items, num_actions=calls, num_users=users, consumer_key=KEY, seed=11
    )
    assert replay.count == 2 * calls
    lines = lines_of(out)
    assert len(lines) == 2 * calls
    clicks = 0
    seen_users, seen_items = Counter(), Counter()
    for recommendation, action in zip(lines[::2], lines[1::2], strict=True):
        rec, act = urlsplit(recommendation), urlsplit(action)
        assert rec.path == "/js/recommendations" and act.path == "/js/action/new"
        rq, aq = parse_qs(rec.query), parse_qs(act.query)
        assert rq["user"] == aq["user"] and rq["item"] == aq["item"]
        assert rq["consumer_key"] == aq["consumer_key"] == [KEY]
        assert rq["limit"] == ["10"] and aq["type"] == ["1"]
        assert rq["jsonpCallback"] == aq["jsonpCallback"] == ["j"]
        assert rec.query.endswith("&limit=10&jsonpCallback=j")
        clicks += "rlabs" in aq
        if "rlabs" in aq:
            assert aq["rlabs"] == ["1"]
        seen_users[int(rq["user"][0])] += 1
        seen_items[rq["item"][0]] += 1
    sigma = math.sqrt(0.1 * 0.9 / calls)
    assert abs(clicks / calls - 0.1) < 5 * sigma
    assert min(seen_users) >= 1 and max(seen_users) <= users
    assert len(seen_users) == users
    assert set(seen_items) == set(items)
    assert any("item=x%26y" in line for line in lines)


def test_recommendation_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        write_recommendation_replay(
            path, items=["1", "2", "3"], num_actions=200, consumer_key=KEY, seed=seed
        )
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"size":2,"requested":2,"list":[{"id":"1210","name":"x"},{"id":"1211"}]}',
            ["1210", "1211"],
        ),
        ('[{"id": 7}, {"id": "b"}]', ["7", "b"]),
        ('["1", 2, "three"]', ["1", "2", "three"]),
        ("1210\n1211\n\n# comment\nabc def\n", ["1210", "1211", "abc def"]),
        ('{"list":[{"id":"1"}]}\n{"list":[{"id":"2"}]}\n', ["1", "2"]),
    ],
)
def test_item_lists_in_every_accepted_form(tmp_path, text, expected):
    path = tmp_path / "items.json"
    path.write_text(text, encoding="utf-8")
    assert load_items(path) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ('{"size":0,"requested":0,"list":[]}', "is empty"),
        ('[{"name": "no id"}]', 'has no "id"'),
        ('{"items": []}', "expected a list of item ids"),
    ],
)
def test_unusable_item_lists_are_refused(tmp_path, text, problem):
    path = tmp_path / "items.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ItemsError, match=problem):
        load_items(path)


# --- every protocol round-trips through the replay reader -----------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_v1_lines_are_the_intended_requests(tmp_path, batch):
    out = tmp_path / "v1.replay"
    write_prediction_replay(out, protocol="v1", features=MIXED, num=40, batch=batch, seed=2)
    rows = all_rows(MIXED, 40 * batch, seed=2)
    names = [f["name"] for f in MIXED]
    requests = list(ReplayFile(out))
    assert len(requests) == 40
    for number, request in enumerate(requests):
        expected_rows = rows[number * batch : (number + 1) * batch]
        assert request.method == "POST" and request.path == "/api/v1.0/predictions"
        assert request == v1_request(expected_rows, names)
        assert json.loads(request.body)["data"]["ndarray"] == expected_rows


def test_v1_tensor_form(tmp_path):
    out = tmp_path / "v1t.replay"
    write_prediction_replay(out, protocol="v1", features=IRIS, num=10, batch=2, tensor=True)
    rows = all_rows(IRIS, 20)
    for number, request in enumerate(ReplayFile(out)):
        expected = v1_request(
            rows[2 * number : 2 * number + 2], ["f1", "f2", "f3", "f4"], tensor=True
        )
        assert request.to_line() == expected.to_line()
        assert json.loads(request.body)["data"]["tensor"]["shape"] == [2, 4]


@pytest.mark.parametrize("batch", [1, 4])
def test_v2_numeric_rows_travel_as_one_fp64_input(tmp_path, batch):
    out = tmp_path / "v2.replay"
    write_prediction_replay(
        out,
        protocol="v2",
        features=IRIS,
        num=25,
        batch=batch,
        outputs=["predict_proba"],
        seldon_model_header="iris",
    )
    rows = all_rows(IRIS, 25 * batch)
    for number, request in enumerate(ReplayFile(out)):
        chunk = rows[number * batch : (number + 1) * batch]
        expected = v2_request(
            "iris",
            chunk,
            datatype="FP64",
            outputs=["predict_proba"],
            headers=[("Seldon-Model", "iris")],
        )
        assert request == expected
        assert request.to_line() == expected.to_line()
        document = json.loads(request.body)
        assert document["inputs"][0]["shape"] == [batch, 4]
        assert len(document["inputs"][0]["data"]) == batch * 4
    first = lines_of(out)[0]
    assert first.startswith(
        "POST /v2/models/iris/infer Seldon-Model:iris Content-Type:application/json {"
    )


def test_v2_integers_are_int64_and_mixed_numbers_fp64(tmp_path):
    ints = [
        {"name": "a", "type": "integer", "min": 0, "max": 9},
        {"name": "b", "type": "constant", "value": 4},
    ]
    out = tmp_path / "i.replay"
    write_prediction_replay(out, protocol="v2", features=ints, num=5)
    document = json.loads(next(iter(ReplayFile(out))).body)
    assert document["inputs"][0]["datatype"] == "INT64"
    assert all(isinstance(v, int) for v in document["inputs"][0]["data"])

    both = [*ints, {"name": "c", "type": "numeric", "min": 0, "max": 1}]
    write_prediction_replay(out, protocol="v2", features=both, num=5, model="m-1.b")
    request = next(iter(ReplayFile(out)))
    assert request.path == "/v2/models/m-1.b/infer"
    document = json.loads(request.body)
    assert document["inputs"][0]["datatype"] == "FP64"
    assert all(isinstance(v, float) for v in document["inputs"][0]["data"])
    assert '"data":[' in request.body.decode() and ".0," in request.body.decode()


@pytest.mark.parametrize("batch", [1, 2])
def test_v2_mixed_types_travel_as_one_input_per_feature(tmp_path, batch):
    features = [*MIXED, {"name": "on", "type": "categorical", "values": [True, False]}]
    out = tmp_path / "m.replay"
    write_prediction_replay(out, protocol="v2", features=features, num=30, batch=batch, seed=4)
    rows = all_rows(features, 30 * batch, seed=4)
    names = [f["name"] for f in features]
    types = ["FP64", "INT64", "BYTES", "BYTES", "FP64", "BOOL"]
    for number, request in enumerate(ReplayFile(out)):
        chunk = rows[number * batch : (number + 1) * batch]
        columns = [(name, [row[i] for row in chunk]) for i, name in enumerate(names)]
        assert request == v2_request_columns("iris", columns, datatypes=types)
        inputs = json.loads(request.body)["inputs"]
        assert [i["name"] for i in inputs] == names
        assert all(i["shape"] == [batch, 1] for i in inputs)
        assert [i["datatype"] for i in inputs] == types


def test_values_stay_within_their_specs():
    rows = all_rows(MIXED, 20_000, seed=9)
    xs, ns, colours, ks, gs = zip(*rows, strict=True)
    assert min(xs) >= -2.5 and max(xs) <= 7 and max(xs) - min(xs) > 9
    assert set(ns) == set(range(-3, 4)) and all(isinstance(n, int) for n in ns)
    assert set(ks) == {"a b&c/ü"}
    assert min(gs) >= 8 and max(gs) <= 12
    counts = Counter(colours)
    for value, weight in (("red", 0.1), ("green", 0.2), ("blue", 0.7)):
        sigma = math.sqrt(weight * (1 - weight) / len(rows))
        assert abs(counts[value] / len(rows) - weight) < 5 * sigma


def test_zero_weight_values_are_never_drawn():
    spec = [
        {"name": "c", "type": "categorical", "values": ["a", "b", "never"], "weights": [1, 1, 0]}
    ]
    assert {row[0] for row in all_rows(spec, 5000)} == {"a", "b"}


def test_normal_without_clip_has_its_mean_and_std():
    spec = [{"name": "g", "type": "normal", "mean": 3, "std": 2}]
    values = np.array([row[0] for row in all_rows(spec, 40_000, seed=1)])
    assert abs(values.mean() - 3) < 0.05 and abs(values.std() - 2) < 0.05


def test_same_seed_same_bytes_and_rows_independent_of_batch_and_protocol(tmp_path):
    paths = {name: tmp_path / name for name in ("a", "b", "c", "v1", "v2")}
    write_prediction_replay(
        paths["a"], protocol="legacy", features=MIXED, num=300, seed=42, consumer_key=KEY
    )
    write_prediction_replay(
        paths["b"], protocol="legacy", features=MIXED, num=300, seed=42, consumer_key=KEY
    )
    write_prediction_replay(
        paths["c"], protocol="legacy", features=MIXED, num=300, seed=43, consumer_key=KEY
    )
    assert paths["a"].read_bytes() == paths["b"].read_bytes() != paths["c"].read_bytes()

    write_prediction_replay(paths["v1"], protocol="v1", features=IRIS, num=60, seed=42)
    write_prediction_replay(paths["v2"], protocol="v2", features=IRIS, num=20, batch=3, seed=42)
    v1_rows = [json.loads(r.body)["data"]["ndarray"][0] for r in ReplayFile(paths["v1"])]
    v2_data = [v for r in ReplayFile(paths["v2"]) for v in json.loads(r.body)["inputs"][0]["data"]]
    assert [v for row in v1_rows for v in row] == v2_data


def test_rows_do_not_depend_on_the_chunk_size():
    names, small = prediction_rows(MIXED, 1000, seed=8, chunk_rows=7)
    _, large = prediction_rows(MIXED, 1000, seed=8)
    assert names == [f["name"] for f in MIXED]
    assert np.concatenate(list(small)).tolist() == np.concatenate(list(large)).tolist()


def test_prediction_rows_dtypes():
    _, chunks = prediction_rows(IRIS, 10)
    assert next(chunks).dtype == np.float64
    _, chunks = prediction_rows([{"name": "i", "type": "integer", "min": 0, "max": 3}], 10)
    assert next(chunks).dtype == np.int64
    _, chunks = prediction_rows(MIXED, 10)
    assert next(chunks).dtype == object


def test_no_seed_gives_fresh_values():
    first, second = all_rows(IRIS, 5, seed=None), all_rows(IRIS, 5, seed=None)
    assert first != second


# --- datasets --------------------------------------------------------------------------


def test_csv_dataset_rows_are_sampled_whole(tmp_path):
    csv_path = tmp_path / "iris.csv"
    data = [
        (5.1, 3.5, 1.4, 0.2, "setosa"),
        (7.0, 3.2, 4.7, 1.4, "versicolor"),
        (6.3, 3.3, 6.0, 2.5, "virginica"),
    ]
    csv_path.write_text(
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        + "".join(",".join(map(str, row)) + "\n" for row in data)
    )
    names, chunks = prediction_rows(None, 300, dataset=csv_path)
    assert names == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    sampled = [tuple(row) for chunk in chunks for row in chunk.tolist()]
    assert set(sampled) == set(data)

    out = tmp_path / "d.replay"
    write_prediction_replay(out, protocol="v2", dataset=csv_path, num=50)
    inputs = json.loads(next(iter(ReplayFile(out))).body)["inputs"]
    assert [i["datatype"] for i in inputs] == ["FP64"] * 4 + ["BYTES"]
    write_prediction_replay(out, protocol="legacy", dataset=csv_path, num=50, consumer_key=KEY)
    request = next(iter(ReplayFile(out)))
    values = json.loads(parse_qs(urlsplit(request.target).query)["json"][0])
    assert tuple(values.values()) in set(data)


def test_numpy_and_headerless_csv_datasets(tmp_path):
    array = np.array([[1.5, 2.0], [3.25, 4.0]])
    names, chunks = prediction_rows(None, 100, dataset=array)
    assert names == ["f1", "f2"]
    assert {tuple(r) for r in next(chunks).tolist()} == {(1.5, 2.0), (3.25, 4.0)}
    csv_path = tmp_path / "plain.csv"
    csv_path.write_text("1,2\n3,4\n")
    names, chunks = prediction_rows(None, 50, dataset=csv_path)
    chunk = next(chunks)
    assert names == ["f1", "f2"] and chunk.dtype == np.int64
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DatasetError, match="row 3 has 1 values, expected 2"):
        prediction_rows(None, 5, dataset=ragged)
    with pytest.raises(ValueError, match="not both"):
        prediction_rows(IRIS, 5, dataset=array)


# --- bad specs and bad arguments ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "index", "problem"),
    [
        (
            {"name": "f1", "type": "numeric", "min": 5, "max": 1},
            2,
            "min (5) is greater than max (1)",
        ),
        ({"name": "f1", "type": "fancy"}, 2, 'unknown type "fancy"'),
        ({"name": "f1", "min": 0, "max": 1}, 2, 'needs "type"'),
        ({"type": "numeric", "min": 0, "max": 1}, 2, 'needs "name"'),
        ({"name": "f1", "type": "numeric", "min": 0}, 2, 'needs "max"'),
        ({"name": "f1", "type": "numeric", "min": "0", "max": 1}, 2, '"min" must be a number'),
        ({"name": "f1", "type": "numeric", "min": 0, "max": 1, "mx": 2}, 2, 'unknown key "mx"'),
        ({"name": "f1", "type": "integer", "min": 0.5, "max": 1}, 2, "whole number"),
        ({"name": "f1", "type": "categorical", "values": []}, 2, "non-empty list"),
        (
            {"name": "f1", "type": "categorical", "values": ["a"], "weights": [1, 2]},
            2,
            "list of 1 numbers",
        ),
        (
            {"name": "f1", "type": "categorical", "values": ["a", "b"], "weights": [0, 0]},
            2,
            "all be zero",
        ),
        (
            {"name": "f1", "type": "categorical", "values": ["a", "b"], "weights": [1, -1]},
            2,
            ">= 0",
        ),
        ({"name": "f1", "type": "normal", "mean": 0, "std": -1}, 2, "must not be negative"),
        (
            {"name": "f1", "type": "normal", "mean": 0, "std": 1, "clip": [3, 1]},
            2,
            "clip low (3) is greater",
        ),
        ({"name": "f1", "type": "constant"}, 2, 'needs "value"'),
        ({"name": "a", "type": "numeric", "min": 0, "max": 1}, 2, "already used by feature 1"),
        ("f1", 2, "must be a JSON object"),
    ],
)
def test_bad_feature_specs_name_the_feature_and_the_problem(tmp_path, spec, index, problem):
    features = [{"name": "a", "type": "numeric", "min": 0, "max": 1}, spec]
    out = tmp_path / "never.replay"
    with pytest.raises(FeatureSpecError) as caught:
        write_prediction_replay(out, protocol="v2", features=features)
    assert caught.value.index == index
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"feature {index}")
    assert not out.exists()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        (
            {"protocol": "legacy", "batch": 2, "consumer_key": KEY},
            "batch is for the v2, v1 and grpc protocols only, not legacy",
        ),
        ({"protocol": "legacy"}, "needs a consumer key"),
        ({"protocol": "v1", "outputs": ["x"]}, "v2 and grpc protocols"),
        ({"protocol": "v2", "tensor": True}, "v1 protocol only"),
        ({"protocol": "v2", "model": "a b"}, "model name"),
        ({"protocol": "v3"}, "unknown protocol"),
        ({"protocol": "v2", "num": 0}, "num must be"),
        ({"protocol": "legacy", "consumer_key": KEY, "endpoint_host": "a b/c"}, "host[:port]"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, problem):
    out = tmp_path / "never.replay"
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        write_prediction_replay(out, features=IRIS, **kwargs)
    assert not out.exists()


def test_v1_tensor_refuses_strings(tmp_path):
    with pytest.raises(FeatureSpecError, match="numbers only"):
        write_prediction_replay(tmp_path / "t", protocol="v1", features=MIXED, tensor=True)


def test_an_interrupted_write_leaves_the_old_file_and_no_partial(tmp_path, monkeypatch):
    out = tmp_path / "keep.replay"
    out.write_text("old\n")
    real = generate._Plan.samples

    def interrupted(self, rows, seed, chunk_rows):
        iterator = real(self, rows, seed, chunk_rows)
        yield next(iterator)
        raise KeyboardInterrupt

    monkeypatch.setattr(generate._Plan, "samples", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_prediction_replay(out, protocol="v2", features=IRIS, num=200_000)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.replay"]


# --- consumer keys ---------------------------------------------------------------------


def test_key_from_seldon_cli_output(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            [
                {
                    "db": "ClientDB",
                    "client": "iris",
                    "key": KEY,
                    "secret": "S3cretS3cret",
                    "scope": "js",
                }
            ]
        )
        + "\n"
    )
    assert load_consumer_key(str(path)) == KEY
    assert load_consumer_key(path) == KEY
    assert redact_text(f"sent {KEY} and S3cretS3cret") == "sent *** and ***"


def test_a_key_file_path_works_in_the_python_api_as_on_the_command_line(tmp_path):
    keys = tmp_path / "key.json"
    keys.write_text(json.dumps([{"client": "iris", "key": KEY, "scope": "js"}]))
    prediction = write_prediction_replay(
        tmp_path / "p.replay", protocol="legacy", features=IRIS, num=3, consumer_key=keys
    )
    recommendation = write_recommendation_replay(
        tmp_path / "r.replay", items=["7"], num_actions=2, consumer_key=keys
    )
    for replay in (prediction, recommendation):
        lines = replay.path.read_text().splitlines()
        assert lines and all(
            parse_qs(urlsplit(line).query)["consumer_key"] == [KEY] for line in lines
        )
        assert str(keys) not in replay.path.read_text()
    with pytest.raises(ConsumerKeyError, match="no such file"):
        write_prediction_replay(
            tmp_path / "x.replay",
            protocol="legacy",
            features=IRIS,
            num=1,
            consumer_key=tmp_path / "missing.json",
        )
    assert not (tmp_path / "x.replay").exists()


def test_key_given_as_is_and_last_json_line_wins(tmp_path):
    assert load_consumer_key("AbC123xyz") == "AbC123xyz"
    assert "AbC123xyz" not in redact_text("key AbC123xyz")
    text = 'noise\n[{"key": "FirstKey1"}]\n[{"key": "SecondKey2", "scope": "js"}]\n'
    assert key_from_json(text) == "SecondKey2"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[]", "lists no keys"),
        ('[{"client": "iris", "secret": "x"}]', 'no entry has a "key"'),
        ('{"keys": 3}', "no entry"),
        ("<html>", "is not the JSON"),
        ("", "is empty"),
    ],
)
def test_key_files_without_a_key_are_refused_clearly(tmp_path, content, problem):
    path = tmp_path / "key.json"
    path.write_text(content)
    with pytest.raises(ConsumerKeyError, match=problem) as caught:
        load_consumer_key(str(path))
    assert str(path) in str(caught.value)


def test_missing_key_file_and_odd_key_text(tmp_path):
    with pytest.raises(ConsumerKeyError, match="no such file"):
        load_consumer_key(str(tmp_path / "missing.json"))
    with pytest.raises(ConsumerKeyError) as caught:
        load_consumer_key("odd key!")
    assert "odd key!" not in str(caught.value)


# --- legacy responses -------------------------------------------------------------------


def test_legacy_judge_knows_seldon_server_errors():
    error = b'j({"error_id":3,"error_msg":"Invalid consumer key","http_response":401})'
    assert judge("legacy", 200, error) == "seldon_failure"
    assert judge("legacy", 200, b"/**/" + error + b";") == "seldon_failure"
    ok = (
        b'j({"meta":{"puid":"a","modelName":"iris","variation":"default"},'
        b'"predictions":[{"prediction":1.0,"predictedClass":"1","confidence":1.0}]})'
    )
    assert judge("legacy", 200, ok) is None
    assert judge("legacy", 200, b'j({"size":1,"list":[{"id":"1","name":"error log"}]})') is None
    assert unwrap_jsonp(b'/**/j({"a":1});') == b'{"a":1}'
    assert unwrap_jsonp(b'{"a":1}') == b'{"a":1}'


def test_generated_lines_parse_one_by_one():
    line = (
        "http://seldon-server/js/predict?json=%7B%22f1%22%3A+0.67%7D&consumer_key=K&jsonpCallback=j"
    )
    request = parse_line(line)
    assert request.method == "GET"
    assert request.path == "/js/predict?json=%7B%22f1%22%3A+0.67%7D&consumer_key=K&jsonpCallback=j"
