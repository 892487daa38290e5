"""AWS IoT Core custom authorizer: usernames and passwords (and Aliyun-signed devices).

A thin shell: parse the event (:mod:`iotauth.event`), decide (:mod:`iotauth.authenticate`)
against the DynamoDB table named by ``IOTAUTH_TABLE`` (:mod:`iotauth.store`), shape the
response. Logs are keyed by ``connectionMetadata.id`` and hold the decision and its reason
only: never the event, a password or a secret. Metrics (namespace ``iotauth``): ``Allowed``,
``Denied`` and ``DeniedByReason`` (dimension ``reason``).

The AWS SDK is imported when the first request needs the table, not at import time; there is no
Tracer (it would import the X-Ray SDK, ~600 ms of cold start).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from iotauth.authenticate import Decision, Settings, authenticate
from iotauth.event import parse_connect_event
from iotauth.scoping import ArnContext
from iotauth.store import CredentialStore, DynamoDBStore

logger = Logger(service="iotauth-authorizer")
# The SDK's debug logs hold request bodies, i.e. usernames that may be mistyped passwords:
# whatever level the function is given, they stay off.
for _name in ("boto3", "botocore", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)
metrics = Metrics(namespace="iotauth", service="authorizer")

# One per container: settings are read and the DynamoDB client is created on first use.
_container: dict[str, Any] = {}
_clock = time.time  # replaced by tests that need a fixed time
_monotonic = time.monotonic  # the store deadline's clock; replaced by tests


def _settings_and_store() -> tuple[Settings, CredentialStore]:
    if "store" not in _container:
        settings = Settings.from_env()
        _container["settings"] = settings
        _container["store"] = DynamoDBStore(settings.table)
    return _container["settings"], _container["store"]


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
        request, store, now=_clock(), settings=settings, arn=arn, monotonic=_monotonic
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
    if decision.allowed:
        metrics.add_metric(name="Allowed", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="Denied", unit=MetricUnit.Count, value=1)
        with single_metric(
            name="DeniedByReason", unit=MetricUnit.Count, value=1, namespace="iotauth"
        ) as metric:
            metric.add_dimension(name="reason", value=decision.reason)
    return decision.response()
