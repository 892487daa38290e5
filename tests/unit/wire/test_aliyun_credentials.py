"""iotauth.wire.aliyun.mqtt_credentials: the published example and linkkit's construction."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from unittest import mock

import pytest

from iotauth.wire.aliyun import mqtt_credentials, parse_mqtt_client_id, parse_username, sign

# Alibaba Cloud IoT doc 73742 (REFERENCE §7).
PUBLISHED_PASSWORD = "fafd82a3d602b37fb0fa8b7892f24a477f851a14"


@pytest.mark.parametrize(("securemode", "scheme"), [(2, "wss"), (3, "ws")])
def test_published_example(securemode: int, scheme: str) -> None:
    creds = mqtt_credentials(
        "pk", "device", "secret", "12345", timestamp=789, securemode=securemode
    )
    assert creds.url == f"{scheme}://pk.iot-as-mqtt.cn-shanghai.aliyuncs.com:443"
    assert creds.client_id == f"12345|securemode={securemode},signmethod=hmacsha1,timestamp=789|"
    assert creds.username == "device&pk"
    assert creds.password == PUBLISHED_PASSWORD
    assert creds.as_dict() == {
        "url": creds.url,
        "clientId": creds.client_id,
        "username": "device&pk",
        "password": PUBLISHED_PASSWORD,
    }
    assert PUBLISHED_PASSWORD not in repr(creds)


def linkkit_connect_parameters(
    product_key: str, device_name: str, secret: str, now: float
) -> dict[str, str]:
    """What aliyun-iot-linkkit 1.2.13 hands to its MQTT client, captured by a fake client."""
    from linkkit import linkkit as lk_module

    captured: dict[str, str] = {}

    class FakeClient:
        def __init__(self, client_id: str, **_: Any) -> None:
            captured["client_id"] = client_id

        def username_pw_set(self, username: str, password: str) -> None:
            captured["username"], captured["password"] = username, password

        def __getattr__(self, _: str) -> Any:
            return lambda *a, **k: None

    kit = lk_module.LinkKit(
        host_name="cn-shanghai",
        product_key=product_key,
        device_name=device_name,
        device_secret=secret,
    )
    try:
        with (
            mock.patch.object(lk_module.mqtt, "Client", FakeClient),
            mock.patch.object(lk_module.time, "time", return_value=now),
        ):
            kit._LinkKit__config_mqtt_client_internal()
    finally:
        kit.destruct()
    return captured


@pytest.mark.parametrize(
    ("product_key", "device_name", "secret", "now"),
    [
        ("a1pk", "dev1", "s3cret", 1_700_000_000.5),
        ("a1B2c3D4e5F", "sensor_07.lab", "Zx9/+=secret", 1_234_567_890.0),
    ],
)
def test_agrees_with_linkkit(product_key: str, device_name: str, secret: str, now: float) -> None:
    theirs = linkkit_connect_parameters(product_key, device_name, secret, now)
    parsed = parse_mqtt_client_id(theirs["client_id"])
    assert parsed is not None and parsed.timestamp == str(int(now))
    ours = mqtt_credentials(
        product_key, device_name, secret, f"{product_key}&{device_name}", timestamp=int(now)
    )
    assert ours.password == theirs["password"]
    assert ours.username == theirs["username"]
    assert parse_username(ours.username) == (device_name, product_key)
    # The authorizer's side: verifying linkkit's own connect parameters with the same rule.
    assert parsed.client_id == f"{product_key}&{device_name}"
    assert theirs["password"] == sign(
        secret,
        client_id=parsed.client_id,
        device_name=device_name,
        product_key=product_key,
        timestamp=parsed.timestamp,
        signmethod=parsed.signmethod,
    )


@pytest.mark.parametrize(
    ("method", "digest"),
    [("hmacsha1", hashlib.sha1), ("hmacsha256", hashlib.sha256), ("hmacmd5", hashlib.md5)],
)
def test_sign_methods(method: str, digest: Any) -> None:
    creds = mqtt_credentials("pk", "device", "secret", "12345", timestamp="789", signmethod=method)
    content = b"clientId12345deviceNamedeviceproductKeypktimestamp789"
    assert creds.password == hmac.new(b"secret", content, digest).hexdigest()
    parsed = parse_mqtt_client_id(creds.client_id)
    assert parsed is not None
    assert (parsed.client_id, parsed.securemode, parsed.signmethod, parsed.timestamp) == (
        "12345",
        "2",
        method,
        "789",
    )


def test_default_timestamp_is_now_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    parsed = parse_mqtt_client_id(mqtt_credentials("pk", "dev", "s", "c1").client_id)
    after = time.time_ns() // 1_000_000
    assert parsed is not None and parsed.timestamp is not None
    assert before <= int(parsed.timestamp) <= after


def test_instance_endpoint_and_region() -> None:
    creds = mqtt_credentials("pk", "dev", "s", "c1", timestamp=1, instance_id="iot-06z00ax1o4d1z2v")
    assert creds.url == "wss://iot-06z00ax1o4d1z2v.mqtt.iothub.aliyuncs.com:443"
    creds = mqtt_credentials("pk", "dev", "s", "c1", timestamp=1, region="ap-southeast-1")
    assert creds.url == "wss://pk.iot-as-mqtt.ap-southeast-1.aliyuncs.com:443"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"product_key": ""},
        {"product_key": "pk/x"},
        {"device_name": ""},
        {"device_name": "dev ice"},
        {"device_secret": ""},
        {"client_id": ""},
        {"client_id": "x" * 65},
        {"client_id": "id|securemode=3"},
        {"client_id": "a,b"},
        {"signmethod": "hmacsha512"},
        {"securemode": 1},
        {"securemode": True},
        {"timestamp": "12a"},
        {"timestamp": -5},
        {"region": "Shanghai"},
        {"region": ""},
        {"instance_id": "iot.bad/host"},
    ],
)
def test_invalid_input(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "product_key": "pk",
        "device_name": "device",
        "device_secret": "secret",
        "client_id": "12345",
        "timestamp": 789,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        mqtt_credentials(**args)


def test_client_id_of_64_characters_is_fine() -> None:
    creds = mqtt_credentials("pk", "device", "secret", "x" * 64, timestamp=1)
    assert creds.client_id.startswith("x" * 64 + "|")
