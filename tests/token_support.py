"""Token test helpers: signing keys made with ``cryptography``, tokens signed by PyJWT (the
oracle), and a real JWKS server on 127.0.0.1 (``http.server`` in a thread)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from iotauth.access.claims import WebScopeRules
from iotauth.connect.jwks import JwksCache
from iotauth.connect.token_check import TokenAuth, TokenSettings
from iotauth.identities.web_user_status import MemoryWebUserStatus

ISSUER = "https://issuer.test.invalid/pool"
AUDIENCE = "iotauth-test-client"
NOW = 1_700_000_000


class SigningKey:
    """A private key, its ``kid``, and its public JWK."""

    def __init__(self, alg: str, kid: str, bits: int = 2048) -> None:
        self.alg, self.kid = alg, kid
        self.private: Any
        if alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
            self.jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update(kid=kid, use="sig", alg=alg)

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = {k: v for k, v in {"kid": self.kid, **header}.items() if v is not None}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def claims(
    sub: str = "alice", now: float = NOW, lifetime: int = 3600, **extra: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": int(now),
        "exp": int(now) + lifetime,
        "token_use": "id",
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def jwks_body(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [k.jwk for k in keys]}).encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        )
    )


class JwksServer:
    """A JWKS endpoint on 127.0.0.1: serves ``body`` (settable), counts GETs, can stall."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.delay:
                    time.sleep(owner.delay)
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a stalled answer: expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"
        self.issuer = self.url.removesuffix("/.well-known/jwks.json")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(jwks_body(*keys)).start()
    try:
        yield server
    finally:
        server.stop()


def token_settings(**overrides: Any) -> TokenSettings:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": (AUDIENCE,),
        "algorithms": frozenset({"RS256", "ES256"}),
        "rules": WebScopeRules(shared_roots=("chat",), rooms=("chat/lobby",)),
    }
    values.update(overrides)
    return TokenSettings(**values)


def token_auth(
    *keys: SigningKey,
    settings: TokenSettings | None = None,
    clock: Any = None,
    web_users: MemoryWebUserStatus | None = None,
) -> tuple[TokenAuth, dict[str, int]]:
    """Token auth with an in-process JWKS (``fetch`` counts calls in the returned dict)."""
    settings = settings or token_settings()
    calls = {"fetches": 0}
    body = {"value": jwks_body(*keys)}

    def fetch(url: str, timeout: float) -> bytes:
        calls["fetches"] += 1
        return body["value"]

    cache = JwksCache(
        settings.jwks_url,
        fetch=fetch,
        refresh_seconds=settings.jwks_refresh_seconds,
        min_refetch_seconds=settings.jwks_min_refetch_seconds,
        clock=clock or (lambda: float(NOW)),
    )
    auth = TokenAuth(settings, cache, web_users or MemoryWebUserStatus())
    return auth, calls
