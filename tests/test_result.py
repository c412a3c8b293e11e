"""Recording, percentiles, windows, merging and persistence of load results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_seldon_load.result import SCHEMA, GeneratorHealth, LoadResult, Recorder

QUANTILES = (50, 90, 95, 99, 99.9)


def hdr_close(hdr_ms: float, exact_ms: float) -> bool:
    """Within HdrHistogram's 3 significant digits (plus the 1 µs recording unit)."""
    return abs(hdr_ms - exact_ms) <= 0.001 * exact_ms + 0.001


def exact_percentile(values_ms: np.ndarray, q: float) -> float:
    """The HdrHistogram definition: the value of rank round(q% of n), from the sorted data."""
    rank = max(1, int(q * values_ms.size / 100 + 0.5))
    return float(np.sort(values_ms)[rank - 1])


def synthetic_run(n: int = 10_000, seconds: float = 10.0, seed: int = 7):
    """Intended, sent and done times (s) of a run: lognormal latencies, small send lags."""
    rng = np.random.default_rng(seed)
    intended = np.sort(rng.uniform(0.0, seconds, n))
    sent = intended + rng.uniform(0.0, 0.002, n)
    service = rng.lognormal(mean=math.log(0.020), sigma=0.6, size=n)
    done = sent + service
    return intended, sent, done


def us(seconds: np.ndarray) -> np.ndarray:
    return np.floor(seconds * 1_000_000 + 0.5)


def feed(recorder: Recorder, intended, sent, done, statuses=None, kinds=None, indices=None):
    indices = range(len(intended)) if indices is None else indices
    for i in sorted(indices, key=lambda i: sent[i]):
        recorder.sent(intended[i], sent[i], sent[i] - intended[i])
    for i in sorted(indices, key=lambda i: done[i]):
        status = 200 if statuses is None else statuses[i]
        kind = None if kinds is None else kinds[i]
        recorder.completed(intended[i], sent[i], done[i], status, kind)


def test_percentiles_match_numpy_within_hdr_precision():
    intended, sent, done = synthetic_run()
    recorder = Recorder(warmup=0.0)
    feed(recorder, intended, sent, done)
    result = recorder.result(target_rate=1000.0, duration=10.0, scheduled=len(intended))

    latency_ms = us(done - intended) / 1000.0
    service_ms = us(done - sent) / 1000.0
    for q, got in zip(
        QUANTILES, (result.p50, result.p90, result.p95, result.p99, result.p999), strict=True
    ):
        exact = exact_percentile(latency_ms, q)
        assert hdr_close(got, exact), (q, got, exact)
        assert got == result.percentile(q)
    for q in (50, 99, 99.9):
        exact = exact_percentile(service_ms, q)
        assert hdr_close(result.service_percentile(q), exact), q
    assert hdr_close(result.max, latency_ms.max())
    assert result.mean == pytest.approx(latency_ms.mean(), rel=0.001)
    assert result.p50 < result.p99 < result.p999 <= result.max
    assert result.latency.get_total_count() == len(intended)
    assert result.service.get_total_count() == len(intended)
    assert result.requests == result.ok == result.scheduled == len(intended)
    assert result.errors == 0
    assert result.error_rate == 0.0
    assert result.status_codes == {200: len(intended)}


def test_corrected_latency_includes_the_wait_before_sending():
    recorder = Recorder(warmup=0.0)
    recorder.sent(0.0, 0.5, 0.5)
    recorder.completed(0.0, 0.5, 0.51, 200, None)
    result = recorder.result(target_rate=1.0, duration=1.0, scheduled=1)
    assert hdr_close(result.p50, 510.0)
    assert hdr_close(result.service_percentile(50), 10.0)


def test_a_send_that_leaves_early_counts_in_the_second_it_was_scheduled_for():
    recorder = Recorder(warmup=0.0)
    recorder.sent(0.0, -0.0004, 0.0)  # the first send of the run, timers rounding down
    recorder.sent(1.0, 0.9996, 0.0)
    recorder.completed(0.0, -0.0004, 0.002, 200, None)
    recorder.completed(1.0, 0.9996, 1.002, 200, None)
    result = recorder.result(target_rate=1.0, duration=2.0, scheduled=2)
    assert [(w.second, w.sent) for w in result.windows] == [(0, 1), (1, 1)]
    assert sum(w.sent for w in result.windows) == result.requests == 2


def test_sub_microsecond_latency_is_recorded_as_one_microsecond():
    recorder = Recorder(warmup=0.0)
    recorder.completed(1.0, 1.0, 1.0, 200, None)
    result = recorder.result(target_rate=1.0, duration=1.0, scheduled=1)
    assert result.p50 == 0.001


def test_warmup_is_excluded_from_everything():
    recorder = Recorder(warmup=2.0)
    for i in range(200):
        t = i * 0.01
        recorder.sent(t, t, 0.5)
        recorder.completed(t, t, t + 5.0, 503, "http_503")
    recorder.never_sent(1.99, 10.0)
    for i in range(300):
        t = 2.0 + i * 0.01
        recorder.sent(t, t, 0.0)
        recorder.completed(t, t, t + 0.005, 200, None)
    result = recorder.result(target_rate=100.0, duration=3.0, scheduled=300)
    assert result.requests == 300
    assert result.ok == 300
    assert result.errors == 0
    assert result.unsent == 0
    assert result.status_codes == {200: 300}
    assert result.error_kinds == {}
    assert result.latency.get_total_count() == 300
    assert hdr_close(result.max, 5.0)
    assert result.health.sends_checked == 300
    assert result.health.late_sends == 0
    assert [w.second for w in result.windows] == [0, 1, 2]
    assert [w["sent"] for w in result.timeline] == [100, 100, 100]


def test_errors_status_codes_and_kinds_are_counted():
    recorder = Recorder(warmup=0.0)
    outcomes = (
        [(200, None)] * 70
        + [(500, "http_500")] * 10
        + [(503, "http_503")] * 5
        + [(200, "model_error")] * 4
        + [(None, "timeout")] * 6
        + [(None, "connection_refused")] * 2
    )
    for i, (status, kind) in enumerate(outcomes):
        t = i * 0.01
        recorder.sent(t, t, 0.0)
        recorder.completed(t, t, t + 0.005, status, kind)
    for i in range(3):
        recorder.never_sent(0.97 + i * 0.01, 1.5)
    result = recorder.result(target_rate=100.0, duration=1.0, scheduled=len(outcomes) + 3)
    assert result.requests == len(outcomes)
    assert result.ok == 70
    assert result.unsent == 3
    assert result.errors == 30
    assert result.status_codes == {200: 74, 500: 10, 503: 5}
    assert result.error_kinds == {
        "http_500": 10,
        "http_503": 5,
        "model_error": 4,
        "timeout": 6,
        "connection_refused": 2,
        "unsent": 3,
    }
    assert result.error_rate == pytest.approx(30 / 100)
    assert result.latency.get_total_count() == result.scheduled
    assert result.service.get_total_count() == result.requests
    assert hdr_close(result.max, (1.5 - 0.97) * 1000)


def test_achieved_rate_and_throughput():
    result = LoadResult(
        target_rate=100.0, duration=4.0, scheduled=400, requests=380, ok=360, errors=40
    )
    assert result.achieved_rate == 95.0
    assert result.throughput == 90.0
    assert result.error_rate == 0.1


def test_empty_result_has_no_percentiles():
    result = Recorder(0.0).result(target_rate=1.0, duration=1.0, scheduled=0)
    assert math.isnan(result.p50)
    assert math.isnan(result.max)
    assert math.isnan(result.mean)
    assert result.error_rate == 0.0
    assert result.summary()["p99"] is None


@pytest.mark.parametrize("q", [-1, 100.1, 1000])
def test_percentile_out_of_range_is_refused(q):
    with pytest.raises(ValueError, match=r"percentile must be in 0\.\.100"):
        LoadResult(target_rate=1.0, duration=1.0).percentile(q)


def test_generator_health_flags_a_late_generator():
    recorder = Recorder(warmup=0.0)
    for i in range(1000):
        lag = 0.020 if i % 50 == 0 else 0.0001
        recorder.sent(i * 0.001, i * 0.001 + lag, lag)
    health = recorder.health
    assert health.sends_checked == 1000
    assert health.late_sends == 20
    assert health.max_lag_ms == pytest.approx(20.0)
    assert health.late_fraction == pytest.approx(0.02)
    assert not health.kept_up
    assert GeneratorHealth(late_sends=10, sends_checked=1000).kept_up
    assert not GeneratorHealth(late_sends=11, sends_checked=1000).kept_up


def test_a_saturated_engine_thread_did_not_keep_up_however_punctual():
    punctual = GeneratorHealth(late_sends=0, sends_checked=1000, busy_fraction=0.85)
    assert punctual.kept_up and not punctual.saturated
    saturated = GeneratorHealth(late_sends=0, sends_checked=1000, busy_fraction=0.95)
    assert saturated.saturated and not saturated.kept_up
    assert "engine thread busy 95% of the time" in saturated.describe()
    merged = GeneratorHealth()
    merged.add(punctual)
    merged.add(saturated)
    assert merged.busy_fraction == 0.95 and not merged.kept_up


def test_timeline_windows_hold_per_second_counts_and_percentiles():
    recorder = Recorder(warmup=0.0)
    per_second_latency_s = {0: 0.010, 1: 0.050, 2: 0.200}
    for second, latency in per_second_latency_s.items():
        for i in range(100):
            t = second + i * 0.005
            recorder.sent(t, t, 0.0)
            kind = "http_500" if i % 20 == 0 else None
            recorder.completed(t, t, t + latency, 500 if kind else 200, kind)
    result = recorder.result(target_rate=100.0, duration=3.0, scheduled=300)
    timeline = result.timeline
    assert [w["second"] for w in timeline] == [0, 1, 2]
    for window, latency in zip(timeline, per_second_latency_s.values(), strict=True):
        assert set(window) >= {
            "second",
            "sent",
            "ok",
            "errors",
            "p50",
            "p99",
            "service_p50",
            "service_p99",
        }
        assert not any(key.endswith("_hdr") for key in window)
        assert window["sent"] == 100
        assert window["ok"] == 95
        assert window["errors"] == 5
        assert hdr_close(window["p50"], latency * 1000)
        assert hdr_close(window["p99"], latency * 1000)
        assert hdr_close(window["service_p99"], latency * 1000)


def test_window_counts_completions_in_the_second_they_come_back():
    recorder = Recorder(warmup=0.0)
    recorder.sent(0.1, 0.1, 0.0)
    recorder.completed(0.1, 0.1, 2.5, 200, None)
    result = recorder.result(target_rate=1.0, duration=3.0, scheduled=1)
    by_second = {w["second"]: w for w in result.timeline}
    assert by_second[0]["sent"] == 1
    assert by_second[0]["ok"] == 0
    assert by_second[2]["ok"] == 1
    assert hdr_close(by_second[2]["p50"], 2400.0)


def test_windows_match_numpy_per_second_on_a_long_run():
    intended, sent, done = synthetic_run(n=20_000, seconds=20.0, seed=3)
    recorder = Recorder(warmup=0.0)
    feed(recorder, intended, sent, done)
    result = recorder.result(target_rate=1000.0, duration=20.0, scheduled=len(intended))
    latency_ms = us(done - intended) / 1000.0
    seconds_done = np.floor(done).astype(int)
    assert sum(w["ok"] for w in result.timeline) == len(intended)
    assert sum(w["sent"] for w in result.timeline) == len(intended)
    for window in result.timeline:
        in_window = latency_ms[seconds_done == window["second"]]
        assert window["ok"] == in_window.size
        assert hdr_close(window["p50"], exact_percentile(in_window, 50))
        assert hdr_close(window["p99"], exact_percentile(in_window, 99))


def mixed_recorder_data(seed: int = 1):
    intended, sent, done = synthetic_run(n=6000, seconds=6.0, seed=seed)
    rng = np.random.default_rng(seed + 100)
    draw = rng.uniform(size=len(intended))
    statuses = np.where(draw < 0.05, 500, 200).tolist()
    kinds = ["http_500" if s == 500 else None for s in statuses]
    for i in np.flatnonzero(draw > 0.98):
        statuses[i], kinds[i] = None, "timeout"
    return intended, sent, done, statuses, kinds


def build(indices, data, unsent=()) -> LoadResult:
    intended, sent, done, statuses, kinds = data
    recorder = Recorder(warmup=0.5)
    feed(recorder, intended, sent, done, statuses, kinds, indices)
    for offset in unsent:
        recorder.never_sent(offset, 7.0)
    scheduled = sum(1 for i in indices if intended[i] >= 0.5) + len(unsent)
    return recorder.result(
        target_rate=1000.0,
        duration=5.5,
        scheduled=scheduled,
        arrival="poisson",
        seed=42,
        label="iris",
    )


def test_merge_of_two_halves_equals_the_whole():
    data = mixed_recorder_data()
    everything = range(len(data[0]))
    whole = build(everything, data, unsent=[5.9, 5.95])
    halves = [
        build(range(part, len(data[0]), 2), data, unsent=[[5.9], [5.95]][part]) for part in (0, 1)
    ]
    merged = LoadResult.merge(halves)

    for field in (
        "scheduled",
        "requests",
        "ok",
        "errors",
        "unsent",
        "status_codes",
        "error_kinds",
        "duration",
    ):
        assert getattr(merged, field) == getattr(whole, field), field
    assert merged.target_rate == 2000.0
    assert merged.processes == 2
    assert merged.latency.get_total_count() == whole.latency.get_total_count()
    for q in (*QUANTILES, 0, 10, 99.99, 100):
        assert merged.percentile(q) == whole.percentile(q), q
        assert merged.service_percentile(q) == whole.service_percentile(q), q
    assert merged.max == whole.max
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.timeline == whole.timeline
    assert merged.health.sends_checked == whole.health.sends_checked
    assert merged.health.late_sends == whole.health.late_sends
    assert merged.health.max_lag_ms == whole.health.max_lag_ms
    assert merged.error_rate == whole.error_rate
    assert merged.arrival == "poisson"
    assert merged.seed == 42


def test_merge_of_one_is_itself_and_of_none_is_refused():
    data = mixed_recorder_data(seed=2)
    single = build(range(len(data[0])), data)
    merged = LoadResult.merge([single])
    assert merged.summary() == single.summary()
    assert merged.timeline == single.timeline
    with pytest.raises(ValueError, match="at least one"):
        LoadResult.merge([])


def test_json_round_trip_keeps_every_number():
    data = mixed_recorder_data(seed=3)
    original = build(range(len(data[0])), data, unsent=[5.99])
    original.started_at = 1_700_000_000.25
    original.health.busy_fraction = 0.375
    original.health.busy_fraction_allowed = 0.8
    text = original.to_json(indent=2)
    assert json.loads(text)["schema"] == SCHEMA
    restored = LoadResult.from_json(text)

    assert restored.summary() == original.summary()
    assert restored.to_dict() == original.to_dict()
    assert restored.status_codes == original.status_codes
    assert all(isinstance(code, int) for code in restored.status_codes)
    assert restored.error_kinds == original.error_kinds
    assert restored.timeline == original.timeline
    assert restored.health == original.health
    assert restored.seed == 42
    assert restored.started_at == original.started_at
    for histogram in ("latency", "service"):
        a, b = getattr(original, histogram), getattr(restored, histogram)
        assert a.get_total_count() == b.get_total_count()
        assert a.get_min_value() == b.get_min_value()
        assert a.get_max_value() == b.get_max_value()
        for q in (0.1, 1, 25, 50, 75, 90, 99, 99.9, 99.99, 100):
            assert a.get_value_at_percentile(q) == b.get_value_at_percentile(q)
    for w_original, w_restored in zip(original.windows, restored.windows, strict=True):
        assert w_original.latency.get_total_count() == w_restored.latency.get_total_count()
        assert w_original.service_p99 == w_restored.service_p99


def test_json_round_trip_of_an_empty_result():
    empty = LoadResult(target_rate=5.0, duration=2.0)
    restored = LoadResult.from_json(empty.to_json())
    assert restored.summary() == empty.summary()
    assert restored.latency.get_total_count() == 0


def test_merged_result_survives_json():
    data = mixed_recorder_data(seed=4)
    merged = LoadResult.merge(build(range(p, len(data[0]), 3), data) for p in range(3))
    restored = LoadResult.from_json(merged.to_json())
    assert restored.to_dict() == merged.to_dict()
    assert restored.processes == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("garbage", "not a load result: invalid JSON"),
        ("", "not a load result: invalid JSON"),
        ("{}", "not a load result: schema is None"),
        ('{"schema": "something/else/9"}', "schema is 'something/else/9'"),
    ],
)
def test_from_json_refuses_what_is_not_a_result(text, match):
    with pytest.raises(ValueError, match=match):
        LoadResult.from_json(text)


@pytest.mark.parametrize("text", ["[1, 2]", "42", "null", '"text"'])
def test_from_json_refuses_json_that_is_not_an_object(text):
    with pytest.raises(ValueError, match="not a load result"):
        LoadResult.from_json(text)


def test_from_json_refuses_a_result_missing_fields():
    with pytest.raises(ValueError, match="target_rate"):
        LoadResult.from_json(json.dumps({"schema": SCHEMA}))


def test_from_json_refuses_a_corrupted_histogram():
    good = json.loads(LoadResult(target_rate=1.0, duration=1.0).to_json())
    good["latency_hdr"] = "HISTFAAAAxyz"
    with pytest.raises(ValueError):
        LoadResult.from_json(json.dumps(good))
