"""Shared set-up of the test suite: pytester drives inner pytest runs of the plugin."""

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_step_summary_of_the_outer_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions must not append their tables to the CI job's own step summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
