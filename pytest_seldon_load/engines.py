"""Load engines by name: the one registry behind ``load_run(engine=...)``, the ``load`` marker,
``--load-engine`` and ``seldon-load run --engine``.

An engine has a `name` and ``run(endpoint, replay, plan) -> LoadResult`` (see `Engine`). It is
made by its factory (usually its class), called with an `EngineContext`: what the caller
offers beyond the run itself (a live view of each run, session resources). Under pytest that is the
session's resources by name (the ``iago`` engine takes the session's ``iago`` runner, whose
pod lives as long as the session); ``seldon-load run`` offers none, and an engine that needs
them says so when it is made.

Where engines come from:

* built in: one `ENGINES.add` line at the end of this module, naming ``"module:Factory"``
  (loaded on first use, so an unused engine costs no import);
* another package: an entry point in the group ``pytest_seldon_load.engines``, e.g. in its
  pyproject.toml ``[project.entry-points."pytest_seldon_load.engines"]`` then
  ``k6 = "my_package.k6:K6Engine"`` (found by pytest and the command line alike);
* a conftest.py or pytest plugin, for its session only: the hook
  ``pytest_seldon_load_engines(config, registry)`` calling ``registry.add(name, factory)``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .endpoint import SeldonEndpoint
    from .engine import Companion
    from .plan import RunPlan
    from .replay import ReplayFile
    from .result import LoadResult

ENTRY_POINT_GROUP = "pytest_seldon_load.engines"


class EngineError(ValueError):
    """An engine name that is unknown, or whose engine cannot be loaded or made."""


class EngineUnavailable(EngineError):
    """The engine exists but cannot run here (the iago engine outside a pytest session)."""


@dataclass(frozen=True)
class EngineContext:
    """What the caller offers an engine beyond the run: `caller` says who is asking (for
    messages); `resources(name)`, when given, returns a session resource by name (under
    pytest, the fixture of that name: the session's cluster, its ``iago`` runner...);
    `companion`, the caller's live view of each run (a progress line, the admin port), which
    the embedded engine enters on the run's own loop and other engines may ignore."""

    caller: str = "seldon-load run"
    resources: Callable[[str], Any] | None = None
    companion: Companion | None = None

    def resource(self, name: str, *, engine: str) -> Any:
        if self.resources is None:
            raise EngineUnavailable(
                f"the {engine} engine needs the session's {name!r}, which {self.caller} "
                f"does not have"
            )
        return self.resources(name)


class Engine(Protocol):
    """A way of generating load."""

    name: str

    def run(self, endpoint: SeldonEndpoint, replay: ReplayFile, plan: RunPlan) -> LoadResult:
        """Run `plan`; raise `RunInterrupted` with the partial result on Ctrl-C or SIGTERM."""
        ...


EngineFactory = Callable[[EngineContext], Engine]


class EngineRegistry:
    """Engine factories by name; entry points of `ENTRY_POINT_GROUP` join on first use."""

    def __init__(self, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._factories: dict[str, EngineFactory | importlib.metadata.EntryPoint] = {}
        self._group = entry_point_group
        self._discovered = entry_point_group is None

    def add(self, name: str, factory: EngineFactory | str) -> None:
        """Register `factory` (a callable taking an `EngineContext`, or "module:attribute"
        naming one, imported on first use) as engine `name`."""
        if not isinstance(name, str) or not name or not name.isprintable() or " " in name:
            raise EngineError(f"an engine name must be a word, got {name!r}")
        if name in self._factories:
            raise EngineError(f"engine {name!r} is already registered ({self._origin(name)})")
        if isinstance(factory, str):
            self._factories[name] = importlib.metadata.EntryPoint(name, factory, "built in")
        elif callable(factory):
            self._factories[name] = factory
        else:
            raise EngineError(f"engine {name!r}: the factory must be callable, got {factory!r}")

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._factories

    def copy(self) -> EngineRegistry:
        """A registry with the same engines, to add a session's own to."""
        self._discover()
        other = EngineRegistry(entry_point_group=None)
        other._factories = dict(self._factories)
        return other

    def create(self, name: str, context: EngineContext | None = None) -> Engine:
        """The engine `name`, made for `context`: EngineError naming the available ones if
        there is none, EngineUnavailable if it cannot run for this caller."""
        self._discover()
        factory = self._factories.get(name)
        if factory is None:
            raise EngineError(f"unknown engine {name!r}; available: {', '.join(self.names())}")
        if isinstance(factory, importlib.metadata.EntryPoint):
            try:
                factory = factory.load()
            except Exception as exc:
                raise EngineError(
                    f"engine {name!r} ({self._origin(name)}) cannot be loaded: {exc}"
                ) from exc
            self._factories[name] = factory
        engine = factory(context or EngineContext())
        if not callable(getattr(engine, "run", None)):
            raise EngineError(f"engine {name!r}: {factory!r} made {engine!r}, which has no run()")
        return engine

    def _origin(self, name: str) -> str:
        factory = self._factories[name]
        if isinstance(factory, importlib.metadata.EntryPoint):
            if factory.group == "built in":
                return f"built in: {factory.value}"
            return f"entry point {factory.name} = {factory.value}"
        return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"

    def _discover(self) -> None:
        if self._discovered or self._group is None:
            return
        self._discovered = True
        for point in importlib.metadata.entry_points(group=self._group):
            known = self._factories.get(point.name)
            if known is None:
                self._factories[point.name] = point
            elif not (isinstance(known, importlib.metadata.EntryPoint) and known == point):
                raise EngineError(
                    f"engine {point.name!r} is registered twice: {self._origin(point.name)}, "
                    f"and entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP})"
                )


ENGINES = EngineRegistry()
"""Every engine this process knows; a pytest session works on a copy (`EngineRegistry.copy`)."""
ENGINES.add("embedded", "pytest_seldon_load.engine:EmbeddedEngine")
ENGINES.add("iago", "pytest_seldon_load.iago.engine:IagoEngine")
ENGINES.add("kubernetes", "pytest_seldon_load.cluster.kubernetes_engine:KubernetesEngine")
