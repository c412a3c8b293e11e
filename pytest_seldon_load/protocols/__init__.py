"""Seldon's protocols by name: one module each, one registration line each.

* ``v2``: the Open Inference Protocol (MLServer, Seldon Core v2, KServe, Triton).
* ``v1``: Seldon Core v1's ``/api/v1.0/predictions``.
* ``legacy``: the seldon-server JS API the original Iago replays target (GET, JSONP).
* ``grpc``: the Open Inference Protocol over gRPC (``ModelInfer``; MLServer, Seldon Core v2).

A response is an error when its status is not 2xx, and also when a 200 carries the protocol's
failure in its body (a proxy may answer 200 for a failed graph). To add a protocol, write a
module with a `SeldonProtocol` subclass and register it below.
"""

from __future__ import annotations

from collections.abc import Collection

from .base import (
    JSON_HEADERS,
    Column,
    Formatter,
    PredictionOptions,
    ProtocolOptionError,
    SeldonProtocol,
    UnsupportedFeature,
)
from .grpc import Grpc
from .legacy import Legacy, legacy_predict_line, unwrap_jsonp
from .v1 import V1, v1_request
from .v2 import V2, v2_datatype, v2_layout, v2_request, v2_request_columns

__all__ = [
    "JSON_HEADERS",
    "Column",
    "Formatter",
    "PredictionOptions",
    "ProtocolOptionError",
    "SeldonProtocol",
    "UnsupportedFeature",
    "accepting",
    "check_options",
    "get",
    "judge",
    "legacy_predict_line",
    "names",
    "register",
    "unwrap_jsonp",
    "v1_request",
    "v2_datatype",
    "v2_layout",
    "v2_request",
    "v2_request_columns",
]

_REGISTRY: dict[str, SeldonProtocol] = {}


def register(protocol: SeldonProtocol) -> SeldonProtocol:
    """Make `protocol` known by its name (to endpoints, the engine, generators, options)."""
    if protocol.name in _REGISTRY:
        raise ValueError(f"a protocol named {protocol.name!r} is already registered")
    _REGISTRY[protocol.name] = protocol
    return protocol


register(V2())
register(V1())
register(Legacy())
register(Grpc())


def names() -> tuple[str, ...]:
    """Every registered protocol's name, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> SeldonProtocol:
    """The protocol called `name`; ValueError listing the known ones otherwise."""
    protocol = _REGISTRY.get(name) if isinstance(name, str) else None
    if protocol is None:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(_REGISTRY)}")
    return protocol


def judge(protocol: str, status: int, body: bytes) -> str | None:
    """None when the response is a success; otherwise the kind of error it is."""
    return get(protocol).judge(status, body)


def accepting(option: str) -> tuple[str, ...]:
    """The protocols that take prediction option `option`, in registration order."""
    return tuple(p.name for p in _REGISTRY.values() if option in p.accepts)


def check_options(
    name: str, given: Collection[str], ignored: Collection[str] = ()
) -> SeldonProtocol:
    """The protocol, once the prediction options `given` suit it (ProtocolOptionError if not).

    Options in `ignored` are not refused by a protocol that does not take them.
    """
    protocol = get(name)
    for option in sorted(given):
        if option not in protocol.accepts and option not in ignored:
            accepted_by = accepting(option)
            if not accepted_by:
                raise ValueError(f"no protocol takes the option {option!r}")
            raise ProtocolOptionError(option, protocol.name, accepted_by)
    for option in sorted(protocol.needs - set(given)):
        raise ProtocolOptionError(option, protocol.name)
    return protocol
