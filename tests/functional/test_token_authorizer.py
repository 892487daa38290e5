"""The authorizer handler with token auth on: JWKS over real HTTP at init, the webuser# read
against moto's DynamoDB over HTTP, and every log line free of tokens."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from iotauth.access.names import web_username
from iotauth.identities.web_users import DisabledUser
from tests.authorizer_support import connect_event
from tests.conftest import ROOT, FakeLambdaContext
from tests.token_support import AUDIENCE, NOW, JwksServer, SigningKey, claims, jwks_body

ALICE = web_username("alice")


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    return SigningKey("RS256", "r1"), SigningKey("ES256", "e1")


@pytest.fixture
def server(keys: tuple[SigningKey, SigningKey]) -> Iterator[JwksServer]:
    jwks = JwksServer(jwks_body(*keys)).start()
    try:
        yield jwks
    finally:
        jwks.stop()


def _fresh_import(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "authorizer" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app(
    dynamodb_table: str, server: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, io.StringIO]]:
    monkeypatch.setenv("IOTAUTH_TOKEN_ISSUER", server.issuer)
    monkeypatch.setenv("IOTAUTH_TOKEN_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("IOTAUTH_TOKEN_ALGORITHMS", "RS256,ES256")
    monkeypatch.setenv("IOTAUTH_WEB_ROOMS", "chat/lobby")
    monkeypatch.setenv("IOTAUTH_TOKEN_GROUP_GRANTS", '{"ops": {"rooms": ["chat/ops"]}}')
    module = _fresh_import("_token_app")
    module._clock = lambda: float(NOW)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(module.logger.registered_formatter)
    loggers = [logging.getLogger(module.logger.name), logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield module, stream
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def test_tokens_end_to_end_and_never_logged(
    app: tuple[ModuleType, io.StringIO],
    server: JwksServer,
    keys: tuple[SigningKey, SigningKey],
    dynamodb_table: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import boto3

    module, stream = app
    caplog.set_level(logging.DEBUG)

    def _claims(**extra: Any) -> dict[str, Any]:
        return claims(iss=server.issuer, **extra)

    assert server.requests == 1  # primed at init
    rsa_key, ec_key = keys
    tokens = [
        rsa_key.sign(_claims()),
        ec_key.sign(_claims(**{"cognito:groups": ["ops"]})),
        rsa_key.sign(_claims(aud="someone-else")),
        SigningKey("RS256", "r1").sign(_claims()),  # forged: right kid, wrong key
        rsa_key.sign(_claims(), kid="unknown-kid"),
    ]
    context = FakeLambdaContext()

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = module.lambda_handler(event, context)
        return result

    answer = invoke(connect_event("$jwt", tokens[0], ALICE))
    assert answer["isAuthenticated"] and answer["disconnectAfterInSeconds"] == 3600
    grouped = invoke(connect_event("$jwt", tokens[1], ALICE))
    assert grouped["isAuthenticated"] and "chat/ops" in "".join(grouped["policyDocuments"])
    assert "chat/ops" not in "".join(answer["policyDocuments"])
    wss = connect_event(None, None, ALICE)
    wss["protocols"] = ["tls", "http", "mqtt"]
    wss["protocolData"]["http"] = {
        "headers": {"host": "x"},
        "queryString": f"?x-amz-customauthorizer-name=iotauth&iotauth-token={tokens[0]}",
    }
    assert invoke(wss)["isAuthenticated"]
    for bad in tokens[2:]:
        assert not invoke(connect_event("$jwt", bad, ALICE))["isAuthenticated"]
    assert server.requests == 1  # the unknown kid: no refetch within a minute of the last

    # `iotauth users disable alice`: the very next CONNECT is refused.
    boto3.client("dynamodb").put_item(
        TableName=dynamodb_table, Item=DisabledUser.for_subject("alice", NOW).to_item()
    )
    assert not invoke(connect_event("$jwt", tokens[0], ALICE))["isAuthenticated"]

    out, err = capfd.readouterr()
    everything = "\n".join([stream.getvalue(), out, err, caplog.text])
    reasons = [json.loads(line).get("reason") for line in out.splitlines() if '"reason"' in line]
    assert {"token-audience", "token-signature", "token-key-unknown", "disabled"} <= set(reasons)
    for token in tokens:
        for part in token.split("."):
            assert part not in everything
        assert base64.b64encode(token.encode()).decode()[:40] not in everything


def test_jwks_down_at_init_is_logged_and_denies(
    dynamodb_table: str, monkeypatch: pytest.MonkeyPatch, keys: tuple[SigningKey, SigningKey]
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        issuer = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("IOTAUTH_TOKEN_ISSUER", issuer)
    monkeypatch.setenv("IOTAUTH_TOKEN_AUDIENCE", AUDIENCE)
    module = _fresh_import("_token_app_down")
    module._clock = lambda: float(NOW)
    token = keys[0].sign(claims(iss=issuer))
    answer = module.lambda_handler(connect_event("$jwt", token, ALICE), FakeLambdaContext())
    assert answer == {"isAuthenticated": False}


def test_bad_token_settings_are_a_config_error(
    dynamodb_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTAUTH_TOKEN_ISSUER", "https://issuer.test.invalid")
    monkeypatch.setenv("IOTAUTH_TOKEN_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("IOTAUTH_TOKEN_ALGORITHMS", "HS256")
    module = _fresh_import("_token_app_bad")
    assert "store" not in module._container
    answer = module.lambda_handler(connect_event("$jwt", "a.b.c", ALICE), FakeLambdaContext())
    assert answer == {"isAuthenticated": False}
