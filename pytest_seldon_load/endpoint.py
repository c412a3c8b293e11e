"""The target under test: where it is, which protocol it speaks, and how to reach it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from .redact import redact_headers, redact_url, register_secret

PROTOCOLS = ("v2", "v1", "legacy")


@dataclass(frozen=True)
class SeldonEndpoint:
    """A Seldon deployment or model server reachable over HTTP.

    `base_url` may carry a path prefix (an ingress route such as
    ``http://ingress/seldon/<namespace>/<deployment>``); replay paths are appended to it.
    `headers` go with every request (a ``Seldon-Model`` route, an ``Authorization`` token)
    and are redacted wherever the endpoint is shown. A URL's ``user:password@`` is sent as
    HTTP Basic auth (an ``Authorization`` header) and removed from `base_url`.
    """

    base_url: str
    protocol: str = "v2"
    model: str = "iris"
    headers: Mapping[str, str] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"protocol: unknown Seldon protocol {self.protocol!r}; "
                f"choose one of {', '.join(PROTOCOLS)}"
            )
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "base URL must look like http://host:port[/prefix], "
                f"got {redact_url(self.base_url)!r}"
            )
        headers = dict(self.headers)
        if "@" in parts.netloc:  # user:password@ becomes HTTP Basic auth, masked everywhere
            userinfo, _, hostport = parts.netloc.rpartition("@")
            if any(name.lower() == "authorization" for name in headers):
                raise ValueError(
                    f"{redact_url(self.base_url)!r} carries user:password and an Authorization "
                    "header is given too: give the credentials one way"
                )
            credentials = unquote(userinfo).encode("utf-8")
            token = base64.b64encode(credentials).decode("ascii")
            for secret in (unquote(userinfo.partition(":")[2]), token, userinfo):
                register_secret(secret)
            headers["Authorization"] = f"Basic {token}"
            object.__setattr__(self, "base_url", parts._replace(netloc=hostport).geturl())
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "headers", MappingProxyType(headers))

    @property
    def infer_path(self) -> str:
        """The prediction path of this protocol, relative to the base URL."""
        if self.protocol == "v2":
            return f"/v2/models/{self.model}/infer"
        if self.protocol == "v1":
            return "/api/v1.0/predictions"
        return "/js/predict"

    @property
    def ready_path(self) -> str:
        if self.protocol == "v2":
            return f"/v2/models/{self.model}/ready"
        if self.protocol == "v1":
            return "/health/ping"
        return "/"

    def url_for(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def __repr__(self) -> str:
        return (
            f"SeldonEndpoint({redact_url(self.base_url)!r}, protocol={self.protocol!r}, "
            f"model={self.model!r}, headers={redact_headers(self.headers)!r})"
        )

    def __str__(self) -> str:
        return f"{redact_url(self.base_url)} ({self.protocol}, model {self.model})"
