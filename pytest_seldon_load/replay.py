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

* A gRPC call: ``GRPC /inference.GRPCInferenceService/ModelInfer [name:value ...] {JSON}``
  (the Open Inference Protocol's ModelInfer; the form is described in `oip_grpc`).

Blank lines and lines starting with ``#`` are skipped, as Iago does.

What reaches the wire is checked here, once, so that ``seldon-load replay check`` and a run
accept and refuse exactly the same lines: no control character or whitespace in a target
(non-ASCII text in it is percent-encoded as UTF-8), no control character or text outside
Latin-1 in a header, no framing header (the engine writes Content-Length), no header twice,
and a body sent as JSON must parse.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from .atomic import atomic_writer
from .http_pool import FRAMING_HEADERS
from .redact import MASK, SECRET_HEADERS, SECRET_QUERY_KEYS, redact_text

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_HEADER_WORD = re.compile(rf"^({_TOKEN}):(\S+)$")
_HEADER_LIKE = re.compile(rf"^({_TOKEN}):(.+)$", re.DOTALL)
_EMPTY_HEADER = re.compile(rf"^{_TOKEN}:$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e\xa1-\xff]+$")
_UNSAFE_IN_TARGET = re.compile(r"[\x00-\x20\x7f-\x9f]|\s")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_SECRET_HEADER_WORD = re.compile(
    r"(?i)(?<![A-Za-z0-9-])("
    + "|".join(map(re.escape, sorted(SECRET_HEADERS)))
    + r"):[ ]*(?:(?:bearer|basic)[ ]+)?[^ ]*"
)
_SECRET_QUERY_VALUE = re.compile(
    r"(?i)(?<![A-Za-z0-9])(" + "|".join(SECRET_QUERY_KEYS) + r")=[ ]*[^&#; ]*"
)
GRPC_METHOD = "GRPC"
"""The first word of a gRPC line (read by `oip_grpc.parse_grpc_line`)."""
NEVER_REPLAYED = frozenset({"x-seldon-route"})
"""Headers a request never carries, wherever they come from: Seldon Core 2's mesh sets
``x-seldon-route`` on its answers, and its routes match only requests without it."""
SHOWN_CHARS = 120
"""How much of a bad line an error shows (after secrets are masked)."""
MAX_TARGET_CHARS = 65_536
"""The longest request target (path and query) a line may hold: nginx refuses more than 8 kB
by default, most servers far less than this."""
_MASKED_CHARS = SHOWN_CHARS + 2000
"""How much of a bad line is masked to show its start: a secret that begins in the shown
part and runs past this would show its first characters (none is that long)."""


def redact_line(text: str) -> str:
    """A replay line as an error may show it: secret header values and query values masked,
    to the end of their word, whatever characters they hold (``Name: Bearer x`` too, as a
    header is written elsewhere)."""
    text = _SECRET_HEADER_WORD.sub(lambda m: f"{m.group(1)}:{MASK}", text)
    text = _SECRET_QUERY_VALUE.sub(lambda m: f"{m.group(1)}={MASK}", text)
    return redact_text(text)


GZIP_MAGIC = b"\x1f\x8b"
"""The first bytes of a gzip file: a replay that starts with them is read un-gzipped."""


class ReplayError(ValueError):
    """A replay line that cannot be read; names the file and line, never a secret in it."""

    def __init__(self, source: str, line_number: int, reason: str, text: str = "") -> None:
        self.source = source
        self.line_number = line_number
        self.reason = redact_line(reason)
        # Only the start is shown; masking a 10 MB line whole would take seconds.
        self.shown = redact_line(text[:_MASKED_CHARS])[:SHOWN_CHARS] if text else ""
        """The start of the line, secrets masked ('' when the line is not shown)."""
        shown = f": {self.shown!r}" if self.shown else ""
        super().__init__(f"{source}:{line_number}: {self.reason}{shown}")


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


def _character(c: str) -> str:
    name = unicodedata.name(c, "")
    return f"U+{ord(c):04X}" + (f" {name}" if name else "")


def _target_problem(target: str, what: str) -> str | None:
    if len(target) > MAX_TARGET_CHARS:
        return (
            f"{what} is {len(target):,} characters long; servers refuse request targets of "
            f"more than a few kB (HTTP 414), and a replay line's target may hold at most "
            f"{MAX_TARGET_CHARS:,} (send large inputs in a body)"
        )
    unsafe = _UNSAFE_IN_TARGET.search(target)
    if unsafe:
        c = unsafe.group()
        kind = "a control character" if unicodedata.category(c) == "Cc" else "whitespace"
        return f"{what} holds {kind} ({_character(c)}): it cannot go on the wire"
    if target.startswith("/"):
        return None
    if target.startswith(("http://", "https://")):
        try:
            parts = urlsplit(target)
        except ValueError as exc:
            return f"the URL cannot be read ({exc})"
        return None if parts.netloc else "URL has no host"
    return "the request target must be a path starting with '/' or an http(s):// URL"


def _wire_target(target: str) -> str:
    """The target with non-ASCII text percent-encoded (UTF-8), as a browser sends it."""
    if target.isascii():
        return target
    return _NON_ASCII.sub(lambda m: quote(m.group(), safe=""), target)


def _header_problem(name: str, value: str, seen: set[str]) -> str | None:
    lowered = name.lower()
    if lowered in FRAMING_HEADERS:
        return f"header {name} is written by the load generator from the body; remove it"
    if lowered in seen:
        return f"header {name} is given twice"
    if _HEADER_VALUE.match(value):
        return None
    for c in value:
        if unicodedata.category(c) == "Cc":
            return f"header {name} holds a control character ({_character(c)})"
        if c.isspace():
            return f"header {name} holds whitespace ({_character(c)})"
    return (
        f"header {name} holds text outside Latin-1, which HTTP/1.1 cannot carry; percent-encode it"
    )


def _expects_json(headers: Sequence[tuple[str, str]], body: bytes) -> bool:
    for name, value in headers:
        if name.lower() == "content-type":
            return "json" in value.lower()
    return body[:1] in (b"{", b"[")


def parse_line(text: str, line_number: int = 0, source: str = "<replay>") -> ReplayRequest | None:
    """One replay line to a request; None for blank and comment lines."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    if not stripped.isascii():
        try:
            stripped.encode("utf-8")
        except UnicodeEncodeError:
            raise ReplayError(source, line_number, "the line is not valid Unicode") from None
    if stripped[0] == "/" or stripped.startswith(("http://", "https://")):
        if any(c.isspace() and c.isascii() for c in stripped):
            raise ReplayError(
                source, line_number, "a GET line must be one URL with no spaces", stripped
            )
        problem = _target_problem(stripped, "the URL")
        if problem:
            raise ReplayError(source, line_number, problem, stripped)
        return ReplayRequest("GET", _wire_target(stripped), line_number=line_number)

    method, _, rest = stripped.partition(" ")
    if method == GRPC_METHOD:
        return _parse_grpc(stripped, line_number, source)
    if method not in METHODS:
        raise ReplayError(
            source,
            line_number,
            f"unknown method {method[:20]!r}: a line is a URL, a path, or "
            f"'METHOD TARGET [Header:value ...] [BODY]' with METHOD one of "
            f"{', '.join(sorted(METHODS))}, or a gRPC call '{GRPC_METHOD} /SERVICE/METHOD ...'",
            stripped,
        )
    rest = rest.lstrip(" ")
    target, _, rest = rest.partition(" ")
    if not target:
        raise ReplayError(source, line_number, f"{method} with no request target", stripped)
    problem = _target_problem(target, "the request target")
    if problem:
        raise ReplayError(source, line_number, problem, stripped)
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    rest = rest.lstrip(" ")
    while rest:
        word, _, after = rest.partition(" ")
        header = _HEADER_LIKE.match(word)
        if not header:
            if _EMPTY_HEADER.match(word):
                raise ReplayError(
                    source,
                    line_number,
                    f"header {word[:-1]} has no value: a header in a replay line is one "
                    "Name:value word, with no space after the colon",
                    stripped,
                )
            break
        name, value = header.groups()
        problem = _header_problem(name, value, seen)
        if problem:
            raise ReplayError(source, line_number, problem, stripped)
        seen.add(name.lower())
        headers.append((name, value))
        rest = after.lstrip(" ")
    body = rest.encode("utf-8") if rest else None
    if body is not None and _expects_json(headers, body):
        try:
            json.loads(body)
        except ValueError as exc:
            raise ReplayError(
                source, line_number, f"the body is not valid JSON ({exc})", stripped
            ) from None
        except RecursionError:
            raise ReplayError(
                source, line_number, "the body is JSON nested too deeply to read", stripped
            ) from None
    return ReplayRequest(method, _wire_target(target), tuple(headers), body, line_number)


def _parse_grpc(text: str, line_number: int, source: str) -> ReplayRequest | None:
    """A gRPC line, read (and encoded once, to check it) by the gRPC module."""
    from .oip_grpc import parse_grpc_line  # imports this module: imported when first needed

    try:
        return parse_grpc_line(text, line_number, source)
    except ImportError as exc:  # protobuf, to check the request, is the grpc extra's
        raise ReplayError(source, line_number, str(exc)) from None


def parse_raw_line(raw: bytes, line_number: int, source: str) -> ReplayRequest | None:
    """One line as read from a file (bytes), decoded as UTF-8 and parsed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplayError(source, line_number, "the line is not valid UTF-8") from None
    return parse_line(text, line_number, source)


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

    def open_bytes(self) -> BinaryIO:
        """The file's bytes, un-gzipped when it is gzip-compressed (known by its first bytes,
        whatever its name): large replays travel and keep compressed."""
        source = str(self.path)
        try:
            if self.gzipped:
                return gzip.open(self.path, "rb")  # type: ignore[return-value]
            return open(self.path, "rb")
        except OSError as exc:
            raise ReplayError(source, 0, f"cannot open the replay file ({exc.strerror})") from None

    @property
    def gzipped(self) -> bool:
        """Whether the file is gzip-compressed (its first two bytes)."""
        try:
            with open(self.path, "rb") as handle:
                return handle.read(2) == GZIP_MAGIC
        except OSError as exc:
            raise ReplayError(
                str(self.path), 0, f"cannot open the replay file ({exc.strerror})"
            ) from None

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The replay's bytes, un-gzipped, `size` at a time; a damaged gzip stream is a
        ReplayError naming the file."""
        with self.open_bytes() as handle:
            while True:
                try:
                    chunk = handle.read(size)
                except (OSError, EOFError) as exc:
                    raise ReplayError(
                        str(self.path), 0, f"the gzip stream is damaged ({exc})"
                    ) from None
                if not chunk:
                    return
                yield chunk

    def read_bytes(self) -> bytes:
        """Every byte of the replay, un-gzipped (a copy for a pod, say)."""
        return b"".join(self.chunks())

    def _read_once(self) -> Iterator[ReplayRequest]:
        source = str(self.path)
        bad = 0
        with self.open_bytes() as handle:
            # Bytes, decoded line by line: a bad byte is reported on its own line.
            for line_number, raw in enumerate(lines_of(handle, source), 1):
                try:
                    request = parse_raw_line(raw, line_number, source)
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

    def size_bytes(self, up_to: int | None = None) -> int:
        """The replay's size un-gzipped; with `up_to`, a gzip file is read only until it is
        past that size (the answer is then some size above it)."""
        if not self.gzipped:
            return self.path.stat().st_size
        total = 0
        for chunk in self.chunks():
            total += len(chunk)
            if up_to is not None and total > up_to:
                break
        return total


def lines_of(handle: BinaryIO, source: str) -> Iterator[bytes]:
    """The handle's lines; a damaged gzip stream is a ReplayError after the last good line."""
    number = 0
    try:
        for number, raw in enumerate(handle, 1):  # noqa: B007 - read in the except
            yield raw
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ReplayError(source, number + 1, f"the gzip stream is damaged ({exc})") from None


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
                raise ValueError(
                    f"replay request {count + 1} spans several lines: {redact_line(line)[:80]!r}"
                )
            try:
                parse_line(line, count + 1, os.fspath(path))
            except ReplayError as exc:
                raise ValueError(f"replay request {count + 1}: {exc.reason}") from None
            handle.write(line)
            handle.write("\n")
            count += 1
    return ReplayFile(Path(path), count=count)
