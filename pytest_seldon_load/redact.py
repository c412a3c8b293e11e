"""Keep secrets out of everything a human or a CI log sees.

Consumer keys, bearer tokens and passwords travel in URLs, headers, test ids and labels; every
report, baseline, summary and failure message passes what it shows through here first.

Masked, wherever they stand in a text (not only after ``?``, ``&`` or ``;``):

* ``name=value`` whose name says secret (``consumer_key=``, ``token=``, ``api_key=``,
  ``password=``, ``client_secret=``, ``x_auth_token=``...): in a URL, a test id
  (``test_x[consumer_key=KEY]``), a label, a log line;
* ``Name:value`` and ``Name: value`` of a secret header (``Authorization``, ``X-Api-Key``,
  ``Cookie``...), as replay lines and HTTP traces write them, and ``"token": "value"`` in JSON;
* ``Bearer x`` and ``Basic x`` credentials, and ``user:password@`` in a URL;
* any value registered with `register_secret` (a consumer key read from a key file, a
  kubeconfig token, a URL password), wherever it appears.
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
"""Names masked as ``name=value`` (each also as the last part of a longer name)."""
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-access-token",
        "x-consumer-key",
        "api-key",
    }
)

# A name is secret when its last word (words split by _ - .) is one of these, or its last two
# words are one of the pairs: `max_tokens=` and `key=` stay readable, `x_api_key=` does not.
_SECRET_WORD = r"(?:token|secret|password|passwd|pwd|passphrase|apikey|credentials?|authorization)"
_SECRET_PAIR = r"(?:api|consumer|access|secret|private|client|auth|session)[_.-]?key"
_NAME = rf"(?:[A-Za-z0-9]+[_.-])*?(?:{_SECRET_WORD}|{_SECRET_PAIR})"
_VALUE = r"[^\s&#;,'\"\]\[)(<>|{}]+"
_ASSIGNMENT = re.compile(
    rf"(?i)(?<![A-Za-z0-9])(?P<key>{_NAME}\s*=\s*)(?P<value>{_VALUE})",
)
_JSON_FIELD = re.compile(rf'(?i)(?P<key>"{_NAME}"\s*:\s*")(?P<value>(?:[^"\\]|\\.)+)"')
_HEADER_NAMES = "|".join(re.escape(name) for name in sorted(SECRET_HEADERS, key=len, reverse=True))
_HEADER = re.compile(
    rf"(?i)(?<![A-Za-z0-9-])(?P<key>(?:{_HEADER_NAMES}|[A-Za-z0-9-]*(?:token|secret|api-key)"
    rf")\s*:\s*)(?P<value>(?:bearer|basic|token)\s+\S+|[^\s'\"]+)"
)
# Found from its "://" (only the scheme's last character is matched): a pattern that reads
# the whole scheme first takes quadratic time in a long run of letters.
_USERINFO = re.compile(r"(?P<scheme>[a-z0-9+.-]://)[^/@\s]+@", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret (a consumer key read from a file, a token) to mask it anywhere."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact_url(url: str) -> str:
    """A URL with secret query values and user:password masked."""
    url = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)
    return _ASSIGNMENT.sub(lambda m: f"{m.group('key')}{MASK}", url)


def redact_text(text: str) -> str:
    """Free text (a test id, a log line, an error) with every kind of secret above masked."""
    text = _HEADER.sub(lambda m: f"{m.group('key')}{MASK}", text)
    text = _JSON_FIELD.sub(lambda m: f'{m.group("key")}{MASK}"', text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", redact_url(text))
    # Longest first: a secret that contains another is masked whole.
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (MASK if is_secret_header(k) else v) for k, v in headers.items()}


def is_secret_header(name: str) -> bool:
    """A header whose value is a credential (by name: Authorization, X-Api-Key, *-Token...)."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or bool(
        re.search(r"(token|secret|api-?key|password)$", lowered)
    )


def is_secret_name(name: str) -> bool:
    """A parameter or field name that says its value is a secret (``consumer_key``, ``token``)."""
    return bool(re.fullmatch(_NAME, name, re.IGNORECASE))


def is_known_secret(value: str) -> bool:
    """Whether `value` holds a secret registered with `register_secret`."""
    return any(secret in value for secret in _known_secrets)
