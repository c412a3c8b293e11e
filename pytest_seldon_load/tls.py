"""How the load generator trusts a secured ingress: a CA bundle, a client certificate (mTLS),
or no verification at all, which every run then says out loud.

The settings are checked and turned into one `ssl.SSLContext` when a run starts, so a typo in
a path fails the run at once with the option and the path named, not later as a thousand
`tls_error` answers.
"""

from __future__ import annotations

import os
import re
import ssl
import warnings
from dataclasses import dataclass

OPTION_NAMES = {
    "ca_bundle": "--seldon-ca-bundle",
    "client_cert": "--seldon-client-cert",
    "client_key": "--seldon-client-key",
    "insecure": "--seldon-insecure",
}
"""The command-line option of each field, named in every error about it."""
INSECURE_NOTE = (
    "TLS verification was OFF (insecure): the server's certificate was not checked, "
    "so nothing proves these numbers came from the intended server"
)


class InsecureTlsWarning(UserWarning):
    """A run sent its requests without checking the server's certificate."""


class TlsSettingsError(ValueError):
    """A TLS option that cannot be used: the message names the option and the path."""


@dataclass(frozen=True)
class TlsSettings:
    """What an https target is trusted with.

    `ca_bundle` is a PEM file (or a directory of hashed certificates) of the CAs to trust
    instead of the system's; `client_cert` and `client_key` are the PEM certificate and
    unencrypted key shown to a server that asks for one (the key may sit in the certificate
    file); `insecure` skips checking the server's certificate and name.
    """

    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if self.client_key and not self.client_cert:
            raise TlsSettingsError(
                f"{_named('client_key')} is given without {_named('client_cert')}: "
                "a key alone cannot be shown to the server"
            )
        if self.insecure and self.ca_bundle:
            raise TlsSettingsError(
                f"{_named('insecure')} and {_named('ca_bundle')} contradict each other: "
                "choose verification with the bundle, or none"
            )

    @property
    def notes(self) -> list[str]:
        """What a run's summary must say about how it trusted the server."""
        return [INSECURE_NOTE] if self.insecure else []

    def ssl_context(self) -> ssl.SSLContext:
        """A client context with these settings (build it once per run: it reads files)."""
        context = ssl.create_default_context()
        if self.ca_bundle:
            _load_ca_bundle(context, self.ca_bundle)
        if self.client_cert:
            _load_client_certificate(context, self.client_cert, self.client_key)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            warnings.warn(INSECURE_NOTE, InsecureTlsWarning, stacklevel=2)
        return context

    def grpc_pem(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """(CA certificates, client key, client certificate chain) as PEM, for a grpcs://
        channel; None where the system's CAs (or no client certificate) apply.

        The files are first checked as for HTTP (readable, PEM, key matching certificate,
        unencrypted). grpcio always verifies the server and reads one CA file, so `insecure`
        and a CA directory are refused, with the reason."""
        if self.insecure:
            raise TlsSettingsError(
                f"{_named('insecure')} cannot apply to gRPC: grpcio always checks the "
                f"server's certificate; give the CA that signed it with {_named('ca_bundle')}"
            )
        if self.ca_bundle and os.path.isdir(self.ca_bundle):
            raise TlsSettingsError(
                f"{_named('ca_bundle')}: {self.ca_bundle!r} is a directory; gRPC reads the "
                "CA certificates from one PEM file"
            )
        self.ssl_context()  # every check HTTP makes, with the option named
        roots = _read_pem(self.ca_bundle) if self.ca_bundle else None
        if not self.client_cert:
            return roots, None, None
        certificate = _read_pem(self.client_cert)
        key = _read_pem(self.client_key) if self.client_key else certificate
        return roots, _pem_blocks(key, "PRIVATE KEY"), _pem_blocks(certificate, "CERTIFICATE")


def _read_pem(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _pem_blocks(pem: bytes, label: str) -> bytes:
    """The blocks of `pem` whose label ends with `label` (a file may hold key and chain)."""
    found = re.finditer(rb"-----BEGIN ([A-Z ]*)-----.*?-----END \1-----", pem, flags=re.DOTALL)
    return b"\n".join(m.group(0) for m in found if m.group(1).endswith(label.encode())) + b"\n"


def _named(field: str) -> str:
    return f"{field} ({OPTION_NAMES[field]})"


def _readable(field: str, path: str, directory_allowed: bool = False) -> None:
    """Fail with the option and path named unless `path` can be opened for reading."""
    if not os.path.exists(path):
        raise TlsSettingsError(f"{_named(field)}: no such file: {path!r}")
    if os.path.isdir(path):
        if directory_allowed:
            return
        raise TlsSettingsError(f"{_named(field)}: {path!r} is a directory, not a PEM file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise TlsSettingsError(
            f"{_named(field)}: cannot read {path!r}: {exc.strerror or exc}"
        ) from None


def _load_ca_bundle(context: ssl.SSLContext, path: str) -> None:
    _readable("ca_bundle", path, directory_allowed=True)
    try:
        if os.path.isdir(path):
            context.load_verify_locations(capath=path)
        else:
            context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise TlsSettingsError(
            f"{_named('ca_bundle')}: no usable CA certificate in {path!r} "
            f"(PEM expected): {exc.reason or exc}"
        ) from None


def _load_client_certificate(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    _readable("client_cert", cert)
    if key:
        _readable("client_key", key)

    def no_passphrase() -> bytes:
        raise TlsSettingsError(
            f"{_named('client_key')}: the key in {key or cert!r} is encrypted; "
            "give an unencrypted key (the load generator asks for no passphrase)"
        )

    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TlsSettingsError(
                f"{_named('client_key')} {key or cert!r} does not match the certificate "
                f"{_named('client_cert')} {cert!r}"
            ) from None
        raise TlsSettingsError(
            f"{_named('client_cert')} {cert!r} with {_named('client_key')} {key or cert!r}: "
            f"not a usable PEM certificate and key: {reason}"
        ) from None
