"""The hdr module: slots, percentiles, packing and decoding agree with hdrh itself."""

from __future__ import annotations

import base64
import math

import numpy as np
import pytest

from pytest_seldon_load import hdr
from pytest_seldon_load.result import Recorder, Window


def histogram_of(values) -> object:
    histogram = hdr.new_histogram()
    for value in values:
        histogram.record_value(int(value))
    return histogram


def lognormal_us(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.lognormal(math.log(5000), 0.8, n)).astype(np.int64)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_equal_hdrh_own(seed):
    histogram = histogram_of(lognormal_us(3000, seed))
    for q in (0, 0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        assert hdr.percentile_ms(histogram, q) == histogram.get_value_at_percentile(q) / 1000.0


def test_percentiles_of_ties_and_single_values_equal_hdrh():
    for values in ([7], [7, 7], [5, 9], [5, 5, 9, 9], [1, 2, 3, 4] * 25):
        histogram = histogram_of(values)
        for q in (1, 25, 50, 75, 99, 100):
            assert hdr.percentile_ms(histogram, q) == histogram.get_value_at_percentile(q) / 1000.0


def test_percentiles_of_no_data_are_nan_not_an_error():
    assert math.isnan(hdr.percentile_ms(hdr.new_histogram(), 99))
    assert hdr.percentiles(np.zeros((3, 0)), 99.0).shape == (3,)
    assert np.isnan(hdr.percentiles(np.zeros((3, 0)), 99.0)).all()


def test_mean_equals_hdrh_mean():
    histogram = histogram_of(lognormal_us(2000, 4))
    assert hdr.mean_us(histogram) == pytest.approx(histogram.get_mean_value(), rel=1e-12)


def test_difference_is_what_was_recorded_in_between():
    before = histogram_of(lognormal_us(500, 5))
    later = hdr.copy(before)
    extra = lognormal_us(300, 6)
    for value in extra:
        later.record_value(int(value))
    between = hdr.difference(later, before)
    expected = histogram_of(extra)
    assert between.get_total_count() == 300
    assert np.array_equal(hdr.counts_view(between), hdr.counts_view(expected))
    assert between.get_max_value() == expected.get_max_value()
    assert between.get_min_value() == expected.get_min_value()


def test_packed_keeps_every_count_and_adds_exactly():
    a, b = histogram_of(lognormal_us(1000, 7)), histogram_of(lognormal_us(1000, 8))
    packed_a, packed_b = hdr.Packed.of(a), hdr.Packed.of(b)
    assert np.array_equal(packed_a.counts(), hdr.counts_view(a))
    assert packed_a.encode() == hdr.encode(a)
    both = hdr.add(hdr.copy(a), b)
    assert np.array_equal((packed_a + packed_b).counts(), hdr.counts_view(both))
    for q in (0, 50, 99, 99.9, 100):
        assert packed_a.percentile_ms(q) == hdr.percentile_ms(a, q)
    assert len(packed_a) < 2000  # a second of 1,000 answers, packed


def test_packed_holds_counts_too_large_for_narrow_integers():
    counts = np.zeros(hdr.slot_count(), dtype=np.uint64)
    counts[[3, 900, 23_000]] = [1, 70_000, 5_000_000_000]
    assert np.array_equal(hdr.Packed.of_counts(counts).counts(), counts)


def test_a_closed_window_is_small_and_reads_like_the_live_one():
    recorder = Recorder(warmup=0.0)
    latencies = lognormal_us(3000, 9) / 1e6
    for second in range(3):
        for i in range(1000):
            t = second + i / 1000
            recorder.sent(t, t, 0.0)
            recorder.completed(t, t, t + latencies[second * 1000 + i], 200, None)
    assert recorder._windows[2].is_open and not recorder._windows[0].is_open
    before = [recorder._windows[s].p99 for s in range(3)]
    result = recorder.result(target_rate=1000, duration=3, scheduled=3000)
    assert [w.p99 for w in result.windows[:3]] == before
    assert all(0 < w.size < 4000 for w in result.windows)
    assert [w["second"] for w in result.timeline][:3] == [0, 1, 2]  # read: stays packed
    assert not any(w.is_open for w in result.windows)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"\x00" * 20).decode(), "bad header"),
        ("HISTFAAAAxyz", "latency_hdr"),
    ],
)
def test_decode_names_the_field_of_a_damaged_histogram(text, match):
    with pytest.raises(ValueError, match=match):
        hdr.decode(text, "latency_hdr")


def test_decode_refuses_a_histogram_of_another_shape():
    from hdrh.histogram import HdrHistogram

    other = HdrHistogram(1, 2**62, 5)  # would allocate hundreds of MB when added
    other.record_value(100)
    with pytest.raises(ValueError, match="another shape"):
        hdr.decode(other.encode().decode(), "timeline[0].latency_hdr")


def test_decode_refuses_a_compression_bomb():
    import struct
    import zlib

    payload = zlib.compress(b"\x00" * 5_000_000)
    text = base64.b64encode(struct.pack(">II", 0x1C849314, len(payload)) + payload).decode()
    with pytest.raises(ValueError, match="wrong size"):
        hdr.decode(text, "service_hdr")


def test_a_window_from_text_equals_the_recorded_one():
    histogram = histogram_of(lognormal_us(500, 10))
    text = hdr.encode(histogram)
    window = Window(4, sent=500, ok=500, latency_hdr=text, service_hdr=text)
    assert window.to_dict()["latency_hdr"] == text
    assert window.p99 == hdr.percentile_ms(histogram, 99)
