"""The authorizer's metrics: one EMF record per invoke, the deny reason in it, and its own
service even when the signer runs in the same process (as in the local stand-in)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from iotauth.identities.credentials import hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import DynamoDBStore
from iotauth.local.lambda_host import load_handler_module
from tests.authorizer_support import connect_event
from tests.conftest import FakeLambdaContext

SECRET = "iotsk_TEST-ONLY_metrics-devic_secret_not-for-pro1"


@pytest.fixture
def both_handlers(dynamodb_table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The authorizer and then the signer loaded into this process, each with its template
    environment applied in turn (the signer's POWERTOOLS_SERVICE_NAME last), as the local
    stack does."""
    DynamoDBStore(dynamodb_table).add_identity(
        IdentityRecord(username="dev1", kind="secret", verifier=hash_generated_secret(SECRET))
    )
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "iotauth-authorizer")
    authorizer = load_handler_module("authorizer", prefix="_metrics_test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "iotauth-signer")
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", "arn:aws:iam::123456789012:role/web")
    monkeypatch.setenv("IOTAUTH_IOT_ENDPOINT", "example-ats.iot.us-east-1.amazonaws.com")
    load_handler_module("signer", prefix="_metrics_test")
    # Whatever else in the process uses Powertools' shared Metrics state must not leak in.
    from aws_lambda_powertools import Metrics

    Metrics(namespace="elsewhere", service="iotauth-signer").add_dimension("leak", "yes")
    yield authorizer


def _emf(out: str) -> list[dict[str, Any]]:
    blobs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [b for b in blobs if "_aws" in b]


def test_a_denied_connect_is_one_record_with_its_reason(
    both_handlers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    event = connect_event("dev1", "iotsk_" + "B" * 43, "dev1")
    assert both_handlers.lambda_handler(event, FakeLambdaContext()) == {"isAuthenticated": False}
    (record,) = _emf(capsys.readouterr().out)
    assert record["service"] == "iotauth-authorizer"
    assert record["reason"] == "bad-password"
    assert "leak" not in record
    directives = record["_aws"]["CloudWatchMetrics"]
    assert directives == [
        {
            "Namespace": "iotauth",
            "Dimensions": [["service"]],
            "Metrics": [{"Name": "Denied", "Unit": "Count"}],
        },
        {
            "Namespace": "iotauth",
            "Dimensions": [["service", "reason"]],
            "Metrics": [{"Name": "DeniedByReason", "Unit": "Count"}],
        },
    ]
    assert record["Denied"] == record["DeniedByReason"] == [1.0]


def test_an_allowed_connect_is_one_record_without_a_reason(
    both_handlers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = both_handlers.lambda_handler(
        connect_event("dev1", SECRET, "dev1"), FakeLambdaContext()
    )
    assert response["isAuthenticated"] is True
    (record,) = _emf(capsys.readouterr().out)
    assert record["service"] == "iotauth-authorizer"
    assert "reason" not in record and "DeniedByReason" not in record
    names = [m["Name"] for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    assert names == ["Allowed"]


def test_the_reason_does_not_stick_to_the_next_invoke(
    both_handlers: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    context = FakeLambdaContext()
    both_handlers.lambda_handler(connect_event("nobody", SECRET, "nobody"), context)
    both_handlers.lambda_handler(connect_event("dev1", SECRET, "dev1"), context)
    denied, allowed = _emf(capsys.readouterr().out)
    assert denied["reason"] == "unknown-identity"
    assert "reason" not in allowed and "Denied" not in allowed
