"""Replay lines by the million: literal text with slots, filled by `str.format` over columns.

Formatting a line is the replay generator's inner loop, so a line is a template built once per
file (its fixed parts JSON- or URL-encoded in advance) and filled with `map(template.format,
*columns)`, which is several times faster than building each line's document and dumping it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def template(literals: Sequence[str]) -> str:
    """A str.format template: the literal parts, with one slot between each two."""
    return "{}".join(part.replace("{", "{{").replace("}", "}}") for part in literals)


def compact(document: Any) -> str:
    """JSON without spaces, as every generated body is written."""
    return json.dumps(document, separators=(",", ":"))


def group(texts: list[str], batch: int, separator: str) -> list[str]:
    """Consecutive runs of `batch` texts, joined: the rows of one request."""
    if batch == 1:
        return texts
    return list(map(separator.join, zip(*[iter(texts)] * batch, strict=True)))


def rows(texts: list[list[str]], separator: str) -> list[str]:
    """Per-feature texts to per-row texts, the features of a row joined."""
    if len(texts) == 1:
        return texts[0]
    return list(map(separator.join(["{}"] * len(texts)).format, *texts))
