"""mqtt.js 5.16.0 (web/'s, from npm) under node: TCP, TLS with ALPN ``mqtt``, wss; MQTT 3.1.1 and 5.

tests/interop/node/client.mjs passes the options below to ``mqtt.connect(url, options)``
unchanged, runs the steps and prints what mqtt.js reported. TLS needs
``ALPNProtocols: ['mqtt']`` for custom authentication (REFERENCE §9); over wss the
authorizer is named in the URL, as a browser must do it (REFERENCE §3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from iotauth.local.stack import StackInfo
from tests.interop.conftest import (
    NODE_CLIENT,
    Device,
    iot_port,
    mqtt_port,
    node_binary,
    run_script,
    username_for,
)

TRANSPORTS = ("tcp", "tls", "wss")


def connect_args(info: StackInfo, device: Device, transport: str, version: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "clientId": device.name,
        "username": username_for(info, device.name),
        "password": device.secret,
        "protocolVersion": version,
    }
    scenario: dict[str, Any] = {"options": options}
    if transport == "tcp":
        scenario["url"] = f"mqtt://127.0.0.1:{mqtt_port(info)}"
    elif transport == "tls":
        scenario["url"] = f"mqtts://localhost:{iot_port(info)}"  # SNI: a host name
        options["ALPNProtocols"] = ["mqtt"]
        scenario["caFile"] = str(info.ca_cert_path)
    else:
        scenario["url"] = (
            f"wss://localhost:{iot_port(info)}/mqtt"
            f"?x-amz-customauthorizer-name={info.authorizer_name}"
        )
        options["username"] = device.name
        scenario["caFile"] = str(info.ca_cert_path)
    return scenario


def events_of(scenario: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    scenario.setdefault("timeoutMs", 30000)
    found: dict[str, list[dict[str, Any]]] = {}
    for event in run_script([node_binary(), str(NODE_CLIENT)], scenario, timeout=40):
        found.setdefault(event["event"], []).append(event)
    return found


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_round_trip_in_its_namespace_and_refusal_outside(
    stack: StackInfo, new_device: Callable[[], Device], transport: str, version: int
) -> None:
    device = new_device()
    scenario = connect_args(stack, device, transport, version)
    scenario["steps"] = [
        {"op": "subscribe", "topic": device.own_topic},
        {"op": "publish", "topic": device.own_topic, "payload": "21.5"},
        {"op": "expect_message"},
        {"op": "subscribe", "topic": device.foreign_topic},
        {"op": "publish", "topic": device.foreign_topic, "payload": "x"},
        {"op": "wait_close"},
    ]
    seen = events_of(scenario)
    assert seen["connect"] == [{"event": "connect", "reasonCode": 0}]
    own, foreign = seen["suback"]
    assert [(g["topic"], g["qos"]) for g in own["granted"]] == [(device.own_topic, 1)]
    published, refused = seen["puback"]
    assert published["result"] == {"ok": True}
    assert seen["message"][0]["received"] == [{"topic": device.own_topic, "payload": "21.5"}]
    if version == 5:
        # SUBACK 0x87 for the filter, PUBACK 0x87 for the PUBLISH: mqtt.js reports both.
        assert foreign["granted"]["error"] == "Subscribe error: Not authorized"
        assert refused["result"] == {"error": "Publish error: Not authorized", "code": 0x87}
    else:
        assert foreign["granted"]["error"] == "Subscribe error: Unspecified error"  # 0x80
        # No PUBACK in MQTT 3.1.1 for a refused PUBLISH: the broker closes the connection;
        # mqtt.js fails the callback when the stream closes (or holds it: no ack ever).
        assert refused["result"] in ("timeout", {"error": "Connection closed", "code": None})
        assert seen["closed"] == [{"event": "closed", "closed": True}]


@pytest.mark.parametrize("version", [4, 5])
def test_a_wrong_password_is_refused_in_the_connack(
    stack: StackInfo, new_device: Callable[[], Device], version: int
) -> None:
    device = new_device()
    scenario = connect_args(stack, device, "tls", version)
    scenario["options"]["password"] = device.secret + "x"
    seen = events_of(scenario)
    assert "connect" not in seen
    # mqtt.js: "Connection refused: Not authorized" with the CONNACK code (5, or 0x87 in MQTT 5)
    assert seen["error"][0]["code"] == (5 if version == 4 else 0x87)
    assert "Not authorized" in seen["error"][0]["message"]
