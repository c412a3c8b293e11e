"""The interface every protocol implements: everything that differs from one protocol to another.

A protocol says where a model answers (its paths), how rows of features become replay lines
(and which generator options it takes or needs), how an answer is judged, and which transport
carries it. The engine, the endpoint, the replay generator and the command line read all of
this from the protocol's object, found by name in the registry (`pytest_seldon_load.protocols`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..transport import Transport, http_transport

if TYPE_CHECKING:
    import numpy as np

    from ..endpoint import SeldonEndpoint
    from ..engine import EngineSettings

Formatter = Callable[[list["np.ndarray"]], list[str]]
"""Draws of a chunk of rows (one array per feature) to replay lines, one per request."""


class Column(Protocol):
    """A feature as the replay generator draws it (see `generate`)."""

    name: str
    kind: str
    """float | int | bool | str | mixed: the JSON type family of its values."""

    def texts(self, sample: np.ndarray, encoding: str) -> list[str]:
        """The text of each drawn value; `encoding`: json, url, fp64 or bytes."""
        ...


@dataclass(frozen=True)
class PredictionOptions:
    """What a prediction replay may be asked for; each protocol takes some of it.

    `consumer_key` arrives URL-encoded and registered as a secret.
    """

    batch: int = 1
    model: str = "iris"
    consumer_key: str | None = None
    endpoint_host: str = "seldon-server"
    tensor: bool = False
    outputs: tuple[str, ...] = ()
    seldon_model_header: str | None = None
    input_name: str = "predict"
    infer_path: str = ""
    """The endpoint's prediction path when it is not the protocol's own (a Core 2 pipeline's
    ``/v2/pipelines/NAME/infer``); '' for the protocol's."""


class ProtocolOptionError(ValueError):
    """A generator option given to a protocol that does not take it, or one it needs, missing."""

    def __init__(self, option: str, protocol: str, accepted_by: Sequence[str] = ()) -> None:
        self.option = option
        self.protocol = protocol
        self.accepted_by = tuple(accepted_by)
        self.missing = not accepted_by
        named = list(self.accepted_by)
        self.listed = " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 2 else named)
        """The protocols that take the option, as a sentence lists them."""
        if self.missing:
            message = f"the {protocol} protocol needs a {option.replace('_', ' ')}"
        else:
            plural = "s" if len(self.accepted_by) > 1 else ""
            message = f"{option} is for the {self.listed} protocol{plural} only, not {protocol}"
        super().__init__(message)


class UnsupportedFeature(ValueError):
    """A feature a protocol's request form cannot carry (1-based position, name, why)."""

    def __init__(self, index: int, name: str, problem: str) -> None:
        self.index = index
        self.name = name
        self.problem = problem
        super().__init__(f"feature {index} ({name}): {problem}")


class SeldonProtocol(ABC):
    """One protocol: registered once by name in `pytest_seldon_load.protocols`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    """One line for help texts: what speaks it."""
    accepts: ClassVar[frozenset[str]] = frozenset()
    """`PredictionOptions` fields this protocol uses when writing predictions."""
    needs: ClassVar[frozenset[str]] = frozenset()
    """Of those, the ones a prediction replay cannot be written without."""
    schemes: ClassVar[tuple[str, ...]] = ("http", "https")
    """The URL schemes an endpoint of this protocol is reached by."""

    @abstractmethod
    def infer_path(self, model: str) -> str:
        """The prediction path, relative to the endpoint's base URL."""

    @abstractmethod
    def ready_path(self, model: str) -> str:
        """A path that answers 2xx once the model can serve."""

    def status_ok(self, status: int) -> bool:
        """Whether a status code means the call was answered (HTTP: 2xx and 3xx)."""
        return 200 <= status < 400

    def status_text(self, status: int) -> str:
        """How a status code reads in a report (HTTP: the number itself)."""
        return str(status)

    @abstractmethod
    def judge(self, status: int, body: bytes) -> str | None:
        """None for a success, else the kind of error. Called for every answer: keep the
        success path to a status test and a substring search."""

    @abstractmethod
    def prediction_formatter(
        self, columns: Sequence[Column], options: PredictionOptions
    ) -> Formatter:
        """Checks the options against the columns, then formats chunks of draws as lines."""

    def layout_note(self, columns: Sequence[Column]) -> str:
        """Anything a user should know about how these features travel ('' for nothing)."""
        return ""

    def url_problem(self, url: str) -> str | None:
        """Why `url` (in one of `schemes`) cannot be this protocol's endpoint (None: it can)."""
        return None

    def header_problem(self, name: str, value: str) -> str | None:
        """Why a header of the endpoint cannot travel with this protocol (None: it can).

        Every header is first checked as an HTTP header; a protocol may refuse more.
        """
        return None

    def transport(self, endpoint: SeldonEndpoint, settings: EngineSettings) -> Transport:
        """What carries this protocol's requests; built inside the run's event loop."""
        return http_transport(endpoint, settings)


def http_error(status: int) -> str:
    """The error kind of a non-2xx answer."""
    return f"http_{status}"


JSON_HEADERS = (("Content-Type", "application/json"),)
"""The header of every JSON request body."""
