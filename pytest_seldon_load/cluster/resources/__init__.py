"""Seldon resource kinds: one module each behind `base.ResourceKind`, registered here.

``get("model")`` (or the API kind, ``"Model"``) gives a kind; ``parse_target("model/iris")``
reads what ``--seldon-deployment`` names.
"""

from __future__ import annotations

from .base import Resource, ResourceKind, ResourceNotReady
from .experiment import ExperimentKind
from .model import ModelKind
from .pipeline import PipelineKind
from .sdep import SeldonDeploymentKind

KINDS: dict[str, ResourceKind] = {}


def register(kind: ResourceKind) -> ResourceKind:
    KINDS[kind.target] = kind
    return kind


register(SeldonDeploymentKind())
register(ModelKind())
register(PipelineKind())
register(ExperimentKind())


class UnknownKind(ValueError):
    """A kind no module handles; the message lists those that exist."""


def get(kind: str) -> ResourceKind:
    """The kind named by its target word (``model``) or its API kind (``Model``)."""
    wanted = kind.strip().lower()
    for registered in KINDS.values():
        if wanted in (registered.target, registered.kind.lower()):
            return registered
    raise UnknownKind(f"unknown Seldon resource kind {kind!r}; kinds: {', '.join(KINDS)}")


def parse_target(text: str) -> tuple[str, str]:
    """``NAME`` or ``sdep/NAME`` (Core 1), ``model/NAME``, ``pipeline/NAME``,
    ``experiment/NAME`` (Core 2) → the kind's target word and the name."""
    kind, slash, name = text.strip().rpartition("/")
    if not name or "/" in kind or (slash and not kind):
        raise UnknownKind(f"expected NAME or KIND/NAME (kinds: {', '.join(KINDS)}), got {text!r}")
    return (get(kind).target if slash else "sdep"), name


__all__ = [
    "KINDS",
    "Resource",
    "ResourceKind",
    "ResourceNotReady",
    "UnknownKind",
    "get",
    "parse_target",
    "register",
]
