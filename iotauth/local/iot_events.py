"""What AWS IoT Core sends to a custom authorizer, and what it accepts back.

:func:`authorizer_event` builds the Lambda event exactly as IoT Core does for each
transport (REFERENCE §1): the MQTT username *with* its ``?x-amz-customauthorizer-name=…``
suffix, the password as base64 of its bytes, the client id only when one was sent, the TLS
server name (SNI) for TLS transports, the HTTP headers and query string (leading ``?``) of
a WebSocket upgrade, a fresh ``connectionMetadata.id`` and the ``protocols`` list.

:func:`parse_authorizer_response` checks an answer the way IoT Core does (REFERENCE §2) and
turns it into an :class:`AuthorizerGrant`, or ``None`` when the connection must be refused.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

__all__ = [
    "AUTHORIZER_NAME_PARAMETER",
    "AuthorizerGrant",
    "ConnectionInfo",
    "Transport",
    "authorizer_event",
    "parse_authorizer_response",
    "requested_authorizer",
]

AUTHORIZER_NAME_PARAMETER = "x-amz-customauthorizer-name"
_PRINCIPAL = re.compile(r"[a-zA-Z0-9]{1,128}")
MAX_DOCUMENTS = 10
MAX_DOCUMENT_CHARS = 2048
MIN_SECONDS = 300
MAX_SECONDS = 86_400

Transport = Literal["tcp", "tls", "ws", "wss"]


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What the gateway knows about a connection before its MQTT CONNECT."""

    transport: Transport
    server_name: str | None = None  # TLS SNI
    http_headers: Mapping[str, str] = field(default_factory=dict)  # WebSocket upgrade
    query_string: str = ""  # WebSocket upgrade, leading '?' included when not empty

    @property
    def is_tls(self) -> bool:
        return self.transport in ("tls", "wss")

    @property
    def is_http(self) -> bool:
        return self.transport in ("ws", "wss")


def requested_authorizer(username: str | None, conn: ConnectionInfo) -> str | None:
    """The authorizer a client named: in its username suffix, or in the WebSocket URL."""
    if username and "?" in username:
        for key, value in parse_qsl(username.split("?", 1)[1], keep_blank_values=True):
            if key == AUTHORIZER_NAME_PARAMETER:
                return value
    if conn.query_string:
        for key, value in parse_qsl(conn.query_string.lstrip("?"), keep_blank_values=True):
            if key == AUTHORIZER_NAME_PARAMETER:
                return value
    return None


def authorizer_event(
    conn: ConnectionInfo,
    *,
    username: str | None,
    password: bytes | None,
    client_id: str | None,
    connection_id: str | None = None,
) -> dict[str, Any]:
    """The custom-authorizer Lambda event IoT Core would send for this CONNECT."""
    protocols: list[str] = []
    protocol_data: dict[str, Any] = {}
    if conn.is_tls:
        protocols.append("tls")
        if conn.server_name:
            protocol_data["tls"] = {"serverName": conn.server_name}
    if conn.is_http:
        protocols.append("http")
        protocol_data["http"] = {
            "headers": dict(conn.http_headers),
            "queryString": conn.query_string,
        }
    protocols.append("mqtt")
    mqtt: dict[str, str] = {}
    if username is not None:
        mqtt["username"] = username
    if password is not None:
        mqtt["password"] = base64.b64encode(password).decode("ascii")
    if client_id:
        mqtt["clientId"] = client_id
    protocol_data["mqtt"] = mqtt
    return {
        "signatureVerified": False,
        "protocols": protocols,
        "protocolData": protocol_data,
        "connectionMetadata": {"id": connection_id or str(uuid.uuid4())},
    }


@dataclass(frozen=True, slots=True)
class AuthorizerGrant:
    """A valid, positive authorizer answer."""

    principal_id: str
    policy_documents: tuple[str, ...]
    disconnect_after: int
    refresh_after: int


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if MIN_SECONDS <= value <= MAX_SECONDS else None


def parse_authorizer_response(response: Any) -> AuthorizerGrant | None:
    """The grant in ``response``, or ``None`` when IoT Core would refuse the connection.

    Refused: not authenticated, a principalId outside ``^[a-zA-Z0-9]{1,128}$``, no policy
    documents or more than 10, a document that is not a JSON string of at most 2,048
    characters, durations missing or outside 300-86,400 seconds.
    """
    if not isinstance(response, Mapping) or response.get("isAuthenticated") is not True:
        return None
    principal = response.get("principalId")
    if not isinstance(principal, str) or not _PRINCIPAL.fullmatch(principal):
        return None
    documents = response.get("policyDocuments")
    if not isinstance(documents, list) or not 1 <= len(documents) <= MAX_DOCUMENTS:
        return None
    for document in documents:
        if not isinstance(document, str) or len(document) > MAX_DOCUMENT_CHARS:
            return None
        try:
            if not isinstance(json.loads(document), dict):
                return None
        except ValueError:
            return None
    disconnect_after = _seconds(response.get("disconnectAfterInSeconds"))
    refresh_after = _seconds(response.get("refreshAfterInSeconds"))
    if disconnect_after is None or refresh_after is None:
        return None
    return AuthorizerGrant(principal, tuple(documents), disconnect_after, refresh_after)
