"""What AWS IoT Core sends to a custom authorizer, and what it accepts back.

:func:`authorizer_event` builds the Lambda event exactly as IoT Core does for each
transport (REFERENCE §1): the MQTT username *with* its ``?x-amz-customauthorizer-name=…``
suffix, the password as base64 of its bytes, the client id only when one was sent, the TLS
server name (SNI) for TLS transports, the HTTP headers and query string (leading ``?``) of
a WebSocket upgrade, a fresh ``connectionMetadata.id`` and the ``protocols`` list; with
token signing on, ``token`` and ``signatureVerified: true`` once the gateway has checked
the signature (:func:`token_and_signature` finds both where IoT looks: the HTTP headers, the
query string, the MQTT username's query parameters). :func:`http_publish_event` is the
event of an HTTPS publish (``POST /topics/…``): ``protocols`` ``["tls", "http"]``, no MQTT.

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
    "SIGNATURE_PARAMETER",
    "AuthorizerGrant",
    "ConnectionInfo",
    "Transport",
    "authorizer_event",
    "http_publish_event",
    "parse_authorizer_response",
    "requested_authorizer",
    "token_and_signature",
]

AUTHORIZER_NAME_PARAMETER = "x-amz-customauthorizer-name"
SIGNATURE_PARAMETER = "x-amz-customauthorizer-signature"
_PRINCIPAL = re.compile(r"[a-zA-Z0-9]{1,128}")
MAX_DOCUMENTS = 10
MAX_DOCUMENT_CHARS = 2048
MIN_SECONDS = 300
MAX_SECONDS = 86_400

Transport = Literal["tcp", "tls", "ws", "wss", "https"]  # https: HTTPS publish


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What the gateway knows about a connection before its MQTT CONNECT."""

    transport: Transport
    server_name: str | None = None  # TLS SNI
    http_headers: Mapping[str, str] = field(default_factory=dict)  # WebSocket upgrade, HTTPS
    query_string: str = ""  # WebSocket upgrade, HTTPS: leading '?' included when not empty

    @property
    def is_tls(self) -> bool:
        return self.transport in ("tls", "wss", "https")

    @property
    def is_http(self) -> bool:
        return self.transport in ("ws", "wss", "https")

    def header(self, name: str) -> str | None:
        """An HTTP header's value by its case-insensitive name (the first one sent)."""
        wanted = name.lower()
        return next((v for k, v in self.http_headers.items() if k.lower() == wanted), None)


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


def _query_value(query: str, key: str) -> str | None:
    for name, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        if name == key:
            return value
    return None


def token_and_signature(
    username: str | None, conn: ConnectionInfo, token_key_name: str
) -> tuple[str | None, str | None]:
    """The token (under ``token_key_name``) and its ``x-amz-customauthorizer-signature``,
    each from the first place that has it: the HTTP headers, the query string, then the MQTT
    username's query parameters (custom-auth.html). ``None`` where absent.

    A signature is base64: a ``+`` a client left unencoded in a query reads as a space,
    which base64 never holds, so it is read back as ``+``.
    """
    places: list[tuple[str | None, str | None]] = []
    if conn.is_http:
        places.append((conn.header(token_key_name), conn.header(SIGNATURE_PARAMETER)))
        places.append(
            (
                _query_value(conn.query_string, token_key_name),
                _query_value(conn.query_string, SIGNATURE_PARAMETER),
            )
        )
    if username and "?" in username:
        suffix = username.split("?", 1)[1]
        places.append(
            (_query_value(suffix, token_key_name), _query_value(suffix, SIGNATURE_PARAMETER))
        )
    token = next((t for t, _ in places if t), None)
    signature = next((s for _, s in places if s), None)
    if signature is not None:
        signature = signature.replace(" ", "+")
    return token, signature


def _transport_data(conn: ConnectionInfo) -> tuple[list[str], dict[str, Any]]:
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
    return protocols, protocol_data


def _event(
    protocols: list[str],
    protocol_data: dict[str, Any],
    token: str | None,
    signature_verified: bool,
    connection_id: str | None,
) -> dict[str, Any]:
    event: dict[str, Any] = {}
    if token is not None:
        event["token"] = token
    event.update(
        {
            "signatureVerified": signature_verified,
            "protocols": protocols,
            "protocolData": protocol_data,
            "connectionMetadata": {"id": connection_id or str(uuid.uuid4())},
        }
    )
    return event


def http_publish_event(
    conn: ConnectionInfo,
    *,
    token: str | None = None,
    signature_verified: bool = False,
    connection_id: str | None = None,
) -> dict[str, Any]:
    """The event of an HTTPS publish (``POST /topics/…``): TLS and HTTP, no MQTT part."""
    protocols, protocol_data = _transport_data(conn)
    return _event(protocols, protocol_data, token, signature_verified, connection_id)


def authorizer_event(
    conn: ConnectionInfo,
    *,
    username: str | None,
    password: bytes | None,
    client_id: str | None,
    connection_id: str | None = None,
    token: str | None = None,
    signature_verified: bool = False,
) -> dict[str, Any]:
    """The custom-authorizer Lambda event IoT Core would send for this CONNECT.

    ``token`` / ``signature_verified``: only from an authorizer with signing enabled, once
    the gateway verified the token's signature (it never calls the authorizer otherwise).
    """
    protocols, protocol_data = _transport_data(conn)
    protocols.append("mqtt")
    mqtt: dict[str, str] = {}
    if username is not None:
        mqtt["username"] = username
    if password is not None:
        mqtt["password"] = base64.b64encode(password).decode("ascii")
    if client_id:
        mqtt["clientId"] = client_id
    protocol_data["mqtt"] = mqtt
    return _event(protocols, protocol_data, token, signature_verified, connection_id)


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
