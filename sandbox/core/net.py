"""Small network facts shared by the admin-token rule, the webhook URL rule and the TLS port."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """localhost (and *.localhost), 127.0.0.0/8 and ::1: addresses only this machine can reach."""
    name = host.lower().strip("[]")
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def remember_sni(ssl_object: object, server_name: str | None, context: object) -> None:
    """A TLS server context's SNI callback (sandbox/core/ca.py): keeps the name the client asked for on the
    connection's SSLObject, where `sni_name` reads it (the environment, when the Host header does not say)."""
    ssl_object.sandbox_sni = server_name  # type: ignore[attr-defined]


def sni_name(ssl_object: object) -> str | None:
    """The server name a TLS connection's client asked for (SNI), lower-case; None if it sent none (or no TLS)."""
    name = getattr(ssl_object, "sandbox_sni", None)
    return name.lower().rstrip(".") if isinstance(name, str) else None
