"""TLS: the server ``SSLContext`` built from ``--ssl-*`` options, and the ASGI ``tls`` scope extension.

``create_context`` checks every file and the password up front and raises ``TLSConfigError`` with
one line naming the flag at fault, so a bad key or certificate stops startup with a clear error
(the CLI checks in the parent process before any worker starts). TLS 1.2 is the minimum
(``--ssl-version 5`` also makes it the maximum, as uvicorn's ``ssl.PROTOCOL_TLSv1_2``); ALPN
offers ``h2`` (when HTTP/2 is on) and ``http/1.1``.

``tls_extension`` describes one TLS connection as the ASGI TLS extension asks: the server
certificate (PEM), the client's certificate (PEM, leaf only: Python < 3.13 cannot return the
verified chain), its subject as an RFC 4514 string, the TLS version and the IANA cipher suite id.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from squall.config import TLSSettings

TLS12_ONLY = 5  # ssl.PROTOCOL_TLSv1_2, deprecated by name
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304, "TLSv1.1": 0x0302, "TLSv1": 0x0301}
_RDN_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


class TLSConfigError(Exception):
    """A TLS option is unusable; the text is one line naming the flag."""


class ServerContext(ssl.SSLContext):
    """An ``SSLContext`` that also remembers the server certificate (PEM) and cipher ids."""

    server_cert: str | None = None
    cipher_ids: dict[str, int] = {}


def enabled(settings: TLSSettings) -> bool:
    """True when TLS is configured."""
    return bool(settings.ssl_certfile)


def create_context(settings: TLSSettings, http2: bool = True) -> ServerContext | None:
    """The server context for ``settings`` (None when TLS is off). Raises TLSConfigError."""
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    if not certfile:
        if keyfile or settings.ssl_ca_certs:
            flag = "--ssl-keyfile" if keyfile else "--ssl-ca-certs"
            raise TLSConfigError(f"{flag} needs --ssl-certfile")
        return None
    _readable("--ssl-certfile", certfile)
    if keyfile:
        _readable("--ssl-keyfile", keyfile)
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ssl_version == TLS12_ONLY:  # --ssl-version 5 (ssl.PROTOCOL_TLSv1_2), as uvicorn
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(context, certfile, keyfile, settings.ssl_keyfile_password)
    if settings.ssl_ciphers:
        try:
            context.set_ciphers(settings.ssl_ciphers)
        except ssl.SSLError:
            raise TLSConfigError(f"--ssl-ciphers: no usable cipher in {settings.ssl_ciphers!r}") from None
    if settings.ssl_ca_certs:
        _readable("--ssl-ca-certs", settings.ssl_ca_certs)
        try:
            context.load_verify_locations(settings.ssl_ca_certs)
        except (ssl.SSLError, ValueError) as exc:
            raise TLSConfigError(
                f"--ssl-ca-certs {settings.ssl_ca_certs}: no CA certificates ({exc})"
            ) from None
    elif settings.ssl_cert_reqs == ssl.CERT_REQUIRED:
        raise TLSConfigError("--ssl-cert-reqs 2 (required) needs --ssl-ca-certs")
    context.verify_mode = ssl.VerifyMode(settings.ssl_cert_reqs)
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    context.server_cert = _first_pem(certfile)
    context.cipher_ids = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}
    return context


def _readable(flag: str, path: str) -> None:
    if not os.path.isfile(path):
        raise TLSConfigError(f"{flag} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise TLSConfigError(f"{flag} {path}: permission denied")


def _load_chain(context: ssl.SSLContext, certfile: str, keyfile: str | None, password: str | None) -> None:
    asked = []

    def give_password() -> bytes:  # never let OpenSSL prompt on the terminal
        asked.append(True)
        return (password or "").encode()

    try:
        context.load_cert_chain(certfile, keyfile, password=give_password)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if asked:
            what = "wrong password" if password else "the key is encrypted: give --ssl-keyfile-password"
            raise TLSConfigError(
                f"--ssl-keyfile-password: cannot decrypt {keyfile or certfile} ({what})"
            ) from None
        if "KEY_VALUES_MISMATCH" in reason.upper():
            raise TLSConfigError(
                f"--ssl-keyfile {keyfile}: key does not match --ssl-certfile {certfile}"
            ) from None
        if keyfile is None:
            raise TLSConfigError(
                f"--ssl-certfile {certfile}: no private key in it; give --ssl-keyfile"
            ) from None
        raise TLSConfigError(f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile}: {reason}") from None


def _first_pem(path: str) -> str | None:
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:  # pragma: no cover - checked readable just before
        return None
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        return None
    return text[start : stop + len(end)] + "\n"


def tls_extension(ssl_object: ssl.SSLObject, context: Any) -> dict[str, Any]:
    """The ASGI ``tls`` scope extension for one connection."""
    chain: list[str] = []
    name: str | None = None
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        name = rfc4514(ssl_object.getpeercert() or {})
    cipher = ssl_object.cipher()
    ids: dict[str, int] = getattr(context, "cipher_ids", {})
    return {
        "server_cert": getattr(context, "server_cert", None),
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,  # a failed verification fails the handshake
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": ids.get(cipher[0]) if cipher else None,
    }


def rfc4514(cert: dict[str, Any]) -> str | None:
    """The subject of a decoded certificate (``getpeercert()``) as an RFC 4514 string."""
    subject = cert.get("subject")
    if not subject:
        return None
    parts = []
    for rdn in reversed(subject):
        parts.append("+".join(f"{_RDN_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn))
    return ",".join(parts)


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in ',+"\\<>;=' else c for c in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out
