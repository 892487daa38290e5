"""The signer refuses a disabled browser user: the real handler, the ``webuser#`` record in
moto's DynamoDB over real HTTP (the standard-library client), STS from moto.

Disabled → 403 before any STS call and whatever the container cached; enabled again → a URL
from new credentials; the check failing → 503 (fail closed); other users are unaffected."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from iotauth.browser import aws_adapters
from iotauth.identities.web_users import DisabledUser
from tests.functional.signer_support import call


@pytest.fixture
def app(dynamodb_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    """``signer.app`` (a cold container, IOTAUTH_TABLE set) and the sessions STS was asked for."""
    import signer.app as app_module

    role = boto3.client("iam").create_role(
        RoleName="iotauth-web-client",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", role)
    monkeypatch.setenv("IOTAUTH_IOT_ENDPOINT", "example-ats.iot.us-east-1.amazonaws.com")
    monkeypatch.delenv("IOTAUTH_SIGNER_REQUESTS_PER_MINUTE", raising=False)
    sessions: list[str] = []
    real = aws_adapters.StsCredentialIssuer.assume_role

    def spy(self: Any, **kwargs: Any) -> Any:
        sessions.append(kwargs["session_name"])
        return real(self, **kwargs)

    monkeypatch.setattr(aws_adapters.StsCredentialIssuer, "assume_role", spy)
    monkeypatch.setattr(app_module, "_container", {})
    yield app_module, sessions


def disable(table: str, sub: str) -> None:
    item = DisabledUser.for_subject(sub, 1_800_000_000, "arn:aws:iam::123456789012:user/op")
    boto3.client("dynamodb").put_item(TableName=table, Item=item.to_item())


def enable(table: str, sub: str) -> None:
    key = {"pk": {"S": f"webuser#web-{sub}"}}
    boto3.client("dynamodb").delete_item(TableName=table, Key=key)


def test_a_disabled_user_gets_403_at_once_whatever_was_cached(
    app: tuple[Any, list[str]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    dynamodb_table: str,
    logs: io.StringIO,
) -> None:
    app_module, sessions = app
    first = call(app_module, events, lambda_context, "alice")
    assert first["statusCode"] == 200 and sessions == ["web-alice"]
    assert call(app_module, events, lambda_context, "alice")["statusCode"] == 200
    assert sessions == ["web-alice"]  # the second URL came from cached credentials

    disable(dynamodb_table, "alice")
    refused = call(app_module, events, lambda_context, "alice")
    assert refused["statusCode"] == 403
    assert json.loads(refused["body"]) == {"message": "This user is disabled"}
    assert sessions == ["web-alice"]  # no STS call for a disabled user
    assert call(app_module, events, lambda_context, "bob")["statusCode"] == 200  # others served

    enable(dynamodb_table, "alice")
    again = call(app_module, events, lambda_context, "alice")
    assert again["statusCode"] == 200
    # The credentials cached before the disable were dropped: new ones for the new URL.
    assert sessions == ["web-alice", "web-bob", "web-alice"]
    text = logs.getvalue()
    assert "refused a disabled user" in text and '"client_id":"web-alice"' in text
    body = json.loads(first["body"])
    assert body["url"] not in text and "X-Amz-Signature" not in text


def test_the_check_failing_refuses_the_url(
    app: tuple[Any, list[str]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail closed: a disabled user must not get a URL because the table did not answer."""
    app_module, sessions = app
    monkeypatch.setenv("IOTAUTH_TABLE", "no-such-table")
    monkeypatch.setattr(app_module, "_container", {})
    result = call(app_module, events, lambda_context, "alice")
    assert result["statusCode"] == 503
    assert sessions == []  # refused before STS


def test_the_check_is_one_consistent_get_of_the_status(dynamodb_table: str) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    class Api:
        def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
            seen.append((operation, params))
            return {"Item": {"status": {"S": "disabled"}}}

    check = aws_adapters.DynamoDBDisabledUsers(dynamodb_table, Api())  # type: ignore[arg-type]
    assert check.is_disabled("web-alice") is True
    assert seen == [
        (
            "GetItem",
            {
                "TableName": dynamodb_table,
                "Key": {"pk": {"S": "webuser#web-alice"}},
                "ConsistentRead": True,
                "ProjectionExpression": "#s",
                "ExpressionAttributeNames": {"#s": "status"},
            },
        )
    ]


def test_without_a_table_there_is_no_check(
    app: tuple[Any, list[str]],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    dynamodb_table: str,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    """Local tools run the signer without a table; the template always sets one
    (tests/unit/deploy/test_template_signer.py)."""
    app_module, _ = app
    disable(dynamodb_table, "alice")
    monkeypatch.delenv("IOTAUTH_TABLE")
    monkeypatch.setattr(app_module, "_container", {})
    assert call(app_module, events, lambda_context, "alice")["statusCode"] == 200
    assert "disabled browser users are not checked" in logs.getvalue()
