"""Core 2 Pipelines: reached by ``Seldon-Model: NAME.pipeline`` at ``/v2/pipelines/NAME/infer``;
a Pipeline states its failure in ``reason`` (``PipelineFailed``) and explains it in ``message``."""

from __future__ import annotations

from .base import Resource
from .core2 import Core2Kind


class PipelineKind(Core2Kind):
    kind = "Pipeline"
    target = "pipeline"
    plural = "pipelines"
    route_suffix = ".pipeline"
    state_field = "reason"
    failed_states = frozenset({"PipelineFailed"})

    def infer_path(self, resource: Resource) -> str:
        return f"/v2/pipelines/{resource.name}/infer"
