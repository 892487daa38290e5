"""A small OpenID Connect issuer on 127.0.0.1, standing in for the browser users' identity
provider (Cognito, Auth0…) so tokens can be checked at the authorizer locally (issue 17).

What it serves (:func:`serve_issuer`):

- ``GET /.well-known/openid-configuration``: the discovery document (issuer, ``jwks_uri``,
  ``token_endpoint``, RS256 and ES256);
- ``GET /.well-known/jwks.json``: one RSA (RS256) and one EC P-256 (ES256) public key,
  generated when the stack starts and never written anywhere;
- ``POST /token``: a resource-owner password grant (RFC 6749 §4.3) for the development users
  the stand-in already has: ``grant_type=password``, ``username=<user>``, ``password=<the
  user's dev token>`` (the banner's), optional ``client_id`` (must be the audience) and
  ``alg`` (``RS256``, the default, or ``ES256``). The answer is a short-lived JWT (``iss``,
  ``aud``, ``sub``, ``iat``, ``nbf``, ``exp``, ``groups``) as ``id_token`` and
  ``access_token``, with ``token_type`` and ``expires_in``; ``Cache-Control: no-store``.

CORS: the discovery document and the keys are public (``*``); the token endpoint answers
the chat page's origins only. Requests carry passwords and answers tokens: neither is ever
logged (the request line only, at debug, as every local HTTP server here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from iotauth.local.http_servers import QuietHandler, serve_http

__all__ = [
    "ALGORITHMS",
    "LOCAL_AUDIENCE",
    "TOKEN_LIFETIME_SECONDS",
    "IssuerBackend",
    "LocalIssuer",
    "serve_issuer",
]

LOCAL_AUDIENCE = "iotauth-local"  # the stand-in's "app client id": every token's aud
ALGORITHMS = ("RS256", "ES256")
# Short-lived, yet above the authorizer's 300 s floor (a token with less left is refused:
# IoT's shortest disconnectAfterInSeconds), so a connection gets ten minutes at least.
TOKEN_LIFETIME_SECONDS = 900
MAX_FORM_BYTES = 4096


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int, length: int | None = None) -> bytes:
    size = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, "big")


def _kid(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64url(hashlib.sha256(der).digest()[:12])


class LocalIssuer:
    """Keys, discovery, and JWTs for the development users. ``url``: set once it listens."""

    def __init__(
        self,
        users: Mapping[str, tuple[str, ...]],
        *,
        audience: str = LOCAL_AUDIENCE,
        lifetime_seconds: int = TOKEN_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = {user: tuple(groups) for user, groups in users.items()}
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds
        self.url = ""
        self._clock = clock
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._ec = ec.generate_private_key(ec.SECP256R1())
        self.kids = {"RS256": _kid(self._rsa.public_key()), "ES256": _kid(self._ec.public_key())}

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/token"

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.jwks_url,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": ["password"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "token_endpoint_auth_methods_supported": ["none"],
            "claims_supported": ["iss", "aud", "sub", "iat", "nbf", "exp", "groups"],
        }

    def jwks(self) -> dict[str, Any]:
        numbers = self._rsa.public_key().public_numbers()
        point = self._ec.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": self.kids["RS256"],
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64url(_uint(numbers.n)),
                    "e": _b64url(_uint(numbers.e)),
                },
                {
                    "kty": "EC",
                    "kid": self.kids["ES256"],
                    "use": "sig",
                    "alg": "ES256",
                    "crv": "P-256",
                    "x": _b64url(_uint(point.x, 32)),
                    "y": _b64url(_uint(point.y, 32)),
                },
            ]
        }

    def issue(self, user: str, alg: str = "RS256", **extra_claims: Any) -> str:
        """A signed JWT for ``user`` (a development user); ``extra_claims`` override (tests)."""
        if user not in self.users:
            raise KeyError(user)
        if alg not in ALGORITHMS:
            raise ValueError(f"unsupported alg {alg!r}")
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": user,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "groups": list(self.users[user]),
            "jti": secrets.token_hex(8),
        }
        claims.update(extra_claims)
        header = {"alg": alg, "typ": "JWT", "kid": self.kids[alg]}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        ).encode("ascii")
        if alg == "RS256":
            signature = self._rsa.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(self._ec.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = _uint(r, 32) + _uint(s, 32)
        return signing_input.decode("ascii") + "." + _b64url(signature)


class IssuerBackend(Protocol):
    """What the issuer's HTTP API needs from the stack: the issuer, the page's origins, and
    the check of a development user's password (its dev token)."""

    @property
    def issuer(self) -> LocalIssuer: ...

    @property
    def allowed_origins(self) -> frozenset[str]: ...

    def user_for(self, authorization: str) -> str | None: ...


class IssuerApi(QuietHandler):
    stack: ClassVar[IssuerBackend]

    def _json(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _cors_token(self) -> dict[str, str]:
        origin = self.headers.get("Origin")
        if origin and origin in self.stack.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = urlsplit(self.path).path
        issuer = self.stack.issuer
        public = {"Access-Control-Allow-Origin": "*", "Cache-Control": "max-age=300"}
        if path == "/.well-known/openid-configuration":
            self._json(HTTPStatus.OK, issuer.openid_configuration(), public)
        elif path == "/.well-known/jwks.json":
            self._json(HTTPStatus.OK, issuer.jwks(), public)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    do_HEAD = do_GET  # noqa: N815 - http.server's naming

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        cors = self._cors_token()
        if cors:
            cors |= {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "content-type",
                "Access-Control-Max-Age": "600",
            }
        self._send(HTTPStatus.NO_CONTENT, b"", headers=cors)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        cors = self._cors_token()
        no_store = {**cors, "Cache-Control": "no-store", "Pragma": "no-cache"}
        if urlsplit(self.path).path != "/token":
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"}, cors)
            return
        form = self._form()
        if form is None:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_request"}, no_store)
            return
        issuer = self.stack.issuer
        if form.get("grant_type") != "password":
            self._json(HTTPStatus.BAD_REQUEST, {"error": "unsupported_grant_type"}, no_store)
            return
        if form.get("client_id", issuer.audience) != issuer.audience:
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "invalid_client"}, no_store)
            return
        alg = form.get("alg", "RS256")
        if alg not in ALGORITHMS:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_request"}, no_store)
            return
        username = form.get("username", "")
        user = self.stack.user_for("Bearer " + form.get("password", ""))
        if user is None or user != username or user not in issuer.users:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_grant"}, no_store)
            return
        token = issuer.issue(user, alg)
        body = {
            "id_token": token,
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": issuer.lifetime_seconds,
        }
        self._json(HTTPStatus.OK, body, no_store)

    def _form(self) -> dict[str, str] | None:
        """The urlencoded body, or None (too large, not a form, a repeated field)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return None
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not 0 <= length <= MAX_FORM_BYTES or content_type != "application/x-www-form-urlencoded":
            return None
        try:
            pairs = parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        form = dict(pairs)
        return form if len(form) == len(pairs) else None


def serve_issuer(backend: IssuerBackend, port: int) -> ThreadingHTTPServer:
    """The issuer on ``port`` (0: any free); sets ``backend.issuer.url`` to where it listens."""
    handler = type("IssuerApi", (IssuerApi,), {"stack": backend})
    server = serve_http(handler, port, "--issuer-port")
    backend.issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server
