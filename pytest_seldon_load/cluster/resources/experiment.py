"""Core 2 Experiments: reached by ``Seldon-Model: NAME.experiment``; the infer path names the
experiment's default (else its first candidate), a model or a pipeline as ``resourceType`` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .base import Resource
from .core2 import RoutedByKind


class ExperimentKind(RoutedByKind):
    kind = "Experiment"
    failed_states = frozenset({"ExperimentFailed"})

    def infer_model(self, resource: Resource) -> str:
        default = resource.spec.get("default")
        if isinstance(default, str) and default:
            return default
        candidates = resource.spec.get("candidates")
        if isinstance(candidates, Sequence) and candidates:
            first = candidates[0]
            if isinstance(first, Mapping) and isinstance(first.get("name"), str):
                return str(first["name"])
        return resource.name

    def infer_path(self, resource: Resource) -> str:
        if resource.spec.get("resourceType") == "pipeline":
            return f"/v2/pipelines/{self.infer_model(resource)}/infer"
        return super().infer_path(resource)
