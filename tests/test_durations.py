"""Budgets and durations as users write them."""

from __future__ import annotations

import math

import pytest

from pytest_seldon_load.durations import format_ms, parse_budget_ms, parse_duration_s


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("50ms", 50.0),
        ("0.2s", 200.0),
        ("750us", 0.75),
        ("750µs", 0.75),
        (50, 50.0),
        (12.5, 12.5),
        ("50", 50.0),
        ("2m", 120_000.0),
        ("2min", 120_000.0),
        ("1h", 3_600_000.0),
        (" 50 ms ", 50.0),
        ("1.5s", 1500.0),
        (".5s", 500.0),
        ("1e3us", 1.0),
    ],
)
def test_budget_parses(value, expected_ms):
    assert parse_budget_ms(value) == pytest.approx(expected_ms, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "expected_s"),
    [("20s", 20.0), (3, 3.0), (2.5, 2.5), ("3", 3.0), ("500ms", 0.5), ("2m", 120.0), ("0s", 0.0)],
)
def test_duration_parses(value, expected_s):
    assert parse_duration_s(value) == pytest.approx(expected_s, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "expected_s"),
    [
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("1h2m3.5s", 3723.5),
        ("1m0.5s", 60.5),
        ("1s500ms", 1.5),
        ("90m", 5400.0),
        ("300ns", 3e-7),
        (" 1m30s ", 90.0),
    ],
)
def test_go_and_k6_durations_parse(value, expected_s):
    assert parse_duration_s(value) == pytest.approx(expected_s, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("1m30", ["'1m30'", "cannot read"]),  # Go refuses a part without its unit, so do we
        ("1m 30s", ["'1m 30s'", "cannot read"]),
        ("1m-30s", ["'1m-30s'"]),
        ("1x30s", ["unknown unit 'x'", "ns, us, ms, s, m, h"]),
        ("m30s", ["'m30s'"]),
    ],
)
def test_bad_compound_durations_are_refused_naming_the_part(value, names):
    with pytest.raises(ValueError) as info:
        parse_duration_s(value, "--load-timeout")
    message = str(info.value)
    assert message.startswith("--load-timeout: ")
    for name in names:
        assert name in message, message


def test_compound_budgets_read_like_durations():
    assert parse_budget_ms("1s250ms") == 1250.0


def test_same_string_means_the_same_in_budgets_and_durations():
    assert parse_budget_ms("1.5s") == parse_duration_s("1.5s") * 1000


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("fast", ["'fast'", "cannot read"]),
        ("-1ms", ["'-1ms'"]),
        ("10 parsecs", ["'parsecs'", "unknown unit"]),
        ("5 ms extra", ["'5 ms extra'"]),
        ("", ["''"]),
        (None, ["None"]),
        (True, ["True"]),
        (False, ["False"]),
        ([50], ["[50]"]),
        (-1, ["-1", "non-negative"]),
        (math.nan, ["nan", "finite"]),
        (math.inf, ["inf", "finite"]),
        ("0ms", ["zero", "'0ms'"]),
        (0, ["zero"]),
    ],
)
def test_bad_budget_is_refused_with_a_clear_message(value, names):
    with pytest.raises(ValueError) as info:
        parse_budget_ms(value, what="p99 budget")
    message = str(info.value)
    assert message.startswith("p99 budget:")
    for name in names:
        assert name in message


@pytest.mark.parametrize("value", ["fast", "-1s", "10 parsecs", None, True, -3, math.nan])
def test_bad_duration_is_refused_with_a_clear_message(value):
    with pytest.raises(ValueError, match=r"^duration: .*") as info:
        parse_duration_s(value)
    assert repr(value) in str(info.value)


def test_unknown_unit_message_lists_the_units():
    with pytest.raises(ValueError) as info:
        parse_budget_ms("3 fortnights")
    for unit in ("us", "ms", "s", "m", "h"):
        assert unit in str(info.value)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0.25, "250us"), (5.0, "5.00ms"), (50.0, "50.0ms"), (1500.0, "1.50s"), (math.nan, "n/a")],
)
def test_format_ms(ms, text):
    assert format_ms(ms) == text
