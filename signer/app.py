"""Signer: ``GET /mqtt-url`` hands a signed-in browser user its own presigned MQTT URL.

A thin shell over :class:`iotauth.browser.web_signing.WebSigner`: the caller's JWT ``sub`` →
``{url, clientId, topics, expiresAt}``, ``Cache-Control: no-store``; no identity → 401, over
the caller's own rate limit (:mod:`iotauth.browser.rate_limit`, checked before any STS call)
→ 429 with ``Retry-After``, disabled by an operator (``iotauth users disable``: the
``webuser#`` record, read consistently on every request, never cached) → 403, that check,
STS or the endpoint failing → 503 (fail closed), other routes → 404, misconfiguration → 500.
The URL is a bearer credential, so neither it nor the event (the caller's JWT) is ever
logged. Settings and AWS clients are built at import (Lambda's init, which SnapStart captures).

Design: docs/design/signer.md
"""

# ruff: noqa: E402 - the imports follow gc.disable() on purpose
from __future__ import annotations

import gc

# No cyclic GC passes over init's long-lived objects while the imports run; frozen at the
# end of this module, then it is back on (as in authorizer/app.py, which says why).
_GC_WAS_ON = gc.isenabled()
gc.disable()

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths

from iotauth.access.scoping import ArnContext
from iotauth.browser.aws_adapters import (
    DynamoDBDisabledUsers,
    DynamoDBRateCounter,
    IotEndpointResolver,
    StsCredentialIssuer,
)
from iotauth.browser.http_api import CorsPolicy, Request, Response, not_found, preflight
from iotauth.browser.rate_limit import PerUserRateLimiter, RateRule
from iotauth.browser.web_signing import (
    SignerSettings,
    SignerUnavailable,
    UserDisabled,
    WebSigner,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(service="iotauth-signer")

NO_STORE = {"Cache-Control": "no-store"}
ROUTE = "/mqtt-url"


App = tuple[CorsPolicy | None, WebSigner, PerUserRateLimiter | None]


def _limiter(env: Mapping[str, str]) -> PerUserRateLimiter | None:
    """The per-caller limit; None when ``IOTAUTH_SIGNER_REQUESTS_PER_MINUTE`` is unset or 0.
    A limit without ``IOTAUTH_TABLE`` is a misconfiguration (ValueError), not "no limit"."""
    rule = RateRule.from_env(env)
    if rule is None:
        return None
    table = env.get("IOTAUTH_TABLE", "").strip()
    if not table:
        raise ValueError("IOTAUTH_TABLE must name the table of the signer's rate limit")
    return PerUserRateLimiter(rule, DynamoDBRateCounter.from_env(table))


def _disabled_users(env: Mapping[str, str]) -> DynamoDBDisabledUsers | None:
    """The operators' disabled-user records, in ``IOTAUTH_TABLE`` (the template always sets
    it); without a table (local tools, some tests) there is no check, and the log says so."""
    table = env.get("IOTAUTH_TABLE", "").strip()
    if not table:
        logger.warning("no IOTAUTH_TABLE: disabled browser users are not checked")
        return None
    return DynamoDBDisabledUsers.from_env(table)


def _build(settings: SignerSettings) -> App:
    origins = settings.allowed_origins
    cors = CorsPolicy(origins) if origins else None
    limiter = _limiter(os.environ)
    issuer = StsCredentialIssuer.from_env()
    signer = WebSigner(
        settings,
        issuer,
        IotEndpointResolver.from_env(settings.endpoint),
        disabled=_disabled_users(os.environ),
    )
    return cors, signer, limiter


def _throttled(limiter: PerUserRateLimiter, subject: str) -> Response | None:
    """The 429 when ``subject`` is over its limit, else None (the request goes on)."""
    verdict = limiter.check(subject)
    if verdict.degraded:
        # The store failed: counted in this container only (fail open, still bounded).
        logger.warning("rate limit store unavailable, counting in this container")
    if verdict.allowed:
        return None
    response = Response.json(429, {"message": "Too many requests, retry later"})
    response.headers["Retry-After"] = str(verdict.retry_after)
    return response


def mqtt_url(
    signer: WebSigner,
    request: Request,
    context: LambdaContext,
    limiter: PerUserRateLimiter | None = None,
) -> Response:
    subject = request.claims.get("sub")
    if not isinstance(subject, str) or not subject:
        logger.warning("request without a JWT subject")
        return Response.json(401, {"message": "Unauthorized"})
    if limiter is not None:
        throttled = _throttled(limiter, subject)
        if throttled is not None:
            return throttled
    try:
        arn = ArnContext.from_function_arn(context.invoked_function_arn)
        signed = signer.sign_url(subject, arn)
    except UserDisabled as exc:
        logger.warning("refused a disabled user", extra={"client_id": str(exc)})
        return Response.json(403, {"message": "This user is disabled"})
    except SignerUnavailable as exc:
        logger.error("cannot issue a URL", extra={"error": str(exc)})
        return Response.json(503, {"message": "Service unavailable, try again shortly"})
    except Exception as exc:
        # Only the type: a message could quote a value we must not log.
        logger.error("unexpected error", extra={"error": type(exc).__name__})
        return Response.json(500, {"message": "Internal error"})
    logger.info(
        "issued a presigned URL",
        extra={"client_id": signed.client_id, "expires_at": signed.as_dict()["expiresAt"]},
    )
    return Response.json(200, signed.as_dict())


# One per container, built at import (below); tests replace it with {} for a cold start.
_container: dict[str, App] = {}


def _app() -> App:
    """Raises ValueError (its message names no secret) when the signer is misconfigured."""
    if "app" not in _container:
        _container["app"] = _build(SignerSettings.from_env(os.environ))
    return _container["app"]


def _route(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        cors, signer, limiter = _app()
    except ValueError as exc:
        logger.error("signer misconfigured", extra={"error": str(exc)})
        return Response.json(500, {"message": "Internal error"}).to_result({})
    request = Request.from_event(event)
    if request.method == "OPTIONS" and cors is not None:
        return preflight(cors, request).to_result({})
    if request.method == "GET" and request.path == ROUTE:
        response = mqtt_url(signer, request, context, limiter)
    else:
        response = not_found()
    extra = cors.headers_for(request.headers.get("origin")) if cors is not None else {}
    return response.to_result(extra)


try:
    _app()
except ValueError as _exc:
    logger.error("signer misconfigured", extra={"error": str(_exc)})


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = _route(event, context)
    # Every response, including CORS preflights and 404s: nothing here may be cached.
    result["headers"].update(NO_STORE)
    return result


# The end of init: see gc.disable() at the top.
gc.freeze()
if _GC_WAS_ON:
    gc.enable()
