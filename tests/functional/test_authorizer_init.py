"""The authorizer's per-container work happens at import (Lambda's init), and a
misconfiguration there is a denied request with reason ``config-error``, not an import
crash (which would fail every invoke of the container with an init error)."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType

import pytest

from iotauth.identities.store import DynamoDBStore
from iotauth.wire.aws_json import AwsJsonClient
from tests.authorizer_support import connect_event
from tests.conftest import ROOT, FakeLambdaContext

SECRET = "iotsk_" + "A" * 43


def _fresh_import(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "authorizer" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_store_and_client_are_built_at_import(dynamodb_table: str) -> None:
    app = _fresh_import("_init_ok_app")
    store = app._container["store"]
    assert isinstance(store, DynamoDBStore) and store.table == dynamodb_table
    assert isinstance(store._api, AwsJsonClient)  # constructed, not deferred to a request
    assert store._api.transport._idle == []  # and no socket opened yet
    response = app.lambda_handler(connect_event("nobody", SECRET, "nobody"), FakeLambdaContext())
    assert response == {"isAuthenticated": False}


@pytest.mark.parametrize(
    ("unset", "extra"),
    [
        ("IOTAUTH_TABLE", {}),
        ("AWS_REGION", {}),
        ("AWS_ACCESS_KEY_ID", {}),
        (None, {"IOTAUTH_LOCKOUT_THRESHOLD": "many"}),
    ],
)
def test_misconfiguration_denies_every_request_with_config_error(
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    unset: str | None,
    extra: dict[str, str],
) -> None:
    monkeypatch.setenv("IOTAUTH_TABLE", "t")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    if unset:
        monkeypatch.delenv(unset)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    app = _fresh_import("_init_bad_app")  # does not raise
    assert "store" not in app._container
    for _ in range(2):
        response = app.lambda_handler(connect_event("bob", SECRET, "bob"), FakeLambdaContext())
        assert response == {"isAuthenticated": False}
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"_aws"' in x]
    assert [r["reason"] for r in records] == ["config-error", "config-error"]
    misconfigured = [r for r in caplog.records if r.getMessage() == "authorizer misconfigured"]
    assert len(misconfigured) == 3  # once at init, once per request
    assert all(SECRET not in str(r.__dict__) for r in caplog.records)
