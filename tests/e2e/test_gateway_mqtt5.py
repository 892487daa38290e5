"""MQTT 5 and the IoT port through the local gateway, with paho-mqtt 2 (MQTT 5 and 3.1.1).

Every listener speaks both versions; the IoT-style TLS port takes MQTT with ALPN ``mqtt``
and WebSocket over TLS otherwise. Messages cross versions, as on IoT Core.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.conftest import Mqtt, port_of, unique, username_for

pytestmark = pytest.mark.e2e

ALL_TRANSPORTS = ("tcp", "tls", "ws", "iot", "wss")
MakeClient = Callable[..., Mqtt]


def connect(client: Mqtt, info: StackInfo, name: str, secret: str) -> bool:
    return client.connect(
        port_of(info, client.transport),
        username=username_for(info, name),
        password=secret,
        ca_cert=info.ca_cert_path,
    )


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("transport", ALL_TRANSPORTS)
def test_round_trip_on_every_listener_and_version(
    stack: StackInfo,
    add_device: Callable[..., str],
    clients: MakeClient,
    transport: str,
    version: int,
) -> None:
    name = unique("dev5")
    secret = add_device(name)
    client = clients(name, transport, version)
    assert connect(client, stack, name, secret)
    assert client.subscribe(f"{name}/#")
    mid = client.publish(f"{name}/hello", b"hi", qos=1)
    message = client.next_message()
    assert (message.topic, message.payload) == (f"{name}/hello", b"hi")
    ack = client.wait_ack(mid)
    assert ack is not None and not ack.is_failure


def test_messages_cross_versions(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    name = unique("shared")
    secret = add_device(name, publish=(f"{name}-room",), subscribe=(f"{name}-room",))
    other = unique("other")
    other_secret = add_device(other, publish=(f"{name}-room",), subscribe=(f"{name}-room",))
    v5 = clients(name, "tcp", 5)
    v3 = clients(other, "ws", 4)
    assert connect(v5, stack, name, secret)
    assert connect(v3, stack, other, other_secret)
    assert v5.subscribe(f"{name}-room") and v3.subscribe(f"{name}-room")
    v3.publish(f"{name}-room", b"from 3.1.1", qos=1)
    assert v5.next_message().payload == b"from 3.1.1"
    v5.publish(f"{name}-room", b"from 5", qos=1)
    assert [v3.next_message().payload for _ in range(2)] == [b"from 3.1.1", b"from 5"]


@pytest.mark.parametrize("transport", ["tcp", "wss"])
def test_mqtt5_refusals_carry_reason_codes(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    mallory, alice = unique("mallory5"), unique("alice5")
    secret = add_device(mallory)
    add_device(alice)
    client = clients(mallory, transport, 5)
    assert connect(client, stack, mallory, secret)
    assert not client.subscribe(f"{alice}/#")
    assert [code.value for code in client.last_suback] == [0x87]  # SUBACK: Not authorized
    assert client.subscribe(f"{mallory}/#")
    # A refused QoS 1 PUBLISH: PUBACK 0x87 Not authorized, the connection stays up.
    mid = client.publish(f"{alice}/inbox", b"forged", qos=1)
    ack = client.wait_ack(mid)
    assert ack is not None and ack.value == 0x87
    assert not client.disconnected.is_set()
    # A refused QoS 0 PUBLISH: DISCONNECT 0x87.
    client.publish(f"{alice}/inbox", b"forged", qos=0)
    assert client.disconnected.wait(5)
    assert client.disconnect_reason is not None and client.disconnect_reason.value == 0x87


def test_mqtt5_wrong_password_gets_connack_not_authorized(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    name = unique("dev5")
    add_device(name)
    client = clients(name, "iot", 5)
    assert not connect(client, stack, name, "iotsk_" + "A" * 43)
    assert client.connack is not None and client.connack.value == 0x87
