"""The secured-ingress options (``--seldon-ca-bundle``, ``--seldon-client-cert``,
``--seldon-client-key``, ``--seldon-insecure``, ``--seldon-proxy``, ``--seldon-token-env``)
turned into what the engine and the endpoint take: TLS settings, a proxy, a bearer header.

They are read once per session, so a contradiction (a key without its certificate, a token
variable that is unset) stops the session before any load with the option named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ..bearer import bearer_headers
from ..proxy import HttpProxy
from ..tls import TlsSettings, TlsSettingsError
from .options import add_option

_SECURED = pytest.StashKey["SecuredIngress"]()


@dataclass(frozen=True)
class SecuredIngress:
    """How every request of the session reaches a secured target."""

    tls: TlsSettings | None
    proxy: HttpProxy | None
    headers: dict[str, str]

    def engine_settings(self) -> dict[str, Any]:
        """The EngineSettings fields these options set (none when no option is given)."""
        given: dict[str, Any] = {}
        if self.tls is not None:
            given["tls"] = self.tls
        if self.proxy is not None:
            given["proxy"] = self.proxy
        return given


def add_secured_options(group: pytest.OptionGroup) -> None:
    """Declare the options in the target group (each also an ini key)."""
    add_option(
        group,
        "--seldon-ca-bundle",
        metavar="PATH",
        help="PEM file of the CAs that sign the ingress's certificate (instead of the system's)",
    )
    add_option(
        group,
        "--seldon-client-cert",
        metavar="PATH",
        help="PEM client certificate shown to a server that asks for one (mTLS)",
    )
    add_option(
        group,
        "--seldon-client-key",
        metavar="PATH",
        help="unencrypted PEM key of --seldon-client-cert (when not inside that file)",
    )
    add_option(
        group,
        "--seldon-insecure",
        action="store_true",
        default=False,
        help="do not check the server's certificate (every run then says so, loudly)",
    )
    add_option(
        group,
        "--seldon-proxy",
        env="SELDON_LOAD_PROXY",
        metavar="URL",
        help="an explicit HTTP proxy, http://[user:password@]host:port (HTTP_PROXY and "
        "friends are never read)",
    )
    add_option(
        group,
        "--seldon-token-env",
        metavar="VARIABLE",
        help="name of the environment variable holding a bearer token sent as "
        "'Authorization: Bearer ...' (the token itself is never an option)",
    )


def secured_ingress(config: pytest.Config) -> SecuredIngress:
    """The session's secured-ingress settings, checked once (a usage error names the option)."""
    known = config.stash.get(_SECURED, None)
    if known is not None:
        return known
    proxy_url = config.getoption("seldon_proxy", default=None)
    try:
        tls = TlsSettings(
            ca_bundle=config.getoption("seldon_ca_bundle", default=None) or None,
            client_cert=config.getoption("seldon_client_cert", default=None) or None,
            client_key=config.getoption("seldon_client_key", default=None) or None,
            insecure=bool(config.getoption("seldon_insecure", default=False)),
        )
        proxy = HttpProxy(proxy_url) if proxy_url else None
        variable = config.getoption("seldon_token_env", default=None)
        headers = bearer_headers(variable) if variable else {}
    except (TlsSettingsError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    secured = SecuredIngress(tls if tls != TlsSettings() else None, proxy, headers)
    config.stash[_SECURED] = secured
    return secured
