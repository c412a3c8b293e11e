"""A run's parameters, spelled and checked in one place: RunPlan and EngineSettings."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from pytest_seldon_load.durations import number_option, parse_count, parse_number
from pytest_seldon_load.plan import RUN_OPTIONS, EngineSettings, PlanError, RunPlan


def test_values_are_read_as_users_write_them_and_kept_normalised():
    plan = RunPlan(
        rate="100",
        duration="20s",
        warmup="500ms",
        arrival="slow-start",
        seed="7",
        ramp="1m",
        ramp_from=2,
        settings=EngineSettings(connections=8.0, timeout="2s", lag_threshold_ms="0"),
        label="x",
    )
    assert (plan.rate, plan.duration, plan.warmup, plan.ramp) == (100.0, 20.0, 0.5, 60.0)
    assert (plan.arrival, plan.seed, plan.ramp_from) == ("slow-start-poisson", 7, 2.0)
    assert isinstance(plan.seed, int) and isinstance(plan.settings.connections, int)
    assert (plan.settings.timeout, plan.settings.lag_threshold_ms) == (2.0, 0.0)
    assert plan.total == 20.5


def test_defaults():
    plan = RunPlan(rate=1, duration=1)
    assert (plan.warmup, plan.arrival, plan.seed, plan.ramp, plan.ramp_from) == (
        0.0,
        "constant",
        None,
        None,
        None,
    )
    assert plan.settings == EngineSettings() and plan.label == ""
    assert RunPlan(rate=1, duration=1, settings=None).settings == EngineSettings()


BAD_PLANS = [
    ("rate", 0),
    ("rate", -5),
    ("rate", math.nan),
    ("rate", math.inf),
    ("rate", "abc"),
    ("rate", None),
    ("rate", True),
    ("rate", [10]),
    ("duration", 0),
    ("duration", "0s"),
    ("duration", -1),
    ("duration", math.nan),
    ("duration", math.inf),
    ("duration", "soon"),
    ("warmup", -1),
    ("warmup", math.nan),
    ("warmup", math.inf),
    ("warmup", "abc"),
    ("ramp", -1),
    ("ramp", math.nan),
    ("ramp", math.inf),
    ("ramp", "abc"),
    ("ramp_from", -1),
    ("ramp_from", math.nan),
    ("ramp_from", math.inf),
    ("ramp_from", "abc"),
    ("seed", "abc"),
    ("seed", -1),
    ("seed", 1.5),
    ("seed", True),
    ("arrival", "bursty"),
    ("arrival", None),
    ("label", 3),
    ("settings", {"connections": 3}),
]


@pytest.mark.parametrize(("argument", "value"), BAD_PLANS)
def test_a_bad_plan_value_is_refused_naming_the_argument(argument, value):
    arguments = {"rate": 10, "duration": 1, argument: value}
    with pytest.raises(PlanError) as refused:
        RunPlan(**arguments)
    assert refused.value.argument == argument
    assert str(refused.value).startswith(f"{argument}: "), refused.value
    assert repr(value) in str(refused.value)


BAD_SETTINGS = [
    ("connections", 0),
    ("connections", -1),
    ("connections", "abc"),
    ("connections", 2.5),
    ("max_in_flight", 0),
    ("timeout", 0),
    ("timeout", "0s"),
    ("timeout", math.nan),
    ("timeout", math.inf),
    ("timeout", "abc"),
    ("lag_threshold_ms", math.nan),
    ("lag_threshold_ms", -1),
    ("lag_threshold_ms", "abc"),
    ("late_fraction_allowed", 1.5),
    ("busy_fraction_allowed", math.nan),
    ("part", -1),
    ("parts", 0),
]


@pytest.mark.parametrize(("argument", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_refused_naming_it(argument, value):
    with pytest.raises(PlanError) as refused:
        EngineSettings(**{argument: value})
    assert refused.value.argument == argument
    assert str(refused.value).startswith(f"{argument}: ")


def test_a_part_beyond_the_parts_is_refused():
    with pytest.raises(PlanError, match=r"^part: must be in 0\.\.1, got 2"):
        EngineSettings(part=2, parts=2)


def test_a_plan_is_immutable_and_its_copies_are_checked_too():
    plan = RunPlan(rate=10, duration=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.rate = 20  # type: ignore[misc]
    with pytest.raises(PlanError, match=r"^rate: "):
        dataclasses.replace(plan, rate=math.nan)


def test_scaling_multiplies_durations_and_rate_only():
    plan = RunPlan(rate=10, duration=4, warmup=2, ramp=8, ramp_from=3).scaled(time=0.25, rate=2)
    assert (plan.rate, plan.duration, plan.warmup, plan.ramp, plan.ramp_from) == (
        20.0,
        1.0,
        0.5,
        2.0,
        3.0,
    )
    assert RunPlan(rate=10, duration=4).scaled(time=2).ramp is None


def test_from_options_takes_the_flat_load_run_names():
    plan = RunPlan.from_options(
        {"rate": 5, "duration": "2s", "connections": 3, "timeout": "1s", "seed": None}
    )
    assert (plan.rate, plan.duration, plan.seed) == (5.0, 2.0, None)
    assert (plan.settings.connections, plan.settings.timeout) == (3, 1.0)
    assert {"rate", "duration", "connections", "lag_threshold_ms", "label"} <= RUN_OPTIONS
    with pytest.raises(PlanError, match=r"^rate: missing"):
        RunPlan.from_options({"duration": 1})
    with pytest.raises(PlanError, match=r"unknown run option.*durations"):
        RunPlan.from_options({"rate": 1, "durations": 1})
    with pytest.raises(PlanError, match=r"^connections: must be at least 1, got 0"):
        RunPlan.from_options({"rate": 1, "duration": 1, "connections": 0})


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("2.5", {}, 2.5),
        ("1e3", {}, 1000.0),
        ("0", {"allow_zero": True}, 0.0),
        ("64", {"whole": True}, 64),
        ("0", {"whole": True, "allow_zero": True}, 0),
    ],
)
def test_the_numeric_option_type_reads_numbers(text, options, expected):
    value = number_option(**options)(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("0", {}, "must be a positive number, got '0'"),
        ("-1", {"allow_zero": True}, "must be a number >= 0, got '-1'"),
        ("nan", {"allow_zero": True}, "must be a number >= 0, got 'nan'"),
        ("inf", {}, "must be a positive number, got 'inf'"),
        ("abc", {}, "must be a positive number, got 'abc'"),
        ("0", {"whole": True}, "must be at least 1, got 0"),
        ("2.5", {"whole": True}, "must be a whole number, got '2.5'"),
        ("many", {"whole": True, "allow_zero": True}, "must be a whole number, got 'many'"),
    ],
)
def test_the_numeric_option_type_refuses_with_a_usage_error(text, options, message):
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        number_option(**options)(text)
    assert str(refused.value) == message


def test_number_readers_name_what_they_read():
    with pytest.raises(ValueError, match=r"^rate: must be a positive number, got 'x'$"):
        parse_number("x", "rate")
    with pytest.raises(ValueError, match=r"^seed: must be at least 0, got -2$"):
        parse_count("-2", "seed", least=0)
    assert parse_count(64.0, "connections") == 64
