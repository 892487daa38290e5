"""The authorizer Lambda end to end in-process, against a moto DynamoDB table."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iotauth.access.names import principal_id_for
from iotauth.access.policy import PolicySet
from iotauth.identities.credentials import hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import DynamoDBStore
from tests.authorizer_support import connect_event
from tests.conftest import FakeLambdaContext

DEMO_SECRET = "iotsk_TEST-ONLY_demo-device_secret_not-for-prod01"
ALIYUN_SECRET = "TEST-ONLY-aliyun-device-secret"
ALIYUN_FIXTURE_TIME = 1_700_000_000.0  # the timestamp inside aliyun-signed.json
ARN_PREFIX = "arn:aws:iot:us-east-1:123456789012"

FIXTURES = [
    ("connect-mqtt", True),
    ("connect-mqtt-no-suffix", True),
    ("connect-wss", True),
    ("aliyun-signed", True),
    ("wrong-password", False),
    ("missing-password", False),
    ("unknown-user", False),
    ("malformed", False),
]


@pytest.fixture
def authorizer(dynamodb_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``authorizer.app`` with fresh container state, the demo identities and a fixed clock."""
    import authorizer.app as app_module

    store = DynamoDBStore(dynamodb_table)
    # The fixture's secret stands for one iotauth issued (`devices add`): marked g1, which
    # only issue_secret() makes for a fresh secret (issue 16, item 9).
    issued = hash_generated_secret(DEMO_SECRET).replace("$v1$", "$g1$", 1)
    store.add_identity(IdentityRecord(username="demo-device", kind="secret", verifier=issued))
    store.add_identity(
        IdentityRecord(username="demo-sensor&a1DemoPK", kind="aliyun", device_secret=ALIYUN_SECRET)
    )
    monkeypatch.setattr(app_module, "_container", {})
    monkeypatch.setattr(app_module, "_clock", lambda: ALIYUN_FIXTURE_TIME)
    yield app_module


@pytest.fixture
def invoke(
    authorizer: Any, lambda_context: FakeLambdaContext
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def call(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = authorizer.lambda_handler(event, lambda_context)
        return response

    return call


@pytest.mark.parametrize(("name", "allowed"), FIXTURES)
def test_fixtures(
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    events: Callable[[str], dict[str, Any]],
    name: str,
    allowed: bool,
) -> None:
    event = events(f"authorizer/{name}")
    response = invoke(event)
    assert response["isAuthenticated"] is allowed
    if not allowed:
        assert response == {"isAuthenticated": False}
        return
    username = event["protocolData"]["mqtt"]["username"].partition("?")[0]
    client_id = event["protocolData"]["mqtt"]["clientId"]
    assert response["principalId"] == principal_id_for(username)
    assert 300 <= response["refreshAfterInSeconds"] <= response["disconnectAfterInSeconds"]
    assert set(response) == {
        "isAuthenticated",
        "principalId",
        "policyDocuments",
        "disconnectAfterInSeconds",
        "refreshAfterInSeconds",
    }
    documents = response["policyDocuments"]
    assert 1 <= len(documents) <= 10 and all(len(d) <= 2048 for d in documents)
    policy = PolicySet(documents)
    assert policy.allows("iot:Connect", f"{ARN_PREFIX}:client/{client_id}")
    assert not policy.allows("iot:Connect", f"{ARN_PREFIX}:client/other")


def test_aliyun_fixture_is_stale_at_real_time(
    authorizer: Any, invoke: Callable[[dict[str, Any]], dict[str, Any]], events: Any
) -> None:
    authorizer._clock = time.time
    assert invoke(events("authorizer/aliyun-signed")) == {"isAuthenticated": False}


def test_aliyun_fixture_session_is_never_refreshed(
    invoke: Callable[[dict[str, Any]], dict[str, Any]], events: Any
) -> None:
    """A timestamped Aliyun session ends (one hour) instead of being refreshed with stale
    credentials."""
    response = invoke(events("authorizer/aliyun-signed"))
    assert response["isAuthenticated"] is True
    assert response["refreshAfterInSeconds"] == response["disconnectAfterInSeconds"] == 3600


def _wrong_aliyun(events: Callable[[str], dict[str, Any]], guess: int = 0) -> dict[str, Any]:
    """A wrong signature; distinct guesses (the negative cache absorbs identical repeats)."""
    event = events("authorizer/aliyun-signed")
    wrong = f"{guess:064d}".encode()
    event["protocolData"]["mqtt"]["password"] = base64.b64encode(wrong).decode()
    return event


def test_lockout_in_dynamodb(
    invoke: Callable[[dict[str, Any]], dict[str, Any]], events: Any, dynamodb_table: str
) -> None:
    for guess in range(5):
        assert not invoke(_wrong_aliyun(events, guess))["isAuthenticated"]
    assert not invoke(events("authorizer/aliyun-signed"))["isAuthenticated"]  # locked
    import boto3

    item = boto3.client("dynamodb").get_item(
        TableName=dynamodb_table, Key={"pk": {"S": "lockout#demo-sensor&a1DemoPK"}}
    )["Item"]
    assert item["failures"]["N"] == "5"
    assert int(item["expiresAt"]["N"]) > int(item["lockedUntil"]["N"])


def test_guessable_lockout_never_refuses_a_generated_secret(
    invoke: Callable[[dict[str, Any]], dict[str, Any]], events: Any, dynamodb_table: str
) -> None:
    for i in range(6):
        guess = connect_event("demo-device", f"guessed chosen password {i}", "demo-device")
        assert not invoke(guess)["isAuthenticated"]
    for _ in range(10):
        assert not invoke(events("authorizer/wrong-password"))["isAuthenticated"]
    import boto3

    item = boto3.client("dynamodb").get_item(
        TableName=dynamodb_table, Key={"pk": {"S": "lockout#demo-device"}}
    )["Item"]
    assert item["failures"]["N"] == "5" and "lockedUntil" in item  # guessers are locked
    assert invoke(events("authorizer/connect-mqtt"))["isAuthenticated"]  # the device is not


def test_success_takes_back_its_own_count(
    invoke: Callable[[dict[str, Any]], dict[str, Any]], events: Any, dynamodb_table: str
) -> None:
    import boto3

    key = {"pk": {"S": "lockout#demo-sensor&a1DemoPK"}}
    assert invoke(events("authorizer/aliyun-signed"))["isAuthenticated"]
    # Counted before it was checked, uncounted after: no item left.
    assert "Item" not in boto3.client("dynamodb").get_item(TableName=dynamodb_table, Key=key)
    invoke(_wrong_aliyun(events))
    assert invoke(events("authorizer/aliyun-signed"))["isAuthenticated"]
    # The earlier failure stays (a reset would show a guesser that the device signed in).
    item = boto3.client("dynamodb").get_item(TableName=dynamodb_table, Key=key)["Item"]
    assert item["failures"]["N"] == "1"


def test_disabled_identity_denied(
    invoke: Callable[[dict[str, Any]], dict[str, Any]], events: Any, dynamodb_table: str
) -> None:
    store = DynamoDBStore(dynamodb_table)
    record = store.get_identity("demo-device")
    assert record is not None

    store.replace_identity(record.replace(status="disabled"))
    assert not invoke(events("authorizer/connect-mqtt"))["isAuthenticated"]


def test_missing_table_denies(
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    events: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IOTAUTH_TABLE", "no-such-table")
    assert invoke(events("authorizer/connect-mqtt")) == {"isAuthenticated": False}


def test_missing_configuration_denies(
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    events: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IOTAUTH_TABLE")
    assert invoke(events("authorizer/connect-mqtt")) == {"isAuthenticated": False}


def test_unreachable_store_denies_quickly(
    authorizer: Any, lambda_context: FakeLambdaContext, events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DynamoDB endpoint that refuses connections: denied, within the retry budget."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from moto import mock_aws

    # Outside moto's interception: a real (refused) connection to 127.0.0.1.
    with mock_aws(config={"core": {"passthrough": {"urls": [".*"]}}}):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        authorizer._container.clear()
        started = time.perf_counter()
        response = authorizer.lambda_handler(events("authorizer/connect-mqtt"), lambda_context)
        elapsed = time.perf_counter() - started
    assert response == {"isAuthenticated": False}
    print(f"unreachable store denied in {elapsed:.3f} s")


class _SlowTable(DynamoDBStore):
    """The moto table, each authorizer call taking ``delay`` s of a fake monotonic clock, and
    every counter write losing a race (another request keeps writing first)."""

    def __init__(self, table: str, delay: float) -> None:
        super().__init__(table)
        self.delay = delay
        self.clock = 0.0
        self.calls = 0

    def _slow(self) -> None:
        self.calls += 1
        self.clock += self.delay

    def lookup(self, username: str) -> Any:
        self._slow()
        return super().lookup(username)

    def save_lockout(self, *args: Any) -> bool:
        self._slow()
        return False

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        self._slow()
        return super().clear_lockout(username, expected_version)


def test_slow_store_is_denied_at_the_deadline(
    authorizer: Any,
    dynamodb_table: str,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Slow answers and lost races: denied with ``store-timeout`` at the deadline (2.5 s)."""
    table = _SlowTable(dynamodb_table, 1.4)
    authorizer._container.update(settings=authorizer.Settings(table=dynamodb_table), store=table)
    monkeypatch.setattr(authorizer, "_monotonic", lambda: table.clock)
    capsys.readouterr()
    event = connect_event("demo-device", "a chosen guess", "demo-device")
    assert authorizer.lambda_handler(event, lambda_context) == {"isAuthenticated": False}
    assert table.calls == 2  # the re-read after the lost race would start at 2.8 s
    blobs = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert any(b.get("reason") == "store-timeout" and "_aws" in b for b in blobs)


def test_metrics_by_reason(
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    events: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    invoke(events("authorizer/unknown-user"))
    invoke(events("authorizer/connect-mqtt"))
    out = capsys.readouterr().out
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    emf = [b for b in blobs if "_aws" in b]
    names = {m["Name"] for b in emf for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Allowed", "Denied", "DeniedByReason"} <= names
    assert any(b.get("reason") == "unknown-identity" for b in emf)
    assert all(d["Namespace"] == "iotauth" for b in emf for d in b["_aws"]["CloudWatchMetrics"])


def test_logs_keyed_by_connection_id(
    authorizer: Any,
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    events: Any,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(authorizer.logger.registered_formatter)
    stdlib_logger = logging.getLogger(authorizer.logger.name)
    stdlib_logger.addHandler(handler)
    try:
        invoke(events("authorizer/wrong-password"))
    finally:
        stdlib_logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    decision = next(line for line in lines if line["message"] == "connect denied")
    assert decision["correlation_id"] == "6c0c2e5f-0d8c-4b0e-9a52-6d4a3f1b2c04"
    assert decision["reason"] == "bad-password"
    assert decision["username"] == "demo-device"


def test_handler_with_generated_event(invoke: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    assert invoke(connect_event("demo-device", DEMO_SECRET, "demo-device"))["isAuthenticated"]
    assert not invoke(connect_event("demo-device", DEMO_SECRET, "demo-device*"))["isAuthenticated"]


def test_any_client_id_device_cannot_sign_a_registered_client_id(
    authorizer: Any, invoke: Callable[[dict[str, Any]], dict[str, Any]], dynamodb_table: str
) -> None:
    """The client-id registry is read in the lookup's one BatchGetItem (a third key), through
    the authorizer's own DynamoDB client against the table."""
    from tests.authorizer_support import aliyun_event

    store = DynamoDBStore(dynamodb_table)
    store.add_identity(
        IdentityRecord(
            username="roamer&a1AnyPK",
            kind="aliyun",
            device_secret=ALIYUN_SECRET,
            any_client_id=True,
        )
    )
    store.add_identity(  # another device that registered a serial number as its client id
        IdentityRecord(
            username="fixed&a1AnyPK",
            kind="aliyun",
            device_secret="other",
            client_ids=("SN-0042",),
        )
    )
    timestamp = str(int(ALIYUN_FIXTURE_TIME * 1000))
    free = aliyun_event(
        "roamer", "a1AnyPK", ALIYUN_SECRET, client_id="SN-0099", timestamp=timestamp
    )
    assert invoke(free)["isAuthenticated"] is True
    taken = aliyun_event(
        "roamer", "a1AnyPK", ALIYUN_SECRET, client_id="SN-0042", timestamp=timestamp
    )
    assert invoke(taken) == {"isAuthenticated": False}
    demo = aliyun_event(
        "roamer", "a1AnyPK", ALIYUN_SECRET, client_id="demo-device", timestamp=timestamp
    )
    assert invoke(demo) == {"isAuthenticated": False}  # a password identity's registered id
