"""End to end: the plugin's own fixtures against a real MLServer on loopback."""

from __future__ import annotations

import pytest

from pytest_seldon_load import assert_error_rate_below, assert_p99_below


@pytest.mark.load
def test_iris_replay_against_real_mlserver(seldon_local, replay_file, load_run):
    replay = replay_file.prediction(seldon_local, num=200, seed=3)
    # Punctuality is judged loosely: other tests share the two cores with this one.
    result = load_run(
        seldon_local,
        replay,
        rate=50,
        duration="2s",
        warmup="0.5s",
        arrival="poisson",
        lag_threshold_ms=50,
    )
    assert result.engine == "embedded"
    assert result.status_codes.get(200, 0) == result.requests > 0
    assert result.errors == 0
    assert result.kept_up
    assert 0 < result.service_percentile(50) <= result.p99
    assert_error_rate_below(result, 0)
    assert_p99_below(result, "1s")


def test_v2_failure_body_from_real_mlserver_counts_as_error(seldon_local, replay_file, load_run):
    """A request with the wrong number of features: MLServer answers 500 with an error body."""
    bad = (
        "POST /v2/models/iris/infer Content-Type:application/json "
        '{"inputs":[{"name":"predict","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}'
    )
    result = load_run(
        seldon_local, replay_file.from_requests([bad]), rate=20, duration=1, lag_threshold_ms=50
    )
    assert result.errors == result.requests == 20
    assert result.error_kinds == {"http_500": 20}
