"""Hooks the seldon-load plugin offers to other plugins and conftest.py files."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from ..engines import EngineRegistry


def pytest_seldon_load_engines(config: pytest.Config, registry: EngineRegistry) -> None:
    """Add load engines for this session: ``registry.add("name", Factory)``, where
    ``Factory(context)`` makes an `engines.Engine`. Called once per session, at configure
    time (implement it in a plugin or the rootdir conftest.py); the engines are then
    available to ``--load-engine``, the ``load`` marker and ``load_run(engine=...)``.
    Engines for every session, and for ``seldon-load run``, go in the entry-point group
    ``pytest_seldon_load.engines`` instead."""
