"""The AWS IoT Core custom-authorizer event, parsed into a typed :class:`ConnectRequest`.

The event is what IoT Core sends to the Lambda (REFERENCE §1), not the shape of the
TestInvokeAuthorizer API:

- ``protocolData.mqtt.username`` keeps the query suffix the SDKs append
  (``alice?x-amz-customauthorizer-name=UserPass&SDK=PythonV2&Version=1.22.0``): it is split
  on the first ``?`` (:func:`split_username`). The part before it is the identity: one
  name, one record, one lockout counter, whatever suffix a client adds — the bare name,
  the authorizer suffix, the SDK v2 metrics suffix, the SDK v1 double ``?``
  (``NAME?x-amz-customauthorizer-name=A?SDK=Python&Version=1.6.2``), LinkKit's ``dn&pk``;
- ``protocolData.mqtt.password`` is base64 of arbitrary bytes;
- ``protocolData.mqtt.clientId``, ``protocolData.tls.serverName`` and
  ``protocolData.http`` (WebSocket upgrade headers and query string) appear only when the
  connection has them;
- the top-level ``token`` is there when the authorizer has a token key name and the client
  sent it (a header or query parameter over HTTP, the MQTT username's query): a bearer
  credential like the password, at most ``MAX_TOKEN_CHARS`` (longer: refused before any
  decoding). A JWT may also arrive as the password of the username ``$jwt``, which may
  then be that long too (:mod:`iotauth.connect.token_check`).

:func:`parse_connect_event` never raises: any input that is not a well-formed event gives a
request whose ``problem`` says why (a short, fixed string that is safe to log).
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from collections.abc import Mapping
from typing import Any

from iotauth.wire.frozen import Frozen
from iotauth.wire.token_size import MAX_TOKEN_CHARS

__all__ = [
    "JWT_USERNAME",
    "MAX_PASSWORD_BYTES",
    "MAX_TOKEN_CHARS",
    "ConnectRequest",
    "parse_connect_event",
    "split_username",
]

#: Longest password accepted (decoded). MQTT allows 65,535 bytes; nothing legitimate here
#: comes close, and scrypt over megabytes would be a cheap denial of service.
MAX_PASSWORD_BYTES = 1024
#: The MQTT username (before any ``?…``) whose password is a JWT, up to MAX_TOKEN_CHARS
#: (iotauth.connect.token_check). ``$`` cannot start an identity name
#: (:func:`iotauth.access.names.validate_username`), so no device collides.
JWT_USERNAME = "$jwt"
_MAX_USERNAME_CHARS = 1024  # with its query suffix, not counting a token in it (below)
# A JWT as one of the username's query parameters (the authorizer's token key name).
_JWT_SHAPE = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"  # compiled at first use
_MAX_CLIENT_ID_CHARS = 256  # IoT Core caps client ids at 128 bytes; leave room to say no
_MAX_HTTP_CHARS = 8 * 1024  # IoT forwards at most 8 KB of HTTP data
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_CONNECTION_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_PROTOCOLS = frozenset({"tls", "http", "mqtt"})


class ConnectRequest(Frozen):
    """One connection attempt, as IoT Core describes it. Holds the password: never log it."""

    __slots__ = (
        "client_id",
        "connection_id",
        "headers",
        "password",
        "problem",
        "protocols",
        "query",
        "server_name",
        "signature_verified",
        "token",
        "username",
        "username_params",
    )
    # Bearer credentials, or places that may carry one (a token under its key name).
    _NOT_IN_REPR = frozenset({"password", "token", "headers", "query", "username_params"})
    problem: str | None  # why the event is malformed; None when it is well-formed
    connection_id: str | None  # connectionMetadata.id, safe as a log correlation id
    protocols: frozenset[str]
    username: str | None  # without the query suffix
    username_params: Mapping[str, str]
    password: bytes | None
    client_id: str | None
    server_name: str | None
    headers: Mapping[str, str]
    query: Mapping[str, str]
    signature_verified: bool
    token: str | None  # the event's top-level token: a bearer credential, never log it

    def __init__(
        self,
        *,
        problem: str | None = None,
        connection_id: str | None = None,
        protocols: frozenset[str] = frozenset(),
        username: str | None = None,
        username_params: Mapping[str, str] | None = None,
        password: bytes | None = None,
        client_id: str | None = None,
        server_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        signature_verified: bool = False,
        token: str | None = None,
    ) -> None:
        self._init(
            problem=problem,
            connection_id=connection_id,
            protocols=protocols,
            username=username,
            username_params={} if username_params is None else username_params,
            password=password,
            client_id=client_id,
            server_name=server_name,
            headers={} if headers is None else headers,
            query={} if query is None else query,
            signature_verified=signature_verified,
            token=token,
        )

    @property
    def authorizer_name(self) -> str | None:
        """The ``x-amz-customauthorizer-name`` of the username or the WebSocket URL."""
        return self.username_params.get("x-amz-customauthorizer-name") or self.query.get(
            "x-amz-customauthorizer-name"
        )

    @property
    def sdk(self) -> str | None:
        return self.username_params.get("SDK")


def _query(text: str) -> dict[str, str]:
    """``a=1&b=2`` → {"a": "1", "b": "2"}: first value wins, no percent-decoding needed
    (the parameters IoT and the SDKs add are plain ASCII)."""
    params: dict[str, str] = {}
    for item in text.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        params.setdefault(key, value)
    return params


def split_username(raw: str) -> tuple[str, dict[str, str]]:
    """``NAME?k=v&k=v`` → (``NAME``, parameters): the identity and the client's suffix.

    The name ends at the first ``?`` (names never hold one). In the suffix both ``&`` and
    ``?`` separate parameters: AWSIoTPythonSDK v1 appends its metrics with a second ``?``
    (REFERENCE §9), which would otherwise glue ``?SDK=Python`` to the authorizer's name.
    """
    name, _, suffix = raw.partition("?")
    return name, _query(suffix.replace("?", "&"))


def _optional_str(section: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _Malformed(f"{key}-invalid")
    return value


def _section(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Malformed(f"{key}-invalid")
    return value


class _Malformed(Exception):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _decode_password(encoded: str | None, limit: int = MAX_PASSWORD_BYTES) -> bytes | None:
    if encoded is None:
        return None
    if len(encoded) > (limit * 4) // 3 + 4 or not _BASE64.fullmatch(encoded):
        raise _Malformed("password-invalid")
    try:
        return b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed("password-invalid") from None


def _headers(http: Mapping[str, Any]) -> dict[str, str]:
    raw = http.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _Malformed("headers-invalid")
    headers: dict[str, str] = {}
    total = 0
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise _Malformed("headers-invalid")
        total += len(key) + len(value)
        if total > _MAX_HTTP_CHARS:
            raise _Malformed("headers-invalid")
        headers[key.lower()] = value
    return headers


def _parse(event: object) -> ConnectRequest:
    if not isinstance(event, Mapping):
        raise _Malformed("event-not-object")
    metadata = _section(event, "connectionMetadata")
    connection_id = metadata.get("id")
    if not isinstance(connection_id, str) or not _CONNECTION_ID.fullmatch(connection_id):
        connection_id = None  # only a well-shaped id is used, and only for logs

    protocols_raw = event.get("protocols", [])
    if not isinstance(protocols_raw, list) or not all(
        isinstance(p, str) and p in _PROTOCOLS for p in protocols_raw
    ):
        raise _Malformed("protocols-invalid")
    signature_verified = event.get("signatureVerified", False)
    if not isinstance(signature_verified, bool):
        raise _Malformed("signature-verified-invalid")

    data = _section(event, "protocolData")
    tls = _section(data, "tls")
    http = _section(data, "http")
    mqtt = _section(data, "mqtt")

    raw_username = _optional_str(mqtt, "username", _MAX_USERNAME_CHARS + MAX_TOKEN_CHARS)
    username: str | None = None
    username_params: dict[str, str] = {}
    if raw_username is not None:
        username, username_params = split_username(raw_username)
        if len(raw_username) > _MAX_USERNAME_CHARS:
            # Longer only by one JWT-shaped parameter: a token beside the authorizer's name.
            longest = max(username_params.values(), key=len, default="")
            if len(raw_username) - len(longest) > _MAX_USERNAME_CHARS or not re.fullmatch(
                _JWT_SHAPE, longest
            ):
                raise _Malformed("username-invalid")
    query_string = _optional_str(http, "queryString", _MAX_HTTP_CHARS) or ""
    # A JWT password may be longer than a device's (bounded all the same).
    password_limit = MAX_TOKEN_CHARS if username == JWT_USERNAME else MAX_PASSWORD_BYTES
    encoded_password = _optional_str(mqtt, "password", (password_limit * 4) // 3 + 4)
    return ConnectRequest(
        problem=None,
        connection_id=connection_id,
        protocols=frozenset(protocols_raw),
        username=username or None,
        username_params=username_params,
        password=_decode_password(encoded_password, password_limit),
        client_id=_optional_str(mqtt, "clientId", _MAX_CLIENT_ID_CHARS),
        server_name=_optional_str(tls, "serverName", 253),
        headers=_headers(http),
        query=_query(query_string.removeprefix("?")),
        signature_verified=signature_verified,
        token=_optional_str(event, "token", MAX_TOKEN_CHARS) or None,
    )


def parse_connect_event(event: object) -> ConnectRequest:
    """Parse an IoT custom-authorizer event; never raises."""
    try:
        return _parse(event)
    except _Malformed as exc:
        connection_id = None
        if isinstance(event, Mapping):
            metadata = event.get("connectionMetadata")
            if isinstance(metadata, Mapping):
                cid = metadata.get("id")
                if isinstance(cid, str) and _CONNECTION_ID.fullmatch(cid):
                    connection_id = cid
        return ConnectRequest(problem=exc.problem, connection_id=connection_id)
    except Exception:  # fail closed on anything unforeseen (odd Mapping subclasses …)
        return ConnectRequest(problem="event-unreadable")
