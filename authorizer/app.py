"""AWS IoT Core custom authorizer: usernames and passwords, Aliyun-signed devices, and (when
``IOTAUTH_TOKEN_ISSUER`` is set) an identity provider's JWTs.

Contract: a thin shell — parse the event (:mod:`iotauth.connect.event`), decide
(:mod:`iotauth.connect.authenticate`; tokens: :mod:`iotauth.connect.token_check`) against
the table named by ``IOTAUTH_TABLE`` (:mod:`iotauth.identities.dynamodb_store`), answer.
Logs hold the decision and its reason only, never the event, a password, a token or a
secret; metrics: :mod:`iotauth.connect.decision_metrics`.
Fails closed: a misconfiguration denies each request with reason ``config-error``.

The one reason that matters: IoT Core waits 5 s, so per-container work (settings, the
standard-library DynamoDB client, the token issuer's keys when configured) happens at init
and init is kept short.

Design: docs/design/cold-start.md
"""

# ruff: noqa: E402 - the imports follow gc.disable() on purpose
from __future__ import annotations

import gc

# The garbage collector is off during init and what init made is frozen at the end
# (docs/design/cold-start.md).
_GC_WAS_ON = gc.isenabled()
gc.disable()

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from iotauth.access.scoping import ArnContext
from iotauth.connect.authenticate import Decision, Settings, authenticate
from iotauth.connect.decision_metrics import decision_metrics
from iotauth.connect.event import parse_connect_event
from iotauth.connect.negative_cache import NegativeCache
from iotauth.identities.dynamodb_store import DynamoDBStore
from iotauth.identities.store import CredentialStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from iotauth.connect.token_check import TokenAuth

SERVICE = "iotauth-authorizer"
ISSUER_SETTING = "IOTAUTH_TOKEN_ISSUER"  # set: token auth on (iotauth.connect.token_check)
logger = Logger(service=SERVICE)
# An SDK's debug logs hold request bodies, i.e. usernames that may be mistyped passwords:
# whatever level the function is given, they stay off (should boto3 ever be loaded).
for _name in ("boto3", "botocore", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)
metrics, _decisions = decision_metrics(SERVICE)

# One per container, built at import (below); tests replace it with {} for a cold start.
_container: dict[str, Any] = {}
_clock = time.time  # replaced by tests that need a fixed time
_monotonic = time.monotonic  # the store deadline's clock; replaced by tests


def _token_auth(settings: Settings, store: DynamoDBStore) -> TokenAuth | None:
    """Token auth (:class:`iotauth.connect.token_check.TokenAuth`), imported only when the
    issuer is set: a deployment without tokens never loads the JWS code at cold start. The
    same client reads the ``webuser#`` items. Raises ValueError when misconfigured."""
    if not os.environ.get(ISSUER_SETTING, "").strip():
        return None
    from iotauth.connect.token_check import TokenAuth, TokenSettings  # noqa: PLC0415
    from iotauth.identities.web_user_status import DynamoDBWebUserStatus  # noqa: PLC0415

    token_settings = TokenSettings.from_env(os.environ)
    if token_settings is None:
        return None
    return TokenAuth.build(token_settings, DynamoDBWebUserStatus(settings.table, store.api))


def _settings_and_store() -> tuple[Settings, CredentialStore]:
    """The container's settings and store; raises ValueError (no secret in it) when the
    function is misconfigured. Cheap: no network, so retrying it per request costs nothing."""
    if "store" not in _container:
        settings = Settings.from_env()
        store = DynamoDBStore.for_lambda(settings.table)
        tokens = _token_auth(settings, store)
        _container.update(settings=settings, store=store, tokens=tokens)
    return _container["settings"], _container["store"]


try:
    _settings_and_store()
    # The issuer's keys at init (Lambda's init phase, captured by SnapStart), not inside a
    # device's CONNECT; a failure here is retried by the first token, rate-limited.
    if _container["tokens"] is not None and not _container["tokens"].jwks.prime():
        logger.warning("token issuer keys unavailable at init")
except ValueError as _exc:
    logger.error("authorizer misconfigured", extra={"error": str(_exc)})


def _decide(event: Any, context: LambdaContext) -> Decision:
    request = parse_connect_event(event)
    if request.connection_id:
        logger.set_correlation_id(request.connection_id)
    try:
        settings, store = _settings_and_store()
        arn = ArnContext.from_function_arn(context.invoked_function_arn)
    except ValueError as exc:  # messages of Settings/ArnContext hold no secrets
        logger.error("authorizer misconfigured", extra={"error": str(exc)})
        return Decision(allowed=False, reason="config-error")
    decision = authenticate(
        request,
        store,
        now=_clock(),
        settings=settings,
        arn=arn,
        monotonic=_monotonic,
        negative_cache=_container.setdefault("negative_cache", NegativeCache()),
        tokens=_container.get("tokens"),
    )
    logger.info(
        "connect allowed" if decision.allowed else "connect denied",
        extra={
            "reason": decision.reason,
            "username": decision.username,
            "protocols": sorted(request.protocols),
            # Like the username, the suffix is logged only for a known identity: in front
            # of an unknown "username" it may be part of a mistyped password.
            "sdk": request.sdk if decision.username is not None else None,
        },
    )
    return decision


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, object]:
    try:
        decision = _decide(event, context)
    except Exception as exc:  # fail closed; the type only, a message could echo input
        logger.error("authorizer error", extra={"error": type(exc).__name__})
        decision = Decision(allowed=False, reason="internal-error")
    _decisions.record(decision.allowed, decision.reason)
    return decision.response()


# The end of init: see gc.disable() at the top.
gc.freeze()
if _GC_WAS_ON:
    gc.enable()
