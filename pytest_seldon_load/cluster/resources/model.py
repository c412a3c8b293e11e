"""Core 2 Models: reached by ``Seldon-Model: NAME``; a Model states its failure in ``message``
(``ModelFailed``, ``ScheduleFailed``) and explains it in ``reason``."""

from __future__ import annotations

from .core2 import Core2Kind


class ModelKind(Core2Kind):
    kind = "Model"
    state_field = "message"
    failed_states = frozenset({"ModelFailed", "ScheduleFailed"})
