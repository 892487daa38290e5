"""A local stand-in for the AWS IoT Core message broker: a policy-enforcing MQTT gateway.

The gateway owns everything IoT Core decides (who may connect, publish, subscribe, receive,
and for how long); mosquitto behind it (:mod:`iotauth.local.engine`) keeps sessions and routes.
Start it with ``await LocalGateway(GatewayConfig(...)).start()``, which returns the bound ports.
Every verdict is a pure function of :mod:`iotauth.local.enforcement`; this package carries
them out. Passwords, tokens, presigned URLs and signatures are never logged.

Design: docs/design/gateway.md

Pieces: :mod:`.server` (listeners, registry), :mod:`.session` (one connection's life),
:mod:`.client_packets` and :mod:`.engine_packets` (the two directions), :mod:`.grants`
(authorizer calls and refresh), :mod:`.connect_packets` (CONNECT/CONNACK), :mod:`.websocket`,
:mod:`.tls`, :mod:`.streams`, :mod:`.config`.
"""

from __future__ import annotations

from iotauth.local.gateway.config import (
    AuthorizerFunction,
    GatewayConfig,
    GatewayPorts,
    PresignedVerifier,
)
from iotauth.local.gateway.server import LocalGateway

__all__ = [
    "AuthorizerFunction",
    "GatewayConfig",
    "GatewayPorts",
    "LocalGateway",
    "PresignedVerifier",
]
