"""The target under test: where it is, which protocol it speaks, and how to reach it."""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from . import protocols
from .redact import SECRET_HEADERS, redact_headers, redact_text, redact_url, register_secret

PROTOCOLS = protocols.names()
"""The registered protocols' names (`pytest_seldon_load.protocols`), in registration order."""
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class SeldonEndpoint:
    """A Seldon deployment or model server reachable over HTTP (or gRPC: ``grpc://host:port``
    with protocol ``grpc``, its headers then going as metadata).

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
    infer_path_override: str = ""
    """The prediction path when the protocol's is not the one (``/v2/pipelines/NAME/infer``)."""
    speaks: protocols.SeldonProtocol = field(init=False, repr=False, compare=False)
    """The protocol's object: paths, judge and transport (`pytest_seldon_load.protocols`)."""

    def __post_init__(self) -> None:
        try:
            speaks = protocols.get(self.protocol)
        except ValueError as exc:
            raise ValueError(f"protocol: {exc}") from None
        object.__setattr__(self, "speaks", speaks)
        parts = urlsplit(self.base_url)
        if parts.scheme not in speaks.schemes or not parts.netloc:
            raise ValueError(_url_problem(self.base_url, speaks))
        problem = speaks.url_problem(self.base_url)
        if problem:
            raise ValueError(redact_text(problem))
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
        _check_headers(headers)
        for name, value in headers.items():
            problem = speaks.header_problem(name, value)
            if problem:
                raise ValueError(f"header {name}: {problem} (the {speaks.name} protocol)")
        object.__setattr__(self, "headers", MappingProxyType(headers))

    @property
    def infer_path(self) -> str:
        """The prediction path of this protocol, relative to the base URL."""
        if self.infer_path_override:
            return self.infer_path_override
        return self.speaks.infer_path(self.model)

    @property
    def ready_path(self) -> str:
        """A path that answers 2xx once the model can serve."""
        return self.speaks.ready_path(self.model)

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


def _url_problem(url: str, speaks: protocols.SeldonProtocol) -> str:
    """What is wrong with `url` as the base URL of an endpoint speaking `speaks`."""
    shown = redact_url(url)
    scheme = urlsplit(url).scheme
    if speaks.schemes[0] == "http":
        wanted = "http://host:port[/prefix]"
    else:
        wanted = f"{speaks.schemes[0]}://host:port"
    speakers = [p for p in protocols.names() if scheme in protocols.get(p).schemes]
    if scheme and speakers and speaks.name not in speakers:
        return (
            f"the {speaks.name} protocol needs a {wanted} URL, got {shown!r}; "
            f"a {scheme}:// URL is for protocol {' or '.join(speakers)}"
        )
    return f"base URL must look like {wanted}, got {shown!r}"


def _check_headers(headers: Mapping[str, str]) -> None:
    """Headers go on the wire as given: each must be one valid HTTP header line."""
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        shown = "***" if name.lower() in SECRET_HEADERS else repr(value)
        if not isinstance(value, str) or _CONTROL.search(value):
            raise ValueError(f"header {name}: the value {shown} holds a control character")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"header {name}: the value {shown} holds text outside Latin-1"
            ) from None
        if name.lower() in seen:
            raise ValueError(f"header {name} is given twice")
        seen.add(name.lower())


def parse_header(text: str) -> tuple[str, str]:
    """``NAME:VALUE`` (a header option) as a pair, or ValueError saying what is wrong."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() for c in name):
        raise ValueError(
            f"expected NAME:VALUE such as Seldon-Model:iris, got {redact_text(text)!r}"
        )
    return name, value.strip()


def is_loopback_url(url: str) -> bool:
    """Whether `url` names this machine (``localhost`` or a loopback address): such a target
    is reachable from a pod only when the pod runs here too."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
