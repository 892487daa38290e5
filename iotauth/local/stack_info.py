"""What a running local stack tells its users: :class:`StackInfo` (URLs, ports, secrets).

Its own module so the banner and the page server can read it without importing the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iotauth.local.domain import NO_DOMAIN, DomainConfiguration
from iotauth.local.iot_events import AUTHORIZER_NAME_PARAMETER

__all__ = ["StackInfo"]


@dataclass(frozen=True, slots=True)
class StackInfo:
    page_url: str
    signer_url: str
    dev_tokens: dict[str, str]
    gateway_ws_url: str
    authorizer_name: str
    mqtt_port: int  # plain MQTT over TCP
    mqtts_port: int  # MQTT over TLS, ALPN "mqtt"
    ca_cert_path: Path
    devices: dict[str, str]
    ws_port: int  # plain MQTT over WebSocket at /mqtt
    aws_endpoint_url: str
    table_name: str
    region: str
    client_role_arn: str
    chat_room: str
    # iot:Data-ATS on IoT's port: TLS, ALPN "mqtt" → MQTT, else HTTPS/wss at /mqtt (ws_port:
    # the same without TLS). mqtts_port / mqtt_port: the device endpoint (the template's
    # IotDomainConfiguration), with and without TLS.
    iot_port: int = 0
    iot_port_note: str = ""  # why it is not 443, and how to allow 443
    domain: DomainConfiguration = NO_DOMAIN
    #: The identities ``events/authorizer/*.json`` name (test-only secrets, published there).
    fixtures: tuple[str, ...] = ()
    shared_topic_roots: str = ""  # the template's WebSharedTopicRoot (the CLI reads it)
    # The local OIDC issuer (iotauth.local.oidc): its exact iss, token endpoint, the aud of
    # its tokens, and the authorizer's TokenKeyName (header / query / username parameter).
    issuer_url: str = ""
    token_endpoint: str = ""
    token_audience: str = ""
    token_key_name: str = ""
    token_signing: bool = False  # the authorizer's SigningDisabled is false

    @property
    def state(self) -> dict[str, Any]:
        """What ``iotauth local env`` needs (:mod:`iotauth.local.state`): no secret."""
        return {
            "aws_port": urlsplit(self.aws_endpoint_url).port,
            "region": self.region,
            "table": self.table_name,
            "shared_topic_roots": self.shared_topic_roots,
            "ports": {
                "web": urlsplit(self.page_url).port,
                "signer": urlsplit(self.signer_url).port,
                "mqtt": self.mqtt_port,
                "mqtts": self.mqtts_port,
                "ws": self.ws_port,
                "iot": self.iot_port,
            },
        }

    @property
    def tcp_port(self) -> int:
        return self.mqtt_port

    @property
    def tls_port(self) -> int:
        return self.mqtts_port

    @property
    def config(self) -> dict[str, Any]:
        """``/config.json`` for the chat page (local mode: the dev tokens are included)."""
        return {
            "mode": "local",
            "signerUrl": self.signer_url,
            "gatewayWsUrl": (
                f"{self.gateway_ws_url}?{AUTHORIZER_NAME_PARAMETER}={self.authorizer_name}"
            ),
            "authorizerName": self.authorizer_name,
            "room": self.chat_room,
            "devTokens": dict(self.dev_tokens),
            "issuerUrl": self.issuer_url,
            "tokenEndpoint": self.token_endpoint,
            "tokenAudience": self.token_audience,
            "tokenKeyName": self.token_key_name,
        }
