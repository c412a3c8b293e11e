"""An explicit HTTP forward proxy between the load generator and its target.

Plain-http targets are reached through it in absolute form (``POST http://host/path``), https
targets through a CONNECT tunnel, inside which TLS runs end to end with the target. The proxy
is only ever the one given: ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` in the
environment are not read, so a CI runner's proxy settings cannot silently sit in the
measured path.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .redact import redact_url, register_secret

OPTION_NAME = "--seldon-proxy"


class ProxyRefused(OSError):
    """The proxy answered a CONNECT with something other than 2xx."""


@dataclass(frozen=True)
class HttpProxy:
    """``http://[user:password@]host:port``; credentials go as Proxy-Authorization (Basic)."""

    url: str = field(repr=False)
    host: str = field(init=False)
    port: int = field(init=False)
    authorization: str | None = field(init=False, repr=False)
    """The Proxy-Authorization value, or None without credentials."""

    def __post_init__(self) -> None:
        shown = redact_url(self.url)
        try:
            parts = urlsplit(self.url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"proxy ({OPTION_NAME}) {shown!r}: {exc}") from None
        if parts.scheme != "http":
            raise ValueError(
                f"proxy ({OPTION_NAME}) {shown!r}: only http:// proxies are supported "
                "(an https target is still encrypted end to end through the proxy's tunnel)"
            )
        if not parts.hostname or port is None:
            raise ValueError(
                f"proxy ({OPTION_NAME}) {shown!r}: need http://[user:password@]host:port"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"proxy ({OPTION_NAME}) {shown!r}: a proxy URL has no path")
        authorization = None
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            register_secret(password)
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            register_secret(token)
            authorization = f"Basic {token}"
        object.__setattr__(self, "host", parts.hostname)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "authorization", authorization)

    def connect_request(self, authority: str) -> bytes:
        """The CONNECT that opens a tunnel to `authority` (``host:port``)."""
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.authorization:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def __repr__(self) -> str:
        return f"HttpProxy({redact_url(self.url)!r})"

    def __str__(self) -> str:
        return redact_url(self.url)
