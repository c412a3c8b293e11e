"""A bearer token for the endpoint, read from an environment variable the user names.

The token is never taken as an option value or an ini setting (those end up in shell
history, CI logs and repositories); only the variable's name is. The value is registered
with `redact` so no report, log or error shows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .redact import register_secret

OPTION_NAME = "--seldon-token-env"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def bearer_headers(variable: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` with the token from environment `variable`."""
    if not _VARIABLE.fullmatch(variable):
        raise ValueError(
            f"{OPTION_NAME}: {variable!r} is not an environment variable name "
            "(give the variable's name, not the token)"
        )
    value = (os.environ if environ is None else environ).get(variable, "")
    token = value.strip()
    if not token:
        raise ValueError(f"{OPTION_NAME}: the environment variable {variable} is not set or empty")
    register_secret(token)
    if any(c in token for c in "\r\n") or not token.isprintable():
        raise ValueError(
            f"{OPTION_NAME}: the token in {variable} holds a line break or a control character"
        )
    return {"Authorization": f"Bearer {token}"}
