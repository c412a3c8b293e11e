"""Manifests for ``seldon_cluster.apply()``: YAML files (one or more documents) or dicts,
checked before anything is created, each problem named with its file and document."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .kube import ClusterError
from .resources import KINDS, Resource, ResourceKind, UnknownKind, get


class ManifestError(ClusterError):
    """A manifest that cannot be applied; the message names the file, document and field."""


@dataclass(frozen=True)
class ManifestObject:
    """One resource of a manifest (its namespace filled in) and the kind that handles it."""

    kind: ResourceKind
    resource: Resource
    where: str
    """The manifest and document it came from, for messages."""


def _documents(manifest: Any) -> tuple[str, list[Any]]:
    if isinstance(manifest, Mapping):
        return "manifest", [manifest]
    if isinstance(manifest, (str, Path)):
        path = Path(manifest)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(f"manifest {path}: cannot read it ({exc.strerror})") from None
        try:
            return str(path), [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ManifestError(f"manifest {path}{line}: not valid YAML ({problem})") from None
    if isinstance(manifest, Sequence):
        return "manifest", list(manifest)
    raise ManifestError(
        f"manifest: expected a YAML path, a dict or a list of dicts, got {type(manifest).__name__}"
    )


def _checked(document: Any, where: str, namespace: str) -> ManifestObject:
    if not isinstance(document, Mapping):
        raise ManifestError(f"{where}: expected a mapping, got {type(document).__name__}")
    kind_name = document.get("kind")
    if not isinstance(kind_name, str) or not kind_name:
        raise ManifestError(f"{where}: no 'kind'")
    try:
        kind = get(kind_name)
    except UnknownKind:
        known = ", ".join(k.kind for k in KINDS.values())
        raise ManifestError(
            f"{where}: kind {kind_name!r} is not a Seldon resource apply() knows ({known})"
        ) from None
    if kind.kind != kind_name:
        raise ManifestError(f"{where}: kind must be spelt {kind.kind!r}, got {kind_name!r}")
    if document.get("apiVersion") != kind.api_version:
        raise ManifestError(
            f"{where}: a {kind.kind} has apiVersion {kind.api_version!r}, "
            f"got {document.get('apiVersion')!r}"
        )
    metadata = document.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}: {kind.kind} has no metadata.name")
    if not isinstance(document.get("spec"), Mapping):
        raise ManifestError(f"{where}: {kind.kind} {name!r} has no spec")
    body = copy.deepcopy(dict(document))
    body["metadata"] = {**metadata, "namespace": metadata.get("namespace") or namespace}
    resource = Resource(kind.kind, body["metadata"]["namespace"], name, body)
    return ManifestObject(kind, resource, f"{where} ({name})")


def read_manifest(manifest: Any, namespace: str) -> list[ManifestObject]:
    """Every document of `manifest`, checked; objects without a namespace get `namespace`."""
    source, documents = _documents(manifest)
    if not documents:
        raise ManifestError(f"{source}: no resources in it")
    return [
        _checked(document, f"{source} document {number}", namespace)
        for number, document in enumerate(documents, 1)
    ]
