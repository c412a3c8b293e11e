"""seldon-server consumer keys: given as is, or read from what ``seldon-cli keys`` prints.

``seldon-cli -q keys --client-name C --scope js > key.json`` writes a JSON list such as
``[{"db":..,"client":..,"key":..,"secret":..,"scope":"js"}]``; Seldon's replay scripts take
``[0]["key"]``. A key is a secret: every key (and secret) read here is registered with
`redact`, so reports, summaries and errors mask it; no error message here quotes one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .redact import register_secret

KEY_TEXT = re.compile(r"^[A-Za-z0-9_\-]+$")
"""What a key given on the command line looks like (seldon-server makes alphanumeric keys)."""
_PATH_LIKE = re.compile(r"[/\\.]")
_EXAMPLE = '[{"key": "...", "scope": "js", ...}]'


class ConsumerKeyError(ValueError):
    """No usable consumer key; the message names the file, never the key."""


def load_consumer_key(source: str | os.PathLike[str]) -> str:
    """The consumer key in `source`: a key file's path, or the key itself.

    A string that names an existing file is read as a key file; otherwise a string of letters,
    digits, ``-`` and ``_`` is the key; anything else is taken for a key file that cannot be
    read.
    """
    if isinstance(source, os.PathLike):
        return key_from_file(source)
    text = str(source).strip()
    if not text:
        raise ConsumerKeyError("the consumer key is empty")
    if os.path.isfile(text):
        return key_from_file(text)
    if KEY_TEXT.match(text):
        register_secret(text)
        return text
    if _PATH_LIKE.search(text):
        return key_from_file(text)
    register_secret(text)
    raise ConsumerKeyError(
        "not a consumer key (letters, digits, '-' and '_') and no file of that name"
    )


def key_from_file(path: str | os.PathLike[str]) -> str:
    """The key from a key file: ``seldon-cli keys`` JSON, or a file holding just the key."""
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConsumerKeyError(f"cannot read the key file {name}: no such file") from None
    except IsADirectoryError:
        raise ConsumerKeyError(f"cannot read the key file {name}: it is a directory") from None
    except OSError as exc:
        raise ConsumerKeyError(f"cannot read the key file {name} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConsumerKeyError(f"the key file {name} is not UTF-8 text") from None
    return key_from_json(text, name)


def _register_all(document: Any) -> None:
    entries = document if isinstance(document, list) else [document]
    for entry in entries:
        if isinstance(entry, Mapping):
            for field in ("key", "secret"):
                if isinstance(entry.get(field), str):
                    register_secret(entry[field])


def _pick(document: Any, source: str) -> str:
    if isinstance(document, str) and KEY_TEXT.match(document.strip()):
        return document.strip()
    if isinstance(document, Mapping):
        document = [document]
    if not isinstance(document, list):
        raise ConsumerKeyError(
            f"the key file {source} holds no consumer key: expected the JSON list that "
            f"`seldon-cli keys` prints, like {_EXAMPLE}"
        )
    if not document:
        raise ConsumerKeyError(
            f"the key file {source} lists no keys: does the client exist, and was "
            "`seldon-cli keys` asked with --scope js?"
        )
    usable = [
        entry
        for entry in document
        if isinstance(entry, Mapping) and isinstance(entry.get("key"), str) and entry["key"]
    ]
    if not usable:
        raise ConsumerKeyError(
            f'the key file {source} holds no consumer key: no entry has a "key" '
            f"(expected {_EXAMPLE})"
        )
    js = [entry for entry in usable if entry.get("scope") == "js"]
    return (js or usable)[0]["key"].strip()


def key_from_json(text: str, source: str = "the key text") -> str:
    """The key from ``seldon-cli keys`` output (the last JSON line wins, as in Seldon's scripts)."""
    stripped = text.strip()
    if not stripped:
        raise ConsumerKeyError(f"the key file {source} is empty")
    try:
        document = json.loads(stripped)
    except ValueError:
        document = None
        for line in reversed(stripped.splitlines()):
            try:
                document = json.loads(line)
            except ValueError:
                continue
            break
        if document is None:
            if KEY_TEXT.match(stripped):
                register_secret(stripped)
                return stripped
            raise ConsumerKeyError(
                f"the key file {source} is not the JSON that `seldon-cli keys` prints "
                f"(a list like {_EXAMPLE})"
            ) from None
    _register_all(document)
    key = _pick(document, source)
    register_secret(key)
    return key
