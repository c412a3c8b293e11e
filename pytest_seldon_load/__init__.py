"""pytest-seldon-load: performance regression tests for Seldon model deployments."""

import pytest

pytest.register_assert_rewrite("pytest_seldon_load.assertions")

from .assertions import (  # noqa: E402
    BudgetExceeded,
    InvalidMeasurement,
    assert_error_rate_below,
    assert_p50_below,
    assert_p95_below,
    assert_p99_below,
    assert_p999_below,
    assert_percentile_below,
    assert_throughput_at_least,
)
from .endpoint import SeldonEndpoint  # noqa: E402
from .engine import EngineSettings, RunInterrupted, run_load  # noqa: E402
from .pacer import Pacer  # noqa: E402
from .replay import ReplayError, ReplayFile, ReplayRequest, write_replay  # noqa: E402
from .result import LoadResult  # noqa: E402

__all__ = [
    "BudgetExceeded",
    "EngineSettings",
    "InvalidMeasurement",
    "LoadResult",
    "Pacer",
    "ReplayError",
    "ReplayFile",
    "ReplayRequest",
    "RunInterrupted",
    "SeldonEndpoint",
    "assert_error_rate_below",
    "assert_p50_below",
    "assert_p95_below",
    "assert_p99_below",
    "assert_p999_below",
    "assert_percentile_below",
    "assert_throughput_at_least",
    "run_load",
    "write_replay",
]
