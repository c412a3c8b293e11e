"""Keep secrets out of everything a human or a CI log sees.

Consumer keys, bearer tokens and passwords travel in URLs and headers; every report, summary
and failure message passes what it shows through here first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MASK = "***"
SECRET_QUERY_KEYS = (
    "consumer_key",
    "oauth_consumer_key",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "secret",
    "password",
    "client_secret",
)
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
)
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>(?:^|[?&;])(?:" + "|".join(SECRET_QUERY_KEYS) + r")=)(?P<value>[^&#;\s]*)"
)
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret (a consumer key read from a file, a token) to mask it anywhere."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact_url(url: str) -> str:
    """A URL with secret query values and user:password masked."""
    url = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('key')}{MASK}", url)


def redact_text(text: str) -> str:
    """Free text (a log line, an error) with URL secrets and bearer tokens masked."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", redact_url(text))
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}
