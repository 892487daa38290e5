"""Signer: ``GET /mqtt-url`` hands a signed-in browser user its own presigned MQTT URL.

A thin shell behind an HTTP API with a JWT authorizer: take the caller's verified ``sub``
claim, ask :class:`iotauth.web_signing.WebSigner` for a URL scoped to that caller, return
``{url, clientId, topics, expiresAt}`` with ``Cache-Control: no-store`` (on every response).
No identity → 401; STS or endpoint failure → 503. The URL, its signature and the session
token are bearer credentials: they are never logged, and neither is the event (it carries
the caller's JWT).

Settings (``IOTAUTH_*``, see :class:`~iotauth.web_signing.SignerSettings`) are read and AWS
clients created on the first request; there is no Tracer (the X-Ray SDK costs ~600 ms of
cold start).
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from iotauth.aws_adapters import IotEndpointResolver, StsCredentialIssuer
from iotauth.scoping import ArnContext
from iotauth.web_signing import SignerSettings, SignerUnavailable, WebSigner

logger = Logger(service="iotauth-signer")

NO_STORE = {"Cache-Control": "no-store"}


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":")),
        headers=dict(NO_STORE),
    )


def _build(settings: SignerSettings) -> tuple[APIGatewayHttpResolver, WebSigner]:
    origins = settings.allowed_origins
    cors = (
        CORSConfig(
            allow_origin=origins[0],
            extra_origins=list(origins[1:]),
            allow_headers=["Authorization"],
            max_age=600,
        )
        if origins
        else None
    )
    # debug pinned off: POWERTOOLS_DEV would otherwise print every event (the caller's
    # bearer JWT) and answer errors with tracebacks.
    app = APIGatewayHttpResolver(cors=cors, debug=False)
    signer = WebSigner(settings, StsCredentialIssuer(), IotEndpointResolver(settings.endpoint))

    @app.get("/mqtt-url")
    def mqtt_url() -> Response[str]:
        claims = app.current_event.request_context.authorizer.jwt_claim
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            logger.warning("request without a JWT subject")
            return _json(401, {"message": "Unauthorized"})
        try:
            arn = ArnContext.from_function_arn(app.lambda_context.invoked_function_arn)
            signed = signer.sign_url(subject, arn)
        except SignerUnavailable as exc:
            logger.error("cannot issue a URL", extra={"error": str(exc)})
            return _json(503, {"message": "Service unavailable, try again shortly"})
        except Exception as exc:
            # Only the type: a message could quote a value we must not log.
            logger.error("unexpected error", extra={"error": type(exc).__name__})
            return _json(500, {"message": "Internal error"})
        logger.info(
            "issued a presigned URL",
            extra={"client_id": signed.client_id, "expires_at": signed.as_dict()["expiresAt"]},
        )
        return _json(200, signed.as_dict())

    return app, signer


# One per container, created on the first request.
_container: dict[str, tuple[APIGatewayHttpResolver, WebSigner]] = {}


def _app() -> APIGatewayHttpResolver:
    if "app" not in _container:
        _container["app"] = _build(SignerSettings.from_env(os.environ))
    return _container["app"][0]


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        app = _app()
    except ValueError as exc:  # settings messages hold no secrets
        logger.error("signer misconfigured", extra={"error": str(exc)})
        result: dict[str, Any] = {
            "statusCode": 500,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": "Internal error"}),
            "isBase64Encoded": False,
        }
    else:
        result = app.resolve(event, context)
    # Every response, including CORS preflights and 404s: nothing here may be cached.
    result.setdefault("headers", {}).update(NO_STORE)
    return result
