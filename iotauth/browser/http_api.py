"""Just enough of an API Gateway HTTP API (payload format 2.0) handler for the signer.

One route, CORS preflights (:class:`CorsPolicy`, origins compared exactly) and 404s, answered
as Powertools' ``APIGatewayHttpResolver`` did, on the standard library alone: the resolver
cost ~79 ms of cold start. :class:`Request` carries method, path, lower-cased headers and the
JWT claims.

Design: docs/design/signer.md
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CorsPolicy", "Request", "Response", "not_found", "preflight"]

DEFAULT_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Api-Key",
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    claims: Mapping[str, Any]

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        """From a payload 2.0 event; missing or malformed parts read as empty."""
        context = event.get("requestContext")
        context = context if isinstance(context, Mapping) else {}
        http = context.get("http")
        http = http if isinstance(http, Mapping) else {}
        raw_headers = event.get("headers")
        headers = (
            {str(k).lower(): str(v) for k, v in raw_headers.items()}
            if isinstance(raw_headers, Mapping)
            else {}
        )
        claims: Any = context.get("authorizer")
        for key in ("jwt", "claims"):
            claims = claims.get(key) if isinstance(claims, Mapping) else None
        path = event.get("rawPath") or http.get("path") or ""
        return cls(
            method=str(http.get("method") or "").upper(),
            path=str(path),
            headers=headers,
            claims=claims if isinstance(claims, Mapping) else {},
        )


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, body: Mapping[str, Any]) -> Response:
        text = json.dumps(body, separators=(",", ":"))
        return cls(status, text, {"Content-Type": "application/json"})

    def to_result(self, extra_headers: Mapping[str, str]) -> dict[str, Any]:
        """The Lambda result for the HTTP API."""
        return {
            "statusCode": self.status,
            "body": self.body,
            "isBase64Encoded": False,
            "headers": {**self.headers, **extra_headers},
            "cookies": [],
        }


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    allowed_origins: tuple[str, ...]
    allow_headers: tuple[str, ...] = DEFAULT_ALLOW_HEADERS
    allow_methods: tuple[str, ...] = ("GET", "OPTIONS")
    # A page reads Retry-After of a 429 only if it is exposed (it is not CORS-safelisted).
    expose_headers: tuple[str, ...] = ("Retry-After",)
    max_age: int = 600

    def headers_for(self, origin: str | None) -> dict[str, str]:
        """The CORS headers for a request from ``origin`` (none when it is not allowed)."""
        if "*" in self.allowed_origins:
            allowed = "*"
        elif origin and origin in self.allowed_origins:
            allowed = origin
        else:
            return {}
        headers = {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Allow-Headers": ",".join(sorted(self.allow_headers)),
            "Access-Control-Max-Age": str(self.max_age),
        }
        if self.expose_headers:
            headers["Access-Control-Expose-Headers"] = ",".join(self.expose_headers)
        if allowed != "*" and len(self.allowed_origins) > 1:
            headers["Vary"] = "Origin"
        return headers


def preflight(cors: CorsPolicy, request: Request) -> Response:
    headers = {"Access-Control-Allow-Methods": ",".join(sorted(cors.allow_methods))}
    headers.update(cors.headers_for(request.headers.get("origin")))
    return Response(204, "", headers)


def not_found() -> Response:
    return Response.json(404, {"statusCode": 404, "message": "Not found"})
