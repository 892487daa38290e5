"""The listeners' TLS: a server context per ALPN list, and what a handshake told the server.

Port and ALPN decide what a TLS connection is (REFERENCE §11), and the SNI host name goes
into the authorizer event, so both are read back from each connection here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any

from iotauth.local.certs import CertificateFiles

__all__ = ["tls_context", "tls_facts"]


def tls_context(certs: CertificateFiles, alpn: Sequence[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    context.set_alpn_protocols(list(alpn))
    context.sni_callback = _remember_sni
    return context


def _remember_sni(ssl_object: Any, server_name: str | None, _: Any) -> None:
    # Kept on the connection's own SSLObject: it lives and dies with that connection.
    with contextlib.suppress(AttributeError, TypeError):
        ssl_object.iotauth_server_name = server_name


def tls_facts(writer: asyncio.StreamWriter) -> tuple[str | None, str | None]:
    """The connection's ALPN protocol and SNI server name (``None`` each when not TLS)."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None, None
    server_name = getattr(ssl_object, "iotauth_server_name", None)
    return ssl_object.selected_alpn_protocol(), server_name
