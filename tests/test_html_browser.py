"""The HTML report in a real headless browser: it renders, draws every chart, logs nothing.

Chromium dumps the DOM after the page's script ran (the script marks the page with the number
of charts it wired up) and logs every console message to stderr. A probe page that does log
proves the console is really being read, so a silent report means a clean one.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_seldon_load.regression import compare_runs, judge_comparison
from pytest_seldon_load.report.html import render_report, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)

QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-extensions",
    "--disable-default-apps",
)
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)$")


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after load, and every console message the page produced."""
    assert CHROMIUM is not None
    completed = subprocess.run(
        [
            CHROMIUM,
            *QUIET_FLAGS,
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    console = [m.group(1) for line in completed.stderr.splitlines() if (m := CONSOLE.search(line))]
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout, console


def _runs():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    power = importlib.import_module("regression_power")
    runs, baselines = [], {}
    for index, (model, scale) in enumerate(((power.STEADY, 1.3), (power.DISTURBED, 1.0))):
        baseline = power.synthetic_run(np.random.default_rng(index), 150, 12, model)
        current = power.synthetic_run(np.random.default_rng(index + 10), 150, 12, model, scale)
        current.judgements.append({"budget": "p99 < 5.00ms", "passed": True, "measured": 3.0})
        judge_comparison(current, compare_runs(baseline, current, baseline_name="main"))
        key = f"tests/test_iris.py::test_{model.name}"
        runs.append(current.to_dict() | {"nodeid": key, "key": key, "verdict": "pass"})
        baselines[key] = baseline
    lone = power.synthetic_run(np.random.default_rng(99), 50, 5)
    lone.errors, lone.status_codes, lone.error_kinds = 2, {200: 250, 503: 2}, {"http_503": 2}
    lone.error_samples.offer("http_503", 503, b'{"error": "<b>overloaded</b>", "token": "t0k3n"}')
    runs.append(
        lone.to_dict()
        | {"nodeid": "t::lone", "key": "t::lone", "verdict": "test failed", "failure": "boom"}
    )
    return runs, baselines


def test_the_report_renders_every_chart_with_a_silent_console(tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(
        "<!DOCTYPE html><html><body><script>console.error('probe-error');</script></body></html>"
    )
    _, probe_console = open_in_chromium(probe, tmp_path / "profile-probe")
    assert any("probe-error" in message for message in probe_console), (
        "chromium's console log could not be read, so a clean report would prove nothing"
    )

    runs, baselines = _runs()
    page = write_report(tmp_path / "report.html", render_report(runs, baselines, created="now"))
    dom, console = open_in_chromium(page, tmp_path / "profile-report")
    assert console == [], console
    assert re.search(r'<html lang="en" data-charts="9"', dom), dom[:300]
    charts = re.findall(r'<svg class="chart (\w+)"', dom)
    assert charts == ["latency", "spectrum", "throughput"] * 3
    assert dom.count('<section class="run"') == 3
    for svg in re.findall(r"<svg class=\"chart.*?</svg>", dom, re.DOTALL):
        assert re.search(r'<path class="line [^"]*" d="M[0-9.]+,[0-9.]+ L', svg), svg[:200]
    assert dom.count('class="line baseline"') == 8  # two compared runs, four overlays each
    assert "p99 regression vs baseline 'main'" in dom
    # the error table and the failure render as text: the body's markup is not the page's
    assert dom.count('<table class="error-kinds">') == 1
    assert "&lt;b&gt;overloaded&lt;/b&gt;" in dom and "t0k3n" not in dom
    assert dom.count('<details class="failure" open="">') == 1
    assert dom.count('<dl class="settings">') == 3
