"""Shared set-up of the test suite: pytester drives inner pytest runs of the plugin."""

import pytest

# The plugin imports its engine, statistics and report writers (and numpy) when a session
# first needs them. pytester's in-process runs forget the modules first imported inside
# them, and numpy cannot be imported twice in one process: import them once, up front.
import pytest_seldon_load.engine
import pytest_seldon_load.regression
import pytest_seldon_load.report.html
import pytest_seldon_load.report.json_report  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_step_summary_of_the_outer_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions must not append their tables to the CI job's own step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
