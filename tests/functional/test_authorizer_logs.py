"""Every log line and metric the authorizer writes, across all scenarios: no secret in any."""

from __future__ import annotations

import base64
import copy
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from iotauth.identities.credentials import hash_chosen_password, hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import DynamoDBStore
from iotauth.wire import aliyun
from tests.authorizer_support import connect_event
from tests.conftest import FakeLambdaContext, load_event

DEMO_SECRET = "iotsk_TEST-ONLY_demo-device_secret_not-for-prod01"
ALIYUN_SECRET = "TEST-ONLY-aliyun-device-secret"
CHOSEN = "my chosen passphrase 42"
WRONG_CHOSEN = "a wrong passphrase 4242"
VALID_NAME_PASSWORD = "Tr0ub4dor-and-3.horse"  # a password that is also a valid name
QUERY_PASSWORD = "Tr0ub4dor?SDK=horse-battery-42"  # ... one with a '?': a fake "SDK" suffix


@pytest.fixture
def captured(
    dynamodb_table: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, io.StringIO]]:
    import authorizer.app as app_module

    store = DynamoDBStore(dynamodb_table)
    demo_verifier = hash_generated_secret(DEMO_SECRET)
    store.add_identity(
        IdentityRecord(username="demo-device", kind="secret", verifier=demo_verifier)
    )
    store.add_identity(
        IdentityRecord(
            username="carol", kind="password", verifier=hash_chosen_password(CHOSEN.encode())
        )
    )
    store.add_identity(
        IdentityRecord(username="demo-sensor&a1DemoPK", kind="aliyun", device_secret=ALIYUN_SECRET)
    )
    monkeypatch.setattr(app_module, "_container", {})
    monkeypatch.setattr(app_module, "_clock", lambda: 1_700_000_000.0)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(app_module.logger.registered_formatter)
    loggers = [logging.getLogger(app_module.logger.name), logging.getLogger()]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)  # the most a misconfigured function could ever log
    try:
        yield app_module, stream
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def _scenarios() -> list[dict[str, Any]]:
    scenarios = [
        load_event(f"authorizer/{name}")
        for name in (
            "connect-mqtt",
            "connect-mqtt-no-suffix",
            "connect-wss",
            "aliyun-signed",
            "wrong-password",
            "missing-password",
            "unknown-user",
            "malformed",
        )
    ]
    scenarios += [
        connect_event("carol", CHOSEN, "carol"),
        connect_event("carol", WRONG_CHOSEN, "carol"),
        connect_event("carol", CHOSEN, "carol*"),  # right password, wrong client id
        connect_event("demo-device", DEMO_SECRET, "someone-else"),
        connect_event("ghost", CHOSEN, "ghost"),
        connect_event(DEMO_SECRET, DEMO_SECRET, "x"),  # secret pasted into the username field
        connect_event(VALID_NAME_PASSWORD, CHOSEN, "carol"),  # password typed as the username
        connect_event(QUERY_PASSWORD, CHOSEN, "carol", suffix=""),
    ]
    # The right secret while locked out, after wrong attempts.
    # (distinct guesses: the negative cache absorbs identical repeats without counting them)
    scenarios += [connect_event("carol", f"{WRONG_CHOSEN}{i}", "carol") for i in range(5)]
    scenarios += [connect_event("carol", CHOSEN, "carol")]
    # Stale Aliyun signature, and one with the right signature but an unsafe client id.
    stale = copy.deepcopy(load_event("authorizer/aliyun-signed"))
    stale["protocolData"]["mqtt"]["clientId"] = stale["protocolData"]["mqtt"]["clientId"].replace(
        "1700000000000", "1600000000000"
    )
    scenarios.append(stale)
    return scenarios


def _secrets() -> list[str]:
    aliyun_password = aliyun.sign(
        ALIYUN_SECRET,
        client_id="a1DemoPK&demo-sensor",
        device_name="demo-sensor",
        product_key="a1DemoPK",
        timestamp="1700000000000",
        signmethod="hmacsha256",
    )
    wrong_generated = "iotsk_" + "A" * 43
    plain = [
        DEMO_SECRET,
        VALID_NAME_PASSWORD,
        QUERY_PASSWORD,
        QUERY_PASSWORD.split("=")[1],
        ALIYUN_SECRET,
        CHOSEN,
        WRONG_CHOSEN,
        aliyun_password,
        wrong_generated,
    ]
    encoded = [base64.b64encode(s.encode()).decode() for s in plain]
    return plain + encoded + [aliyun_password.upper()]


def test_no_secret_in_any_log_or_metric(
    captured: tuple[Any, io.StringIO],
    lambda_context: FakeLambdaContext,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app_module, stream = captured
    caplog.set_level(logging.DEBUG)
    outcomes = []
    for event in _scenarios():
        outcomes.append(app_module.lambda_handler(event, lambda_context)["isAuthenticated"])
    # An outage and a broken configuration log too.
    app_module._container.clear()
    app_module._container.update(
        settings=app_module.Settings(table="no-such-table"),
        store=DynamoDBStore("no-such-table"),
    )
    app_module.lambda_handler(connect_event("carol", CHOSEN, "carol"), lambda_context)

    assert outcomes.count(True) >= 5  # the scenarios did reach the success paths
    out, err = capfd.readouterr()
    everything = "\n".join([stream.getvalue(), out, err, caplog.text])
    assert "connect allowed" in everything and "connect denied" in everything
    for secret in _secrets():
        assert secret not in everything
    assert "iotsk_" not in everything
    assert "hmac-sha256$" not in everything and "scrypt$" not in everything
