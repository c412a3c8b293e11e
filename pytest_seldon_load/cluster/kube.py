"""Kubernetes access: which cluster, as whom, in which namespace, and API errors a human reads.

Credentials (tokens, client keys, passwords) stay inside the client's configuration: nothing
here prints a kubeconfig's content, and every message passes through `redact` with the
configuration's token registered as a secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3Error

from ..redact import redact_text, redact_url, register_secret

# The kubernetes client (37 and later) loads its API classes lazily, on first attribute
# access. Two threads doing that at once (a port-forward's and the test's) can meet a
# half-imported module ("has no attribute 'CoreV1Api'"): the classes used here load now.
for _api_class in ("ApiClient", "Configuration", "CoreV1Api", "CustomObjectsApi"):
    getattr(k8s, _api_class)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_TIMEOUT_S = 15.0
"""Every API call gives up after this long: a hung API server never hangs a test session."""

T = TypeVar("T")


class ClusterError(RuntimeError):
    """A cluster operation failed; the message says what, where and why, never a credential."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


class ApiError(ClusterError):
    """The API server answered with an error status (`status` is its HTTP code)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _default_kubeconfig() -> Path | None:
    """$KUBECONFIG (its first file) or ~/.kube/config, when it exists."""
    listed = os.environ.get("KUBECONFIG", "")
    for candidate in listed.split(os.pathsep):
        if candidate and Path(candidate).expanduser().is_file():
            return Path(candidate).expanduser()
    home = Path("~/.kube/config").expanduser()
    return home if home.is_file() else None


@dataclass(frozen=True)
class KubeSettings:
    """Where the cluster is, from the ``--seldon-kubeconfig/-context/-namespace`` options.

    Chosen in this order: an explicit kubeconfig; a context (of the default kubeconfig); the
    pod's service account when the tests run inside a cluster; the default kubeconfig when
    only a namespace is given. Nothing of these: not configured, and cluster tests skip.
    """

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    service_account_dir: Path = SERVICE_ACCOUNT_DIR

    @property
    def in_cluster_available(self) -> bool:
        return (
            bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
            and (self.service_account_dir / "token").is_file()
        )

    @property
    def source(self) -> str | None:
        """'kubeconfig', 'in-cluster', or None when nothing is configured."""
        if self.kubeconfig or self.context:
            return "kubeconfig"
        if self.in_cluster_available:
            return "in-cluster"
        if self.namespace and _default_kubeconfig() is not None:
            return "kubeconfig"
        return None

    @property
    def configured(self) -> bool:
        return self.source is not None


NOT_CONFIGURED = (
    "no Kubernetes cluster configured: pass --seldon-kubeconfig PATH (or --seldon-context NAME "
    "to use a context of the default kubeconfig), or run the tests in a pod with a service "
    "account"
)


@dataclass
class KubeConnection:
    """An API client bound to one cluster, with the namespace to work in."""

    api: k8s.ApiClient
    namespace: str
    where: str
    configuration: k8s.Configuration = field(repr=False)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    def new_api_client(self) -> k8s.ApiClient:
        """A second client on the same configuration (websocket calls patch their client)."""
        return k8s.ApiClient(self.configuration)

    def close(self) -> None:
        self.api.close()


def _register_credentials(configuration: k8s.Configuration) -> None:
    for value in (configuration.api_key or {}).values():
        if isinstance(value, str):
            register_secret(value.split(" ", 1)[-1] if " " in value else value)
    if configuration.password:
        register_secret(configuration.password)


def connect(settings: KubeSettings) -> KubeConnection:
    """A connection to the configured cluster; ClusterError naming the option when it cannot."""
    source = settings.source
    if source is None:
        raise ClusterError(NOT_CONFIGURED)
    configuration = k8s.Configuration()
    if source == "in-cluster":
        try:
            k8s_config.incluster_config.InClusterConfigLoader(
                token_filename=str(settings.service_account_dir / "token"),
                cert_filename=str(settings.service_account_dir / "ca.crt"),
            ).load_and_set(configuration)
        except ConfigException as exc:
            raise ClusterError(f"in-cluster configuration: {exc}") from None
        namespace_file = settings.service_account_dir / "namespace"
        default_namespace = (
            namespace_file.read_text(encoding="utf-8").strip()
            if namespace_file.is_file()
            else "default"
        )
        where = f"in-cluster service account ({redact_url(configuration.host)})"
    else:
        path = Path(settings.kubeconfig).expanduser() if settings.kubeconfig else None
        option = "--seldon-kubeconfig"
        if path is None:
            path = _default_kubeconfig()
            option = "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
            if path is None:
                raise ClusterError(
                    "--seldon-context: there is no default kubeconfig ($KUBECONFIG or "
                    "~/.kube/config); pass --seldon-kubeconfig PATH"
                )
        if not path.is_file():
            raise ClusterError(f"{option}: no such file {path}")
        try:
            contexts, active = k8s_config.list_kube_config_contexts(config_file=str(path))
        except ConfigException as exc:
            raise ClusterError(f"{option} {path}: not a usable kubeconfig ({exc})") from None
        except Exception as exc:  # a YAML error names the line, not the content
            raise ClusterError(
                f"{option} {path}: cannot read it as a kubeconfig ({type(exc).__name__})"
            ) from None
        names = [c.get("name") for c in contexts or []]
        chosen = active
        if settings.context:
            matching = [c for c in contexts or [] if c.get("name") == settings.context]
            if not matching:
                raise ClusterError(
                    f"--seldon-context: no context {settings.context!r} in {path}; "
                    f"contexts there: {', '.join(map(str, names)) or 'none'}"
                )
            chosen = matching[0]
        if not chosen:
            raise ClusterError(
                f"{option} {path}: no current context; pass --seldon-context "
                f"(one of: {', '.join(map(str, names)) or 'none'})"
            )
        try:
            k8s_config.load_kube_config(
                config_file=str(path),
                context=chosen.get("name"),
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise ClusterError(
                f"{option} {path}: context {chosen.get('name')!r} is not usable ({exc})"
            ) from None
        default_namespace = (chosen.get("context") or {}).get("namespace") or "default"
        where = f"context {chosen.get('name')!r} ({redact_url(configuration.host)})"
    _register_credentials(configuration)
    namespace = settings.namespace or default_namespace
    return KubeConnection(k8s.ApiClient(configuration), namespace, where, configuration)


def _status_message(exc: ApiException) -> str:
    """The API's own one-line explanation, from its Status body; never the raw response."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    reason = exc.reason or ""
    return f"{exc.status} {reason}".strip() + (f": {message}" if message else "")


def call(
    connection: KubeConnection, what: str, method: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Call one API method with a timeout; failures become errors that say `what` failed."""
    kwargs.setdefault("_request_timeout", API_TIMEOUT_S)
    try:
        return method(*args, **kwargs)
    except ApiException as exc:
        if exc.status == 0:
            raise ClusterError(f"{what}: {exc.reason}") from None
        raise ApiError(f"{what}: {_status_message(exc)}", exc.status) from None
    except (Urllib3Error, OSError) as exc:
        raise ClusterError(
            f"{what}: cannot reach the Kubernetes API of {connection.where}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
