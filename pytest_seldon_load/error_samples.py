"""A few answers of each error kind, kept so a report can show what the server said.

An error count says that something failed; a body says why ("model not loaded", a stack
trace, an ingress's 503 page). A run keeps the first few bodies of each error kind, masked
(`redact`) and cut short when they are recorded, so a result stays small however many
errors it meets, and no secret echoed by a server reaches a report or a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .redact import redact_text

SAMPLES_PER_KIND = 3
"""Bodies kept for each error kind (distinct ones: a thousand equal 503 pages keep one)."""
KINDS_SAMPLED = 20
"""Error kinds with samples; counts of further kinds are still kept by the result."""
BODY_CHARS = 500
"""Characters kept of a body; what is cut is marked with ``…``."""
OFFERS_PER_KIND = 32
"""Answers of a kind looked at, at most: a server giving the same body every time costs a few
maskings, not one per error."""
READ_BYTES = 4096
"""Bytes of a body decoded and masked before it is cut (a secret cut by the limit above is
masked already, as the masking saw it whole)."""


@dataclass(frozen=True)
class ErrorSample:
    """One error answer: its HTTP status (None if the request got none) and body, masked."""

    status: int | None
    body: str

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ErrorSample:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        status = data.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 0 <= status < 1000
        ):
            raise ValueError(f"{where}.status: expected a status code or null, got {status!r}")
        body = data.get("body", "")
        if not isinstance(body, str):
            raise ValueError(f"{where}.body: expected text, got {type(body).__name__}")
        # Files are written by this code, but one may be edited or come from elsewhere:
        # keep the same bounds and masking as a live run.
        return cls(status, shown_body(body))


def shown_body(body: bytes | str) -> str:
    """The body as a report may show it: text, masked, at most BODY_CHARS characters."""
    if isinstance(body, bytes):
        text = body[:READ_BYTES].decode("utf-8", errors="replace")
    else:
        text = body[:READ_BYTES]
    text = redact_text(text.strip())
    if len(text) > BODY_CHARS:
        text = text[: BODY_CHARS - 1] + "…"
    return text


class ErrorSamples:
    """The kept samples of a run, by error kind; cheap to offer to once a kind is full."""

    __slots__ = ("_offers", "by_kind")

    def __init__(self, by_kind: dict[str, list[ErrorSample]] | None = None) -> None:
        self.by_kind: dict[str, list[ErrorSample]] = by_kind or {}
        self._offers: dict[str, int] = {}

    def offer(self, kind: str, status: int | None, body: bytes | str) -> None:
        """Keep this answer if its kind has room and no equal sample yet."""
        kept = self.by_kind.get(kind)
        if kept is None:
            if len(self.by_kind) >= KINDS_SAMPLED:
                return
            kept = self.by_kind[kind] = []
        if len(kept) >= SAMPLES_PER_KIND:
            return
        offers = self._offers.get(kind, 0)
        if offers >= OFFERS_PER_KIND:
            return
        self._offers[kind] = offers + 1
        sample = ErrorSample(status, shown_body(body))
        if sample not in kept:
            kept.append(sample)

    def add(self, other: ErrorSamples) -> None:
        """Take another part's samples, within the same bounds."""
        for kind, samples in other.by_kind.items():
            for sample in samples:
                self.offer(kind, sample.status, sample.body)

    def __bool__(self) -> bool:
        return bool(self.by_kind)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorSamples) and self.by_kind == other.by_kind

    def __repr__(self) -> str:
        return f"ErrorSamples({self.by_kind!r})"

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            kind: [sample.to_dict() for sample in samples]
            for kind, samples in sorted(self.by_kind.items())
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "error_samples") -> ErrorSamples:
        """Samples from their `to_dict` form (None or missing: none); a ValueError names the
        field that is wrong."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        samples = cls()
        for kind, entries in data.items():
            if not isinstance(entries, list):
                raise ValueError(f"{where}.{kind}: expected a list, got {type(entries).__name__}")
            for index, entry in enumerate(entries):
                sample = ErrorSample.from_dict(entry, f"{where}.{kind}[{index}]")
                samples.offer(str(kind), sample.status, sample.body)
        return samples
