"""Core 2 Pipelines: reached by ``Seldon-Model: NAME.pipeline`` at ``/v2/pipelines/NAME/infer``;
a Pipeline states its failure in ``reason`` (``PipelineFailed``) and explains it in ``message``."""

from __future__ import annotations

from .base import Resource
from .core2 import RoutedByKind


class PipelineKind(RoutedByKind):
    kind = "Pipeline"
    failed_states = frozenset({"PipelineFailed"})

    def infer_path(self, resource: Resource) -> str:
        return f"/v2/pipelines/{resource.name}/infer"
