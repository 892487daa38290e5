"""Tokens against the local stack: JWTs from its OIDC issuer, IoT token signatures, HTTPS
publish over real TLS, and a spy on what the gateway hands the authorizer.

Shared by tests/e2e (test_gateway_token*.py, test_https_publish.py), tests/interop
(test_token_*.py) and tests/browser. Everything goes to 127.0.0.1 / localhost.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iotauth.local.domain import TokenSigning
from iotauth.local.stack import LocalStack, StackInfo

WAIT = 10.0
SIGNATURE = "x-amz-customauthorizer-signature"
AUTHORIZER = "x-amz-customauthorizer-name"
JWT_USERNAME = "$jwt"  # the authorizer's username for a JWT sent as the MQTT password


def token_for(info: StackInfo, user: str, alg: str = "RS256") -> str:
    """A JWT for a development user, from the stack's token endpoint (its dev token as the
    password, as the chat page asks for one)."""
    form = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "username": user,
            "password": info.dev_tokens[user],
            "client_id": info.token_audience,
            "alg": alg,
        }
    ).encode()
    request = urllib.request.Request(info.token_endpoint, data=form, method="POST")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        body = json.load(response)
    token: str = body["id_token"]
    return token


@dataclass
class SigningKey:
    """The key pair of an authorizer's TokenSigningPublicKeys entry (the private half signs,
    as the token issuer's backend would: ``openssl dgst -sha256 -sign``)."""

    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def sign(self, token: str) -> str:
        """The base64 RSA SHA-256 signature of ``token`` (x-amz-customauthorizer-signature)."""
        raw = self.private.sign(token.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode("ascii")

    def signing(self, key_name: str = "iotauth-token") -> TokenSigning:
        return TokenSigning(key_name, {"local-key": self.public_pem})


def tls_context(info: StackInfo) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(info.ca_cert_path))


def https_publish(
    info: StackInfo,
    topic: str,
    payload: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """``POST /topics/<topic>?…`` to the IoT port over TLS (SNI localhost): status, JSON body."""
    params = urllib.parse.urlencode({"qos": "1", **(query or {})})
    target = f"/topics/{urllib.parse.quote(topic, safe='')}?{params}"
    connection = http.client.HTTPSConnection(
        "localhost", info.iot_port, context=tls_context(info), timeout=WAIT
    )
    try:
        connection.request("POST", target, body=payload, headers=dict(headers or {}))
        response = connection.getresponse()
        status, body = response.status, response.read()
    finally:
        connection.close()
    return status, json.loads(body) if body else {}


class AuthorizerSpy:
    """Records every event the gateway hands the stack's (real) authorizer, then calls it."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._inner = stack._authorizer
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        stack._authorizer = self  # type: ignore[assignment]

    def __call__(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.events.append(json.loads(json.dumps(event)))
        assert self._inner is not None
        return self._inner(event)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            found, self.events = self.events, []
        return found

    def restore(self) -> None:
        self._stack._authorizer = self._inner
