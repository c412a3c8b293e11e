"""Arrival schedules: shape, statistics, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_seldon_load.pacer import IAGO_SLOW_START_RAMP_S, Pacer, RateProfile


def schedule(pacer: Pacer, chunk: int = 8192) -> np.ndarray:
    return np.concatenate(list(pacer.offsets(chunk=chunk)))


def window_counts(offsets: np.ndarray, seconds: int) -> np.ndarray:
    return np.histogram(offsets, bins=np.arange(seconds + 1))[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_poisson_gaps_are_exponential_with_mean_and_variance_of_the_rate(seed):
    rate = 1000.0
    offsets = schedule(Pacer("poisson", rate, 100.0, seed=seed))
    gaps = np.diff(np.concatenate([[0.0], offsets]))
    assert abs(offsets.size - 100_000) < 4 * math.sqrt(100_000)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.var() == pytest.approx(1 / rate**2, rel=0.03)
    # Exponential, not merely the right two moments: P(gap > mean) = e^-1.
    assert (gaps > 1 / rate).mean() == pytest.approx(math.exp(-1), abs=0.01)


def test_poisson_counts_per_second_have_poisson_dispersion():
    counts = window_counts(schedule(Pacer("poisson", 500, 100.0, seed=11)), 100)
    assert counts.mean() == pytest.approx(500, rel=0.02)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.35)


@pytest.mark.parametrize(("rate", "duration"), [(200, 5.0), (1000, 3.0), (7, 2.0), (0.5, 10.0)])
def test_constant_has_exact_count_and_even_spacing(rate, duration):
    offsets = schedule(Pacer("constant", rate, duration, seed=0))
    assert offsets.size == round(rate * duration)
    assert offsets[0] == 0.0
    assert offsets[-1] < duration
    np.testing.assert_allclose(np.diff(offsets), 1 / rate, rtol=1e-9)
    np.testing.assert_allclose(offsets, np.arange(offsets.size) / rate, rtol=0, atol=1e-12)


def test_constant_ignores_the_seed():
    a = schedule(Pacer("constant", 100, 2.0, seed=1))
    b = schedule(Pacer("constant", 100, 2.0, seed=2))
    assert np.array_equal(a, b)


def ramp_integral(start: float, end: float, ramp: float, t0: float, t1: float) -> float:
    def big_lambda(t: float) -> float:
        head = min(t, ramp)
        return start * head + (end - start) / ramp * head * head / 2 + end * max(0.0, t - ramp)

    return big_lambda(t1) - big_lambda(t0)


@pytest.mark.parametrize("seed", [4, 5])
def test_slow_start_poisson_follows_the_linear_ramp_then_holds(seed):
    rate, ramp, duration = 200.0, 10.0, 20.0
    pacer = Pacer("slow-start-poisson", rate, duration, ramp=ramp, ramp_from=1.0, seed=seed)
    counts = window_counts(schedule(pacer), int(duration))
    for second, count in enumerate(counts):
        expected = ramp_integral(1.0, rate, ramp, second, second + 1)
        assert abs(count - expected) <= 4 * math.sqrt(expected) + 2, (second, count, expected)
    in_ramp = ramp_integral(1.0, rate, ramp, 0, ramp)
    assert abs(counts[:10].sum() - in_ramp) <= 4 * math.sqrt(in_ramp)
    assert abs(counts[10:].sum() - rate * 10) <= 4 * math.sqrt(rate * 10)
    assert counts[:5].sum() < counts[5:10].sum() < counts[10:15].sum()


def test_evenly_spaced_ramp_matches_the_integral_within_one_request():
    rate, ramp, duration = 200.0, 10.0, 15.0
    pacer = Pacer("ramp", rate, duration, ramp=ramp, ramp_from=1.0, seed=0)
    offsets = schedule(pacer)
    counts = window_counts(offsets, int(duration))
    for second, count in enumerate(counts):
        expected = ramp_integral(1.0, rate, ramp, second, second + 1)
        assert abs(count - expected) <= 1.0, (second, count, expected)
    assert offsets.size == math.ceil(pacer.expected_count)
    held = np.diff(offsets[offsets >= ramp])
    np.testing.assert_allclose(held, 1 / rate, rtol=1e-6)


def test_ramp_defaults_to_ramping_from_zero_over_the_whole_run():
    pacer = Pacer("ramp", 100.0, 10.0, seed=0)
    assert pacer.profile.ramp == 10.0
    assert pacer.profile.start_rate == 0.0
    assert pacer.expected_count == pytest.approx(500.0)
    assert schedule(pacer).size == 500


def test_slow_start_defaults_to_iagos_ramp():
    pacer = Pacer("slow-start", 50.0, 10.0, seed=0)
    assert pacer.arrival == "slow-start-poisson"
    assert pacer.profile.ramp == IAGO_SLOW_START_RAMP_S
    assert pacer.profile.start_rate == 1.0


@pytest.mark.parametrize("arrival", ["poisson", "slow-start-poisson", "ramp", "constant"])
def test_same_seed_same_offsets(arrival):
    a = schedule(Pacer(arrival, 300, 5.0, ramp=2.0, seed=1234))
    b = schedule(Pacer(arrival, 300, 5.0, ramp=2.0, seed=1234))
    assert a.size > 0
    assert np.array_equal(a, b)


@pytest.mark.parametrize("arrival", ["poisson", "slow-start-poisson"])
def test_different_seeds_differ(arrival):
    a = schedule(Pacer(arrival, 300, 5.0, ramp=2.0, seed=1))
    b = schedule(Pacer(arrival, 300, 5.0, ramp=2.0, seed=2))
    assert a.size != b.size or not np.array_equal(a, b)
    assert not np.array_equal(a[:100], b[:100])


def test_unseeded_pacers_draw_their_own_seed():
    a, b = Pacer("poisson", 100, 1.0), Pacer("poisson", 100, 1.0)
    assert isinstance(a.seed, int)
    assert a.seed != b.seed
    assert np.array_equal(schedule(a), schedule(Pacer("poisson", 100, 1.0, seed=a.seed)))


@pytest.mark.parametrize("arrival", ["constant", "ramp"])
def test_chunking_does_not_change_an_evenly_spaced_sequence(arrival):
    pacer = Pacer(arrival, 1000, 20.0, ramp=10.0, seed=5)
    assert np.array_equal(schedule(pacer, chunk=7), schedule(pacer, chunk=8192))
    assert np.array_equal(schedule(pacer, chunk=1), schedule(pacer, chunk=3))


@pytest.mark.parametrize("arrival", ["poisson", "slow-start-poisson"])
def test_chunking_keeps_a_poisson_sequence_to_within_rounding(arrival):
    pacer = Pacer(arrival, 1000, 20.0, ramp=10.0, seed=5)
    small, large = schedule(pacer, chunk=7), schedule(pacer, chunk=8192)
    assert small.size == large.size
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-9)


@pytest.mark.parametrize("arrival", ["poisson", "slow-start-poisson"])
def test_chunking_does_not_change_a_poisson_sequence_exactly(arrival):
    pacer = Pacer(arrival, 1000, 20.0, ramp=10.0, seed=5)
    assert np.array_equal(schedule(pacer, chunk=7), schedule(pacer, chunk=8192))


@pytest.mark.parametrize("arrival", ["poisson", "constant", "slow-start-poisson", "ramp"])
def test_offsets_ascend_inside_the_run(arrival):
    offsets = schedule(Pacer(arrival, 400, 3.0, ramp=1.5, seed=9), chunk=100)
    assert offsets.size > 0
    assert offsets.min() >= 0.0
    assert offsets.max() < 3.0
    assert np.all(np.diff(offsets) >= 0)


def test_chunks_have_the_requested_size_except_the_last():
    sizes = [c.size for c in Pacer("constant", 100, 10.0, seed=0).offsets(chunk=64)]
    assert sum(sizes) == 1000
    assert all(s == 64 for s in sizes[:-1])
    assert 0 < sizes[-1] <= 64


@pytest.mark.parametrize(
    ("alias", "arrival"),
    [
        ("uniform", "constant"),
        ("slow_start", "slow-start-poisson"),
        ("slow_start_poisson", "slow-start-poisson"),
        ("linear", "ramp"),
    ],
)
def test_aliases(alias, arrival):
    pacer = Pacer(alias, 10, 1.0, seed=0)
    assert pacer.arrival == arrival
    assert pacer.poisson == (arrival == "slow-start-poisson")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arrival": "bursty", "rate": 10, "duration": 1.0}, r"arrival.*'bursty'.*poisson"),
        ({"arrival": "poisson", "rate": -5, "duration": 1.0}, r"rate.*-5"),
        ({"arrival": "poisson", "rate": 0, "duration": 1.0}, r"rate"),
        ({"arrival": "poisson", "rate": math.nan, "duration": 1.0}, r"rate"),
        ({"arrival": "poisson", "rate": math.inf, "duration": 1.0}, r"rate"),
        ({"arrival": "constant", "rate": 10, "duration": 0}, r"duration"),
        ({"arrival": "constant", "rate": 10, "duration": -1.0}, r"duration"),
        ({"arrival": "ramp", "rate": 10, "duration": 1.0, "ramp": -1.0}, r"not be negative"),
        ({"arrival": "ramp", "rate": 10, "duration": 1.0, "ramp_from": -1.0}, r"not be negative"),
    ],
)
def test_bad_pacer_arguments_raise(kwargs, match):
    arrival = kwargs.pop("arrival")
    with pytest.raises(ValueError, match=match):
        Pacer(arrival, **kwargs)


def test_rate_profile_inverse_is_the_inverse():
    profile = RateProfile(rate=200.0, ramp=10.0, start_rate=1.0)
    times = np.linspace(0.0, 20.0, 401)
    counts = np.array([profile.expected(t) for t in times])
    np.testing.assert_allclose(profile.time_of(counts), times, rtol=1e-9, atol=1e-9)
    assert profile.rate_at(0.0) == 1.0
    assert profile.rate_at(5.0) == pytest.approx(100.5)
    assert profile.rate_at(15.0) == 200.0


def test_ramp_from_zero_starts_slowly():
    profile = RateProfile(rate=100.0, ramp=10.0, start_rate=0.0)
    assert profile.time_of(np.array([0.0]))[0] == 0.0
    assert profile.time_of(np.array([5.0]))[0] == pytest.approx(1.0)


def test_describe_names_the_schedule():
    assert Pacer("constant", 200, 5.0).describe() == "constant 200/s for 5s"
    assert "1→200/s over 10s" in Pacer("slow-start-poisson", 200, 20.0, ramp=10.0).describe()
