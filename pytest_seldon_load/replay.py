"""Iago replay files: one request per line, read as a stream, written atomically.

Two line forms, both one request per line and both readable by a human:

* Iago's classic form, a GET: a full URL or a path with its query.
  ``http://seldon-server/js/predict?json=...&consumer_key=KEY`` or ``/v2/health/ready``.
  As in Iago, only the path and query are used; the host is the target under test.
* The extended form, for requests with a body:
  ``METHOD TARGET [Header-Name:value ...] [BODY]``, e.g.
  ``POST /v2/models/iris/infer Seldon-Model:iris {"inputs":[...]}``.
  Headers are ``Name:value`` words without spaces; the body is the rest of the line, kept
  byte for byte (a compact JSON document has no newline, so it fits on one line).

Blank lines and lines starting with ``#`` are skipped, as Iago does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .atomic import atomic_writer
from .redact import redact_text

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_HEADER_WORD = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):(\S+)$")


class ReplayError(ValueError):
    """A replay line that cannot be read; names the file and line."""

    def __init__(self, source: str, line_number: int, reason: str, text: str = "") -> None:
        self.source = source
        self.line_number = line_number
        self.reason = reason
        shown = f": {redact_text(text[:120])!r}" if text else ""
        super().__init__(f"{source}:{line_number}: {reason}{shown}")


@dataclass(frozen=True)
class ReplayRequest:
    """One request of a replay: method, path+query, extra headers, body."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    line_number: int = field(default=0, compare=False)

    @property
    def path(self) -> str:
        """Path and query only; the scheme and host of a full URL are ignored, as in Iago."""
        if self.target.startswith("/"):
            return self.target
        parts = urlsplit(self.target)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path

    def to_line(self) -> str:
        """The request as one replay line; refuses what one line cannot carry faithfully."""
        for name, value in self.headers:
            if not _HEADER_WORD.match(f"{name}:{value}"):
                raise ValueError(
                    f"header {name!r} cannot go in a replay line: a header there is one "
                    f"Name:value word without spaces (give such headers to the endpoint)"
                )
        if self.method == "GET" and not self.headers and self.body is None:
            return self.target
        words = [self.method, self.target, *(f"{k}:{v}" for k, v in self.headers)]
        if self.body is not None:
            words.append(self.body.decode("utf-8"))
        return " ".join(words)


def _check_target(target: str) -> str | None:
    if target.startswith("/"):
        return None
    if target.startswith(("http://", "https://")):
        return None if urlsplit(target).netloc else "URL has no host"
    return "the request target must be a path starting with '/' or an http(s):// URL"


def parse_line(text: str, line_number: int = 0, source: str = "<replay>") -> ReplayRequest | None:
    """One replay line to a request; None for blank and comment lines."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    if stripped[0] == "/" or stripped.startswith(("http://", "https://")):
        if any(c.isspace() for c in stripped):
            raise ReplayError(
                source, line_number, "a GET line must be one URL with no spaces", stripped
            )
        problem = _check_target(stripped)
        if problem:
            raise ReplayError(source, line_number, problem, stripped)
        return ReplayRequest("GET", stripped, line_number=line_number)

    method, _, rest = stripped.partition(" ")
    if method not in METHODS:
        raise ReplayError(
            source,
            line_number,
            f"unknown method {method[:20]!r}: a line is a URL, a path, or "
            f"'METHOD TARGET [Header:value ...] [BODY]' with METHOD one of "
            f"{', '.join(sorted(METHODS))}",
            stripped,
        )
    rest = rest.lstrip(" ")
    target, _, rest = rest.partition(" ")
    if not target:
        raise ReplayError(source, line_number, f"{method} with no request target", stripped)
    problem = _check_target(target)
    if problem:
        raise ReplayError(source, line_number, problem, stripped)
    headers: list[tuple[str, str]] = []
    rest = rest.lstrip(" ")
    while rest:
        word, _, after = rest.partition(" ")
        header = _HEADER_WORD.match(word)
        if not header:
            break
        headers.append((header.group(1), header.group(2)))
        rest = after.lstrip(" ")
    body = rest.encode("utf-8") if rest else None
    return ReplayRequest(method, target, tuple(headers), body, line_number)


@dataclass
class ReplayFile:
    """A replay file on disk. Iterating streams it; `requests(reuse=True)` loops it like Iago."""

    path: Path
    skip_bad_lines: bool = False
    bad_lines: int = 0
    count: int | None = None

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __iter__(self) -> Iterator[ReplayRequest]:
        return self._read_once()

    def _read_once(self) -> Iterator[ReplayRequest]:
        source = str(self.path)
        bad = 0
        try:
            handle = open(self.path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise ReplayError(source, 0, f"cannot open the replay file ({exc.strerror})") from None
        with handle:
            # Bytes, decoded line by line: a bad byte is reported on its own line.
            for line_number, raw in enumerate(handle, 1):
                try:
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ReplayError(
                            source, line_number, "the line is not valid UTF-8"
                        ) from None
                    request = parse_line(text, line_number, source)
                except ReplayError:
                    if not self.skip_bad_lines:
                        raise
                    bad += 1
                    continue
                if request is not None:
                    yield request
        self.bad_lines = bad

    def requests(self, reuse: bool = True) -> Iterator[ReplayRequest]:
        """Every request once, or (reuse) over and over, like Iago's ``reuseFile``."""
        while True:
            produced = 0
            for request in self._read_once():
                produced += 1
                yield request
            if produced == 0:
                raise ReplayError(str(self.path), 0, "the replay file holds no requests")
            self.count = produced
            if not reuse:
                return

    def size_bytes(self) -> int:
        return self.path.stat().st_size


def write_replay(
    path: str | os.PathLike[str],
    requests: Iterable[ReplayRequest | str],
    *,
    header: str | None = None,
) -> ReplayFile:
    """Write requests (or ready-made lines) atomically; returns the file with its count."""
    count = 0
    with atomic_writer(path) as handle:
        if header:
            for comment in header.splitlines():
                handle.write(f"# {comment}\n")
        for request in requests:
            try:
                line = request if isinstance(request, str) else request.to_line()
            except ValueError as exc:
                raise ValueError(f"replay request {count + 1}: {exc}") from None
            if "\n" in line or "\r" in line:
                raise ValueError(f"replay request {count + 1} spans several lines: {line[:80]!r}")
            handle.write(line)
            handle.write("\n")
            count += 1
    return ReplayFile(Path(path), count=count)
