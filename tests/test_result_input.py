"""`LoadResult.from_json` reads only what it can vouch for, and names the field it refuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pytest_seldon_load.result import LoadResult, Recorder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def recorded() -> dict:
    recorder = Recorder(warmup=0.0)
    for i in range(200):
        t = i / 100
        recorder.sent(t, t, 0.0)
        recorder.completed(t, t, t + 0.005, 200, None)
    return recorder.result(target_rate=100, duration=2, scheduled=200).to_dict()


def refused(data: dict | str) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ValueError) as caught:
        LoadResult.from_json(text)
    return str(caught.value)


def test_a_five_thousand_digit_number_is_refused_naming_nothing_else():
    text = json.dumps(recorded()).replace('"requests": 200', '"requests": ' + "9" * 5000)
    assert "not a load result" in refused(text)


def test_a_huge_count_is_refused_naming_its_field():
    data = recorded()
    data["ok"] = 10**30
    assert "ok: out of range" in refused(data)


def test_very_deep_nesting_is_a_value_error():
    assert "nested too deeply" in refused("[" * 100_000 + "]" * 100_000)


def test_a_damaged_window_histogram_names_its_second():
    data = recorded()
    data["timeline"][1]["latency_hdr"] = data["timeline"][1]["latency_hdr"][:-8] + "AAAAAAAA"
    assert "timeline[1].latency_hdr" in refused(data)


def test_a_window_of_the_wrong_type_is_named():
    data = recorded()
    data["timeline"][0] = [1, 2]
    assert "timeline[0]: expected an object" in refused(data)
    data["timeline"] = "soon"
    assert "timeline: expected a list" in refused(data)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("duration", float("nan"), "duration: out of range"),
        ("target_rate", "fast", "target_rate: expected a number"),
        ("status_codes", {"OK": 3}, "status_codes"),
        ("error_kinds", {"x": "many"}, "error_kinds.x"),
        ("health", [], "health: expected an object"),
        ("interrupted", "yes", "interrupted: expected true or false"),
        ("judgements", "passed", "judgements"),
        ("kind", "mystery", "kind is 'mystery'"),
    ],
)
def test_a_field_of_the_wrong_kind_is_named(field, value, named):
    data = recorded()
    data[field] = value
    assert named in refused(data)


def test_an_empty_timeline_reads_as_a_result_without_windows():
    data = recorded()
    data["timeline"] = []
    result = LoadResult.from_json(json.dumps(data))
    assert result.windows == [] and result.requests == 200


def test_a_summary_only_result_is_read_without_importing_iago_at_the_top():
    from pytest_seldon_load.iago.stats import SummaryLoadResult

    summary = SummaryLoadResult(
        target_rate=5, duration=1, latency_summary={"count": 5, "p99": 4.0}, notes=["n"]
    )
    restored = LoadResult.from_json(summary.to_json())
    assert isinstance(restored, SummaryLoadResult) and restored.p99 == 4.0
    broken = summary.to_dict()
    broken["latency_summary"] = {"p99": "slow"}
    assert "latency_summary" in refused(broken)


def test_result_module_does_not_import_iago():
    source = Path(LoadResult.__module__.replace(".", "/") + ".py")
    text = (Path(__file__).resolve().parent.parent / source).read_text()
    assert "import iago" not in text and ".iago" not in text.replace('"pytest_seldon_load.iago', "")


def test_seeded_fuzz_finds_no_exception_but_value_error():
    from fuzz_result_json import fuzz

    read, rejected, findings = fuzz(cases=400, seed=11)
    assert findings == []
    assert read > 0 and rejected > 0
