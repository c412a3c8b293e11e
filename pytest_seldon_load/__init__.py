"""pytest-seldon-load: performance regression tests for Seldon model deployments.

The public API is imported from here. Names load on first use (PEP 562), so a plain
``import pytest_seldon_load`` (or a pytest session without load tests) pays nothing for the
statistics, the engine or the cluster client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assertions import (
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
    from .bearer import bearer_headers
    from .capacity import Capacity, assert_capacity_at_least, find_capacity
    from .endpoint import SeldonEndpoint
    from .engine import EngineSettings, RunInterrupted, run_load
    from .iago.stats import SummaryLoadResult
    from .pacer import Pacer
    from .plan import RunPlan
    from .proxy import HttpProxy
    from .regression import Comparison, PerformanceRegression, assert_no_regression
    from .replay import ReplayError, ReplayFile, ReplayRequest, write_replay
    from .result import LoadResult, Recorder
    from .tls import InsecureTlsWarning, TlsSettings, TlsSettingsError

_EXPORTS = {
    "BudgetExceeded": "assertions",
    "InvalidMeasurement": "assertions",
    "assert_error_rate_below": "assertions",
    "assert_p50_below": "assertions",
    "assert_p95_below": "assertions",
    "assert_p99_below": "assertions",
    "assert_p999_below": "assertions",
    "assert_percentile_below": "assertions",
    "assert_throughput_at_least": "assertions",
    "bearer_headers": "bearer",
    "Capacity": "capacity",
    "assert_capacity_at_least": "capacity",
    "find_capacity": "capacity",
    "SeldonEndpoint": "endpoint",
    "EngineSettings": "engine",
    "RunInterrupted": "engine",
    "run_load": "engine",
    "SummaryLoadResult": "iago.stats",
    "Pacer": "pacer",
    "RunPlan": "plan",
    "HttpProxy": "proxy",
    "Comparison": "regression",
    "PerformanceRegression": "regression",
    "assert_no_regression": "regression",
    "ReplayError": "replay",
    "ReplayFile": "replay",
    "ReplayRequest": "replay",
    "write_replay": "replay",
    "LoadResult": "result",
    "Recorder": "result",
    "InsecureTlsWarning": "tls",
    "TlsSettings": "tls",
    "TlsSettingsError": "tls",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_seldon_load' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
