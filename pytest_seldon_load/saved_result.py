"""Reading back what the project wrote: JSON text and results, checked all the way down.

A saved file may be truncated, edited, or from another tool. Every reader of results
(baselines, ``--load-json`` reports, single results) goes through here, so a damaged file
fails at once with its name and the field at fault, as a `SavedResultError`, and never as a
zlib, base64 or numpy error in the middle of a comparison.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import LoadResult


class SavedResultError(ValueError):
    """A saved result or document that cannot be used; the message names file and field."""


def load_json(text: str, source: str) -> Any:
    """The document in `text`; SavedResultError saying why not (syntax, depth, huge numbers)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SavedResultError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}; "
            f"truncated or edited?)"
        ) from None
    except RecursionError:
        raise SavedResultError(f"{source}: nested too deeply to be a saved result") from None
    except ValueError:  # an integer of thousands of digits
        raise SavedResultError(
            f"{source}: not a saved result (a number of thousands of digits)"
        ) from None


def result_from_saved(data: Any, where: str) -> LoadResult:
    """The LoadResult in `data`, with every per-second histogram checked.

    `where` names the place for messages ("main.json: tests['t::a'].result"). Every
    window's histograms are decoded and checked by `LoadResult.from_dict` (a damaged one is
    named by its place in the timeline), here rather than halfway through a comparison or a
    report.
    """
    from .result import LoadResult  # numpy: loaded when a result is read, not at start

    if not isinstance(data, dict):
        raise SavedResultError(f"{where}: expected an object, got {type(data).__name__}")
    try:
        result = LoadResult.from_dict(data)
    except RecursionError:
        raise SavedResultError(f"{where}: nested too deeply") from None
    except Exception as exc:  # the summary-only form converts some fields itself
        raise SavedResultError(f"{where}: {exc}") from None
    return checked_result(result, where)


def checked_result(result: LoadResult, where: str) -> LoadResult:
    """`result`, as `LoadResult.from_dict` read it, once what that leaves unchecked is checked
    too (for readers that parsed it already); SavedResultError otherwise."""
    for name in ("duration", "target_rate"):
        value = getattr(result, name)
        if not (math.isfinite(value) and value >= 0):
            raise SavedResultError(f"{where}.{name}: must be a number >= 0, got {value!r}")
    if result.windows:
        for index, window in enumerate(result.windows):
            if window.sent < 0 or window.ok < 0 or window.errors < 0:
                raise SavedResultError(f"{where}.timeline[{index}]: a negative count")
    return result
