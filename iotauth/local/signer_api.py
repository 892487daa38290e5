"""The signer's HTTP API on 127.0.0.1, playing API Gateway (HTTP API, payload 2.0) in front
of the real signer handler: its JWT authorizer (a development bearer token stands in for a JWT
and becomes the claim ``sub``), CORS for the page's origins, the one route ``GET /mqtt-url``.

Main entry: :func:`serve_signer_api`. A failing handler is answered 500, as API Gateway does.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

from iotauth.local.aws_standin import ACCOUNT
from iotauth.local.http_servers import QuietHandler, serve_http

__all__ = ["DevTokens", "SignerApi", "SignerBackend", "http_api_event", "serve_signer_api"]

log = logging.getLogger("iotauth.local")


class SignerBackend(Protocol):
    """What the API needs from the stack: the page's origins, the JWT check, the handler."""

    @property
    def allowed_origins(self) -> frozenset[str]: ...

    def user_for(self, authorization: str) -> str | None: ...

    def call_signer(self, event: dict[str, Any]) -> dict[str, Any]: ...


class DevTokens:
    """Development bearer tokens standing in for the JWTs of the browser users."""

    def __init__(self, users: Iterable[str] = ()) -> None:
        self.tokens: dict[str, str] = {user: f"dev-{secrets.token_urlsafe(24)}" for user in users}

    def user_for(self, authorization: str) -> str | None:
        """The user whose development token is in ``Authorization: Bearer …``, if any."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for user, expected in self.tokens.items():
            if hmac.compare_digest(expected.encode(), token.strip().encode()):
                found = user
        return found


def http_api_event(
    method: str, path: str, query: str, headers: Mapping[str, str], sub: str
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, after its JWT authorizer let ``sub`` in."""
    now = time.time()
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"}
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "authorizer": {"jwt": {"claims": {"sub": sub}, "scopes": None}},
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


class SignerApi(QuietHandler):
    """Plays API Gateway in front of the signer: JWT check (dev tokens), CORS, the route."""

    stack: ClassVar[SignerBackend]

    def _cors(self) -> dict[str, str]:
        origin = self.headers.get("Origin")
        if origin and origin in self.stack.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        cors = self._cors()
        if cors:
            cors |= {
                "Access-Control-Allow-Methods": "GET, OPTIONS",
                "Access-Control-Allow-Headers": "authorization, content-type",
                "Access-Control-Max-Age": "600",
            }
        self._send(HTTPStatus.NO_CONTENT, b"", headers=cors)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path != "/mqtt-url":
            self._send(HTTPStatus.NOT_FOUND, b'{"message":"Not Found"}', headers=self._cors())
            return
        sub = self.stack.user_for(self.headers.get("Authorization", ""))
        if sub is None:
            self._send(HTTPStatus.UNAUTHORIZED, b'{"message":"Unauthorized"}', headers=self._cors())
            return
        event = http_api_event("GET", url.path, url.query, dict(self.headers.items()), sub)
        try:
            response = self.stack.call_signer(event)
            status = int(response.get("statusCode", 502))
            body = response.get("body") or ""
            headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        except Exception as exc:  # API Gateway's answer to a failing integration
            log.warning("signer failed with %s", type(exc).__name__)
            status, body, headers = 500, '{"message":"Internal Server Error"}', {}
        for name in list(headers):
            if name.lower() in {"content-length", "connection", "transfer-encoding"}:
                del headers[name]
        content_type = headers.pop("Content-Type", headers.pop("content-type", "application/json"))
        lowered = {k.lower() for k in headers}
        headers |= {k: v for k, v in self._cors().items() if k.lower() not in lowered}
        self._send(status, body.encode("utf-8"), content_type, headers)

    do_HEAD = do_GET  # noqa: N815 - http.server's naming


def serve_signer_api(backend: SignerBackend, port: int) -> ThreadingHTTPServer:
    """The API on ``port`` (0: any free), bound to ``backend`` (two stacks may share a process)."""
    handler = type("SignerApi", (SignerApi,), {"stack": backend})
    return serve_http(handler, port, "--signer-port")
