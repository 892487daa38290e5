"""How a :class:`~iotauth.local.gateway.LocalGateway` is set up: its settings and bound ports.

``GatewayConfig`` names the authorizer, the certificates, the two IoT endpoints and the
listeners' ports; the constants are IoT Core's fixed limits that the gateway applies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotauth.access.scoping import ArnContext
from iotauth.local.certs import CertificateFiles
from iotauth.local.domain import NO_DOMAIN, DomainConfiguration, TokenSigning
from iotauth.local.enforcement import LIMITS, Limits

__all__ = ["AuthorizerFunction", "GatewayConfig", "GatewayPorts", "PresignedVerifier"]

#: Calls the custom authorizer with an IoT event and returns its answer (run in a thread).
AuthorizerFunction = Callable[[dict[str, Any]], Any]
#: Checks a presigned WebSocket upgrade (request target, headers as sent, over TLS?); returns
#: the policy sets that bound the credentials (e.g. the STS session policy and the role's
#: policies: the effective permissions are their intersection), or ``None`` to refuse it.
PresignedVerifier = Callable[[str, Sequence[tuple[str, str]], bool], Sequence[Sequence[str]] | None]

MAX_CONNECTION_SECONDS = 86_400  # IoT Core ends every connection after 24 hours
READ_SIZE = 65_536
HTTP_REQUEST_LIMIT = 16_384  # IoT passes at most 8 KB of headers to an authorizer


@dataclass(slots=True)
class GatewayConfig:
    authorizer: AuthorizerFunction
    authorizer_name: str
    arn: ArnContext
    certificates: CertificateFiles
    presigned: PresignedVerifier | None = None
    host: str = "127.0.0.1"
    tcp_port: int = 0  # 0: any free port
    tls_port: int = 0
    ws_port: int = 0
    iot_port: int = 0
    domain: DomainConfiguration = NO_DOMAIN  # the device endpoint (tcp, tls listeners)
    data_endpoint: DomainConfiguration = NO_DOMAIN  # iot:Data-ATS (iot, ws listeners)
    token_signing: TokenSigning | None = None  # the authorizer's SigningDisabled: false
    limits: Limits = LIMITS
    engine_socket: Path | None = None  # None: the gateway starts its own mosquitto
    authorizer_timeout: float = 5.0
    connect_timeout: float = 10.0  # from accepting a connection to its CONNECT
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    tcp: int
    tls: int
    ws: int
    iot: int = 0
