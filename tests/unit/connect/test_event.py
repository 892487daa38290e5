from __future__ import annotations

import base64
from typing import Any

import pytest

from iotauth.connect.event import MAX_PASSWORD_BYTES, parse_connect_event
from tests.conftest import load_event


def mqtt_event(**mqtt: Any) -> dict[str, Any]:
    return {
        "protocols": ["tls", "mqtt"],
        "signatureVerified": False,
        "protocolData": {"tls": {"serverName": "x-ats.iot.us-east-1.amazonaws.com"}, "mqtt": mqtt},
        "connectionMetadata": {"id": "6c0c2e5f-0d8c-4b0e-9a52-6d4a3f1b2c01"},
    }


def test_username_suffix_is_split_on_first_question_mark() -> None:
    request = parse_connect_event(load_event("authorizer/connect-mqtt"))
    assert request.problem is None
    assert request.username == "demo-device"
    assert request.authorizer_name == "iotauth"
    assert request.sdk == "PythonV2"
    assert request.username_params["Version"] == "1.22.0"
    assert request.client_id == "demo-device"
    assert request.password == b"iotsk_TEST-ONLY_demo-device_secret_not-for-prod01"
    assert request.server_name == "example-ats.iot.us-east-1.amazonaws.com"
    assert request.connection_id == "6c0c2e5f-0d8c-4b0e-9a52-6d4a3f1b2c01"


def test_username_without_suffix() -> None:
    request = parse_connect_event(load_event("authorizer/connect-mqtt-no-suffix"))
    assert request.username == "demo-device"
    assert request.authorizer_name is None


def test_a_second_question_mark_separates_parameters_too() -> None:
    # AWSIoTPythonSDK v1 appends its metrics with a second '?' (REFERENCE §9).
    request = parse_connect_event(mqtt_event(username="a?b?c=d", password="", clientId="a"))
    assert request.username == "a"
    assert request.username_params == {"b": "", "c": "d"}


def test_wss_event_has_headers_and_query() -> None:
    request = parse_connect_event(load_event("authorizer/connect-wss"))
    assert request.problem is None
    assert request.protocols == {"tls", "http", "mqtt"}
    assert request.headers["sec-websocket-protocol"] == "mqtt"
    assert request.query == {"x-amz-customauthorizer-name": "iotauth"}
    assert request.authorizer_name == "iotauth"
    assert request.username == "demo-device"


def test_password_is_arbitrary_bytes() -> None:
    raw = bytes(range(256))
    request = parse_connect_event(
        mqtt_event(username="u", password=base64.b64encode(raw).decode(), clientId="u")
    )
    assert request.password == raw


def test_empty_password_is_empty_bytes() -> None:
    assert parse_connect_event(mqtt_event(username="u", password="")).password == b""


def test_missing_fields_are_none() -> None:
    request = parse_connect_event(load_event("authorizer/missing-password"))
    assert request.problem is None
    assert request.password is None
    request = parse_connect_event({"protocols": ["tls"], "protocolData": {}})
    assert (request.username, request.password, request.client_id) == (None, None, None)


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "string",
        {"protocols": "mqtt"},
        {"protocols": ["mqtt", "carrier-pigeon"]},
        {"signatureVerified": "yes"},
        {"protocolData": []},
        {"protocolData": {"mqtt": "x"}},
        {"protocolData": {"mqtt": {"username": 5}}},
        {"protocolData": {"mqtt": {"username": "u", "password": "not base64!"}}},
        {"protocolData": {"mqtt": {"username": "u", "password": "YQ"}}},  # bad padding
        {"protocolData": {"mqtt": {"username": "u", "password": 12}}},
        {"protocolData": {"mqtt": {"username": "u", "clientId": ["a"]}}},
        {"protocolData": {"http": {"headers": {"a": 1}}}},
        {"protocolData": {"http": {"headers": {"a": "x" * 9000}}}},
        {"protocolData": {"mqtt": {"username": "u" * 2000}}},
    ],
)
def test_malformed_events_report_a_problem(event: object) -> None:
    request = parse_connect_event(event)
    assert request.problem is not None
    assert request.password is None
    assert request.username is None


def test_oversized_password_is_malformed() -> None:
    big = base64.b64encode(b"x" * (MAX_PASSWORD_BYTES + 10)).decode()
    assert parse_connect_event(mqtt_event(username="u", password=big)).problem == "password-invalid"


def test_connection_id_kept_for_logs_even_when_malformed() -> None:
    event = mqtt_event(username="u", password="%%%")
    request = parse_connect_event(event)
    assert request.problem == "password-invalid"
    assert request.connection_id == "6c0c2e5f-0d8c-4b0e-9a52-6d4a3f1b2c01"


def test_unsafe_connection_id_is_dropped() -> None:
    event = mqtt_event(username="u")
    event["connectionMetadata"]["id"] = "abc\ninjected log line"
    assert parse_connect_event(event).connection_id is None


def test_password_never_in_repr() -> None:
    request = parse_connect_event(load_event("authorizer/connect-mqtt"))
    assert "iotsk_" not in repr(request)
