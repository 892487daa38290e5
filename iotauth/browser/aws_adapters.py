"""The signer's ports (:mod:`iotauth.browser.web_signing`) on the standard-library AWS client.

:class:`StsCredentialIssuer` (``sts:AssumeRole``) and :class:`IotEndpointResolver`
(``iot:DescribeEndpoint``) over :class:`iotauth.wire.aws_json.AwsTransport`, with short
timeouts; every failure is :class:`~iotauth.browser.web_signing.SignerUnavailable`, naming no
value. :class:`DynamoDBRateCounter` is the per-caller rate limit's counter
(:mod:`iotauth.browser.rate_limit`): one conditional ``UpdateItem`` on the same client, within
``RATE_CALL_TIMEOUT``. :class:`DynamoDBDisabledUsers` reads an operator's ``webuser#`` record
(one strongly consistent ``GetItem``) before each URL; any failure there is
:class:`~iotauth.browser.web_signing.SignerUnavailable` (fail closed). No botocore: its STS
client alone costs as much cold start as the whole signer.

Design: docs/design/signer.md
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # STS answers (over TLS), not user input
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlencode

from iotauth.browser.rate_limit import RateStoreUnavailable
from iotauth.browser.web_signing import SignerUnavailable, TemporaryCredentials
from iotauth.identities.web_users import disabled_in, status_read
from iotauth.wire.aws_json import (
    DYNAMODB,
    IOT,
    STS,
    AwsError,
    AwsJsonClient,
    AwsTransport,
    HttpResponse,
    Service,
)
from iotauth.wire.sigv4 import canonical_query_string

__all__ = [
    "DynamoDBDisabledUsers",
    "DynamoDBRateCounter",
    "IotEndpointResolver",
    "StsCredentialIssuer",
    "query_error_code",
    "transport",
]

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0
MAX_ATTEMPTS = 3  # in all
# The rate limit's one UpdateItem (~5 ms in-region): a slow store must not hold the browser;
# past this the limiter counts in the container instead (fail open, bounded).
RATE_CONNECT_TIMEOUT = 0.3
RATE_READ_TIMEOUT = 0.5
RATE_CALL_TIMEOUT = 0.8
RATE_MAX_ATTEMPTS = 2
# The disabled-user check: the same short budget (a browser waits on it), but its failure
# refuses the URL (503) instead of letting it through.
CHECK_CALL_TIMEOUT = 1.0


def transport(service: Service, env: Mapping[str, str] | None = None) -> AwsTransport:
    """A transport for ``service`` from the environment; raises ConfigError (ValueError)."""
    return AwsTransport.from_env(
        service,
        env,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_attempts=MAX_ATTEMPTS,
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - STS's answer, not user input


def query_error_code(response: HttpResponse) -> str:
    """``<ErrorResponse><Error><Code>…`` of a query-protocol error, '' when none."""
    try:
        root = _parse_xml(response.body)
    except ET.ParseError:
        return ""
    for element in root.iter():
        if _local(element.tag) == "Code" and element.text:
            code = element.text.strip()
            return code if code.isidentifier() else "UnknownError"
    return ""


class StsCredentialIssuer:
    def __init__(self, sts: AwsTransport | None = None) -> None:
        self._sts = sts

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StsCredentialIssuer:
        return cls(transport(STS, env))

    def assume_role(
        self, *, role_arn: str, session_name: str, policy: str, duration_seconds: int
    ) -> TemporaryCredentials:
        body = urlencode(
            {
                "Action": "AssumeRole",
                "Version": "2011-06-15",
                "RoleArn": role_arn,
                "RoleSessionName": session_name,
                "Policy": policy,
                "DurationSeconds": str(duration_seconds),
            }
        ).encode("ascii")
        try:
            if self._sts is None:
                self._sts = transport(STS)
            response = self._sts.send(
                "AssumeRole",
                "POST",
                "/",
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                body=body,
                error_code=query_error_code,
            )
            fields = {
                _local(e.tag): (e.text or "").strip() for e in _parse_xml(response.body).iter()
            }
            expiration = datetime.fromisoformat(fields["Expiration"].replace("Z", "+00:00"))
            return TemporaryCredentials(
                access_key_id=fields["AccessKeyId"],
                secret_access_key=fields["SecretAccessKey"],
                session_token=fields["SessionToken"],
                expiration=expiration,
            )
        except (AwsError, ValueError, KeyError, ET.ParseError) as exc:
            raise SignerUnavailable("sts:AssumeRole failed") from exc


class IotEndpointResolver:
    """The configured endpoint, else ``iot:DescribeEndpoint`` (``iot:Data-ATS``) once."""

    def __init__(self, configured: str | None = None, iot: AwsTransport | None = None) -> None:
        self._endpoint = configured or None
        self._iot = iot

    @classmethod
    def from_env(
        cls, configured: str | None, env: Mapping[str, str] | None = None
    ) -> IotEndpointResolver:
        """No IoT transport when the endpoint is configured: nothing to look up."""
        return cls(configured, None if configured else transport(IOT, env))

    def data_endpoint(self) -> str:
        if self._endpoint is None:
            try:
                if self._iot is None:
                    self._iot = transport(IOT)
                query = canonical_query_string([("endpointType", "iot:Data-ATS")])
                response = self._iot.send("DescribeEndpoint", "GET", "/endpoint", query=query)
                address = json.loads(response.body)["endpointAddress"]
                if not isinstance(address, str) or not address:
                    raise ValueError("no endpoint address")
                self._endpoint = address
            except (AwsError, ValueError, KeyError, TypeError) as exc:
                raise SignerUnavailable("iot:DescribeEndpoint failed") from exc
        return self._endpoint


class DynamoDBRateCounter:
    """``ADD n :one`` on ``ratelimit#…`` under ``attribute_not_exists(n) OR n < :limit``.

    One write request unit per call, counted or refused (a failed condition is billed too).
    Every failure but the refusal is :class:`RateStoreUnavailable`, naming only its code.
    """

    def __init__(self, table: str, api: AwsJsonClient | None = None) -> None:
        self.table = table
        self._api = api

    @classmethod
    def from_env(cls, table: str, env: Mapping[str, str] | None = None) -> DynamoDBRateCounter:
        return cls(table, cls._new_api(env))

    @staticmethod
    def _new_api(
        env: Mapping[str, str] | None = None, total_timeout: float = RATE_CALL_TIMEOUT
    ) -> AwsJsonClient:
        return AwsJsonClient.from_env(
            DYNAMODB,
            env,
            connect_timeout=RATE_CONNECT_TIMEOUT,
            read_timeout=RATE_READ_TIMEOUT,
            max_attempts=RATE_MAX_ATTEMPTS,
            total_timeout=total_timeout,
        )

    def count(self, key: str, limit: int, expires_at: int) -> bool:
        params = {
            "TableName": self.table,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "ADD #n :one SET #e = if_not_exists(#e, :expires)",
            "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
            "ExpressionAttributeNames": {"#n": "n", "#e": "expiresAt"},
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":limit": {"N": str(limit)},
                ":expires": {"N": str(expires_at)},
            },
            "ReturnValues": "NONE",
        }
        try:
            if self._api is None:
                self._api = self._new_api()
            self._api.call("UpdateItem", params)
        except AwsError as exc:
            if exc.code == "ConditionalCheckFailedException":
                return False
            raise RateStoreUnavailable(f"dynamodb:UpdateItem failed ({exc.code})") from None
        except ValueError:  # ConfigError: no region or credentials
            raise RateStoreUnavailable("dynamodb:UpdateItem not configured") from None
        return True


class DynamoDBDisabledUsers:
    """``GetItem webuser#<web username>`` (``ConsistentRead``: a disable applies to the next
    request), projecting only ``status``: 1 read request unit per URL. Never cached."""

    def __init__(self, table: str, api: AwsJsonClient | None = None) -> None:
        self.table = table
        self._api = api

    @classmethod
    def from_env(cls, table: str, env: Mapping[str, str] | None = None) -> DynamoDBDisabledUsers:
        return cls(table, DynamoDBRateCounter._new_api(env, CHECK_CALL_TIMEOUT))

    def is_disabled(self, username: str) -> bool:
        try:
            if self._api is None:
                self._api = DynamoDBRateCounter._new_api(None, CHECK_CALL_TIMEOUT)
            answer = self._api.call("GetItem", status_read(self.table, username))
        except AwsError as exc:
            raise SignerUnavailable(f"dynamodb:GetItem failed ({exc.code})") from None
        except ValueError:  # ConfigError, or a name that cannot be a key
            raise SignerUnavailable("dynamodb:GetItem not possible") from None
        return disabled_in(answer)
