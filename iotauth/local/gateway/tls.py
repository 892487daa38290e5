"""The listeners' TLS: a server context per ALPN list, and what a handshake told the server.

Port and ALPN decide what a TLS connection is (REFERENCE §11), and the SNI host name goes
into the authorizer event, so both are read back from each connection here.

IoT Core requires SNI on its TLS endpoints: it picks the endpoint (the domain configuration)
by the host name a client sends. A ClientHello without one (what TLS stacks send when they
connect to an IP address) cannot name an endpoint, so the handshake fails with a
``handshake_failure`` alert and one log line; the connection never reaches a listener's
handler. The plain (non-TLS) listeners do not use these contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from iotauth.local.certs import CertificateFiles

__all__ = ["has_host_name", "tls_context", "tls_facts"]

log = logging.getLogger("iotauth.local.gateway")


def tls_context(certs: CertificateFiles, alpn: Sequence[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    context.set_alpn_protocols(list(alpn))
    context.sni_callback = _check_sni
    return context


def has_host_name(server_name: str | None) -> bool:
    """Whether an SNI value names a host, as IoT needs to pick an endpoint (an IP literal,
    which RFC 6066 does not allow in SNI, does not)."""
    if not server_name:
        return False
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(server_name)
        return False
    return True


def _check_sni(ssl_object: Any, server_name: str | None, _: Any) -> int | None:
    if not has_host_name(server_name):
        log.info(
            "TLS handshake refused: no SNI host name (IoT Core requires SNI; connect to a "
            "host name such as localhost, not an IP address)"
        )
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
    # Kept on the connection's own SSLObject: it lives and dies with that connection.
    with contextlib.suppress(AttributeError, TypeError):
        ssl_object.iotauth_server_name = server_name
    return None


def tls_facts(writer: asyncio.StreamWriter) -> tuple[str | None, str | None]:
    """The connection's ALPN protocol and SNI server name (``None`` each when not TLS)."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None, None
    server_name = getattr(ssl_object, "iotauth_server_name", None)
    return ssl_object.selected_alpn_protocol(), server_name
