"""The signer's per-user rate limit end to end in-process: the real handler, its counters in
moto's DynamoDB over real HTTP (the standard-library client), STS and IoT from moto too.

A user over the limit gets 429 with Retry-After before any STS call; other users are not
affected; the next window serves the user again; a store outage fails open to a count in
the container (still bounded); nothing secret is logged."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iotauth.browser import aws_adapters
from iotauth.browser.rate_limit import KEY_PREFIX
from tests.functional.signer_support import call

LIMIT = 3
WINDOW_START = 1_800_000_000.0  # a window boundary (divisible by 60)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(
    dynamodb_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, list[str], Clock]]:
    """``signer.app`` (a cold container) with a limit of LIMIT a minute and a fake clock for
    the limiter; and the sessions STS was asked for."""
    import boto3

    import signer.app as app_module

    role = boto3.client("iam").create_role(
        RoleName="iotauth-web-client",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", role)
    monkeypatch.setenv("IOTAUTH_IOT_ENDPOINT", "example-ats.iot.us-east-1.amazonaws.com")
    monkeypatch.setenv("IOTAUTH_ALLOWED_ORIGINS", "https://app.example.com")
    monkeypatch.setenv("IOTAUTH_SIGNER_REQUESTS_PER_MINUTE", str(LIMIT))

    sessions: list[str] = []
    real = aws_adapters.StsCredentialIssuer.assume_role

    def spy(self: Any, **kwargs: Any) -> Any:
        sessions.append(kwargs["session_name"])
        return real(self, **kwargs)

    monkeypatch.setattr(aws_adapters.StsCredentialIssuer, "assume_role", spy)
    monkeypatch.setattr(app_module, "_container", {})
    clock = Clock(WINDOW_START + 10)
    limiter = app_module._app()[2]
    assert limiter is not None
    monkeypatch.setattr(limiter, "_clock", clock)
    yield app_module, sessions, clock


def counters(table: str) -> dict[str, int]:
    import boto3

    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    return {
        item["pk"]["S"]: int(item["n"]["N"])
        for item in items
        if item["pk"]["S"].startswith(KEY_PREFIX)
    }


def test_a_user_over_the_limit_gets_429_and_others_are_served(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    dynamodb_table: str,
    logs: io.StringIO,
) -> None:
    app_module, sessions, clock = app
    for _ in range(LIMIT):
        assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 200
    over = call(app_module, events, lambda_context, "flooder")
    assert over["statusCode"] == 429
    assert json.loads(over["body"]) == {"message": "Too many requests, retry later"}
    assert over["headers"]["Retry-After"] == "50"  # 10 s into a 60 s window
    # The page may read it: exposed, like the HTTP API's CorsConfiguration does.
    assert "Retry-After" in over["headers"]["Access-Control-Expose-Headers"]
    assert over["headers"]["Access-Control-Allow-Origin"] == "https://app.example.com"
    clock.now += 5
    assert call(app_module, events, lambda_context, "flooder")["headers"]["Retry-After"] == "45"

    # Other users are counted apart, and still served.
    for user in ("alice", "bob"):
        for _ in range(LIMIT):
            assert call(app_module, events, lambda_context, user)["statusCode"] == 200
    window = int(WINDOW_START // 60)
    assert counters(dynamodb_table) == {
        f"{KEY_PREFIX}web-flooder#{window}": LIMIT,  # the refused ones were not counted
        f"{KEY_PREFIX}web-alice#{window}": LIMIT,
        f"{KEY_PREFIX}web-bob#{window}": LIMIT,
    }
    # A refused request never reached STS (one session per user, cached after that).
    assert sessions == ["web-flooder", "web-alice", "web-bob"]
    assert "eyJ" not in logs.getvalue() and "X-Amz-" not in logs.getvalue()


def test_the_counter_expires_after_its_window(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    dynamodb_table: str,
) -> None:
    import boto3

    app_module, _, _ = app
    call(app_module, events, lambda_context, "alice")
    window = int(WINDOW_START // 60)
    item = boto3.client("dynamodb").get_item(
        TableName=dynamodb_table, Key={"pk": {"S": f"{KEY_PREFIX}web-alice#{window}"}}
    )["Item"]
    assert int(item["expiresAt"]["N"]) == (window + 1) * 60 + 60  # TTL: a minute after


def test_the_next_window_serves_the_user_again(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
) -> None:
    app_module, _, clock = app
    for _ in range(LIMIT):
        call(app_module, events, lambda_context, "flooder")
    assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 429
    clock.now = WINDOW_START + 60  # the next window
    assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 200


def test_the_limit_holds_across_containers(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The count is in DynamoDB: a second container sees the first one's requests."""
    app_module, _, clock = app
    first = app_module._container["app"]
    for _ in range(LIMIT - 1):
        assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 200
    monkeypatch.setattr(app_module, "_container", {})  # another container
    second = app_module._app()
    monkeypatch.setattr(second[2], "_clock", clock)
    assert second is not first
    assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 200
    assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 429


def test_a_store_outage_fails_open_to_a_count_in_the_container(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    logs: io.StringIO,
) -> None:
    """No table (or DynamoDB down): users are still served, but a flooder is still held to
    the limit in this container; the log says so, naming no value."""
    app_module, _, _ = app
    limiter = app_module._container["app"][2]
    monkeypatch.setattr(limiter._counter, "table", "no-such-table")
    for _ in range(LIMIT):
        assert call(app_module, events, lambda_context, "flooder")["statusCode"] == 200
    over = call(app_module, events, lambda_context, "flooder")
    assert over["statusCode"] == 429 and over["headers"]["Retry-After"] == "50"
    assert call(app_module, events, lambda_context, "alice")["statusCode"] == 200
    text = logs.getvalue()
    assert "rate limit store unavailable, counting in this container" in text
    assert "no-such-table" not in text and "X-Amz-" not in text


def test_a_limit_without_a_table_is_a_misconfiguration(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_module, sessions, _ = app
    monkeypatch.setattr(app_module, "_container", {})
    monkeypatch.delenv("IOTAUTH_TABLE")
    result = call(app_module, events, lambda_context, "alice")
    assert result["statusCode"] == 500  # fail closed: not "no limit"
    assert sessions == []
    monkeypatch.setenv("IOTAUTH_TABLE", "t")
    monkeypatch.setenv("IOTAUTH_SIGNER_REQUESTS_PER_MINUTE", "lots")
    monkeypatch.setattr(app_module, "_container", {})
    assert call(app_module, events, lambda_context, "alice")["statusCode"] == 500


def test_no_limit_when_turned_off(
    app: tuple[Any, list[str], Clock],
    events: Callable[[str], dict[str, Any]],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    dynamodb_table: str,
) -> None:
    app_module, _, _ = app
    monkeypatch.setenv("IOTAUTH_SIGNER_REQUESTS_PER_MINUTE", "0")
    monkeypatch.setattr(app_module, "_container", {})
    for _ in range(LIMIT + 2):
        assert call(app_module, events, lambda_context, "alice")["statusCode"] == 200
    assert counters(dynamodb_table) == {}
