"""Aliyun's device SDK, aliyun-iot-linkkit 1.2.13, unmodified (no ALPN; username ``dn&pk``).

linkkit needs paho-mqtt<2, so it runs in its own venv (``make interop-deps``:
.tools/linkkit) through tests/interop/linkkit_driver.py. It can name no authorizer and sends
no ALPN: it reaches IoT Core only through an endpoint whose domain configuration has a
default authorizer and custom authentication without ALPN (REFERENCE §9, §11): the
stack's device endpoint, which the stand-in models from template.yaml on its MQTT/TLS
(8883) and plain TCP (1883) listeners. Its client id is linkkit's own
``pk&dn|securemode=2,signmethod=hmacsha1,…,timestamp=<s>|`` and its password the HMAC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from iotauth.local.stack import StackInfo
from tests.interop.conftest import (
    LINKKIT_PYTHON,
    REPO,
    AliyunDevice,
    iot_port,
    mqtt_port,
    mqtts_port,
    run_script,
)

DRIVER = REPO / "tests/interop/linkkit_driver.py"


def run(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    if not LINKKIT_PYTHON.exists():
        pytest.fail("linkkit's venv is missing: run `make interop-deps`")
    return run_script([str(LINKKIT_PYTHON), str(DRIVER)], scenario, timeout=60)


def scenario_for(info: StackInfo, device: AliyunDevice, listener: str) -> dict[str, Any]:
    port = {"iot": iot_port(info), "mqtts": mqtts_port(info), "mqtt": mqtt_port(info)}[listener]
    secure = listener != "mqtt"
    return {
        "port": port,
        "host": "localhost",  # a host name, as devices have one: linkkit then sends SNI
        "secure": "TLS" if secure else "",
        "ca_file": str(info.ca_cert_path) if secure else None,
        "product_key": device.product_key,
        "device_name": device.device_name,
        "device_secret": device.device_secret,
    }


@pytest.mark.parametrize(
    "listener", ["mqtts", "mqtt"], ids=["mqtts-tls-securemode2", "tcp-securemode3"]
)
def test_linkkit_round_trip_and_refusal_outside(
    stack: StackInfo, new_aliyun_device: Callable[[], AliyunDevice], listener: str
) -> None:
    device = new_aliyun_device()
    scenario = scenario_for(stack, device, listener)
    scenario["steps"] = [
        {"op": "subscribe", "topic": device.own_topic},
        {"op": "publish", "topic": device.own_topic, "payload": "21.5"},
        {"op": "expect_message"},
        {"op": "subscribe", "topic": device.foreign_topic},
        {"op": "publish", "topic": device.foreign_topic, "payload": "x"},
        {"op": "wait_close"},
    ]
    events = run(scenario)
    steps = [e for e in events if e["event"] != "disconnect"]
    assert steps[:6] == [
        {"event": "connect", "rc": 0},
        {"event": "suback", "rc": 0, "granted": [1]},
        {"event": "puback", "rc": 0, "acked": True},
        {"event": "message", "topic": device.own_topic, "payload": "21.5"},
        {"event": "suback", "rc": 0, "granted": [0x80]},  # SUBACK failure
        {"event": "puback", "rc": 0, "acked": False},  # never acknowledged
    ]
    assert steps[6] == {"event": "closed", "closed": True}
    # paho 1.x (inside linkkit) reports the broker's close as MQTT_ERR_CONN_LOST (7).
    assert {"event": "disconnect", "rc": 7} in events


def test_linkkit_with_a_wrong_secret_never_connects(
    stack: StackInfo, new_aliyun_device: Callable[[], AliyunDevice]
) -> None:
    device = new_aliyun_device()
    forged = AliyunDevice(device.product_key, device.device_name, device.device_secret + "x")
    events = run(scenario_for(stack, forged, "mqtts"))
    # linkkit passes a refusing CONNACK to no callback: it shows as no connect at all.
    assert events == [{"event": "no-connect", "disconnected": False}]
    assert run(scenario_for(stack, device, "mqtts"))[0] == {"event": "connect", "rc": 0}
