"""IoT Core's broker behaviour at the protocol level, with raw packets through the stack.

What a client library would hide: the exact CONNACK, PUBACK, SUBACK and DISCONNECT the
gateway sends (MQTT 3.1.1 and 5), that a refused PUBLISH is never acknowledged as
accepted at any QoS, IoT's quotas, topic aliases, and one connection per client id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator

import pytest

from iotauth.local.enforcement import LIMITS
from iotauth.local.mqtt.codec import (
    PUBACK,
    Ack,
    Connack,
    Connect,
    Disconnect,
    PacketReader,
    Properties,
    Publish,
    Suback,
    Subscribe,
    decode_packet,
    encode_packet,
)
from iotauth.local.stack import StackInfo
from tests.e2e.conftest import unique, username_for
from tests.e2e.mqtt_raw import RawClient

pytestmark = pytest.mark.e2e

Opened = Callable[..., RawClient]


@pytest.fixture
def raw(stack: StackInfo) -> Iterator[Opened]:
    made: list[RawClient] = []

    def open_(version: int = 5, port: int | None = None) -> RawClient:
        client = RawClient(port or stack.mqtt_port, version=version)
        made.append(client)
        return client

    yield open_
    for client in made:
        client.close()


def device_connect(
    info: StackInfo, name: str, secret: str, version: int = 5, **fields: object
) -> Connect:
    values: dict[str, object] = {
        "client_id": name,
        "version": version,
        "username": username_for(info, name),
        "password": secret.encode(),
        "keep_alive": 60,
    }
    values.update(fields)
    return Connect(**values)  # type: ignore[arg-type]


def test_raw_mqtt5_connect_gets_connack_with_iot_limits(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    name = unique("raw5")
    secret = add_device(name)
    connack = raw().connect(device_connect(stack, name, secret, keep_alive=5))
    assert connack.reason_code == 0
    p = connack.properties
    assert p.get("topic_alias_maximum") == 8
    assert p.get("receive_maximum") == 100
    assert p.get("maximum_qos") == 1
    assert p.get("retain_available") == 1
    assert p.get("maximum_packet_size") == LIMITS.maximum_packet_size
    assert p.get("server_keep_alive") == 30  # IoT's minimum keep-alive
    connack = raw().connect(device_connect(stack, name, secret, keep_alive=0))
    assert connack.properties.get("server_keep_alive") == 1200  # 0 is not "forever" on IoT
    week = Properties.of(session_expiry_interval=7 * 86400)
    connack = raw().connect(device_connect(stack, name, secret, properties=week))
    assert connack.properties.get("session_expiry_interval") == 3600  # the account's hour


@pytest.mark.parametrize("version", [4, 5])
def test_connect_refusals_have_reason_codes(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened, version: int
) -> None:
    name = unique("raw")
    secret = add_device(name)
    wrong = device_connect(stack, name, secret[:-2] + "xx", version)
    client = raw(version)
    assert client.connect(wrong).reason_code == (0x87 if version == 5 else 5)
    assert client.until_closed() == []
    too_long = device_connect(stack, "c" * 129, secret, version)
    assert raw(version).connect(too_long).reason_code == (0x85 if version == 5 else 2)


@pytest.mark.parametrize("level", [3, 6])
def test_unsupported_protocol_levels(stack: StackInfo, raw: Opened, level: int) -> None:
    name = b"MQIsdp" if level == 3 else b"MQTT"
    body = len(name).to_bytes(2, "big") + name + bytes([level, 0x02, 0, 60, 0, 1]) + b"c"
    client = raw(4)
    client.send_raw(bytes([0x10, len(body)]) + body)
    answer = client.receive()
    assert isinstance(answer, Connack) and answer.reason_code == 1
    assert client.until_closed() == []


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [1, 2])
def test_a_denied_publish_is_never_acknowledged(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened, version: int, qos: int
) -> None:
    victim, mallory = unique("victim"), unique("mallory")
    victim_secret, mallory_secret = add_device(victim), add_device(mallory)
    listener = raw(5)
    assert listener.connect(device_connect(stack, victim, victim_secret)).reason_code == 0
    listener.send(Subscribe(1, ((f"{victim}/#", 1),)))
    assert isinstance(listener.receive(), Suback)

    attacker = raw(version)
    assert (
        attacker.connect(device_connect(stack, mallory, mallory_secret, version)).reason_code == 0
    )
    attacker.send(Publish(f"{victim}/inbox", b"forged", qos=qos, packet_id=7))
    if version == 5 and qos == 1:
        answer = attacker.receive()
        assert answer == Ack(PUBACK, 7, 0x87)  # Not authorized, nothing forwarded
        attacker.send(Publish(f"{victim}/inbox", b"forged", qos=0))
        seen = attacker.until_closed()
        assert seen == [Disconnect(0x87)]
    else:
        seen = attacker.until_closed()
        # MQTT 3.1.1 cannot refuse a PUBLISH: the connection ends, with no PUBACK/PUBREC.
        # MQTT 5 QoS 2: the CONNACK said Maximum QoS 1, so 0x9B QoS not supported.
        assert seen == ([Disconnect(0x9B)] if version == 5 else [])
    # Nothing reached the victim.
    assert listener.receive(timeout=0.5) is None and not listener.closed


def test_qos2_subscribe_gets_no_suback_in_mqtt311(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    """IoT: "When QoS level 2 is requested, the AWS IoT message broker does not send a
    PUBACK or SUBACK" (MQTT 3.1.1). MQTT 5 is granted QoS 1."""
    name = unique("q2")
    secret = add_device(name)
    v3 = raw(4)
    assert v3.connect(device_connect(stack, name, secret, 4)).reason_code == 0
    v3.send(Subscribe(3, ((f"{name}/#", 2),)))
    assert v3.receive(timeout=1) is None and not v3.closed
    v5 = raw(5)
    assert v5.connect(device_connect(stack, name + "x", secret, 5)).reason_code == 0x87
    other = unique("q2b")
    v5 = raw(5)
    assert v5.connect(device_connect(stack, other, add_device(other))).reason_code == 0
    v5.send(Subscribe(4, ((f"{other}/#", 2),)))
    assert v5.receive() == Suback(4, (1,))


def test_suback_per_filter(stack: StackInfo, add_device: Callable[..., str], raw: Opened) -> None:
    name, other = unique("subs"), unique("other")
    secret = add_device(name)
    add_device(other)
    client = raw(5)
    assert client.connect(device_connect(stack, name, secret)).reason_code == 0
    filters = ((f"{name}/a", 1), (f"{other}/#", 1), (f"{name}/+/b", 0), ("bad/#/x", 1))
    client.send(Subscribe(9, filters))
    assert client.receive() == Suback(9, (1, 0x87, 0, 0x8F))
    nine = tuple((f"{name}/{i}", 1) for i in range(9))  # IoT: 8 filters per SUBSCRIBE
    client.send(Subscribe(10, nine))
    assert client.until_closed() == [Disconnect(0x97)]  # IoT ends the connection: no SUBACK


def test_payload_limit(stack: StackInfo, add_device: Callable[..., str], raw: Opened) -> None:
    name = unique("big")
    secret = add_device(name)
    client = raw(5)
    assert client.connect(device_connect(stack, name, secret)).reason_code == 0
    client.send(Subscribe(1, ((f"{name}/#", 1),)))
    assert isinstance(client.receive(), Suback)
    limit = LIMITS.payload_bytes  # 128 KB
    client.send(Publish(f"{name}/ok", b"x" * limit, qos=1, packet_id=2))
    delivered = [client.receive(), client.receive()]
    assert Ack(PUBACK, 2) in delivered
    assert any(isinstance(p, Publish) and len(p.payload) == limit for p in delivered)
    client.send(Publish(f"{name}/big", b"x" * (limit + 1), qos=1, packet_id=3))
    assert client.until_closed() == [Disconnect(0x95)]  # Packet too large
    v3 = raw(4)
    assert v3.connect(device_connect(stack, name, secret, 4)).reason_code == 0
    v3.send(Publish(f"{name}/big", b"x" * (limit + 1), qos=0))
    assert v3.until_closed() == []


def test_duplicate_client_id_new_connection_wins(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    name = unique("dup")
    secret = add_device(name)
    first = raw(5)
    assert first.connect(device_connect(stack, name, secret)).reason_code == 0
    second = raw(4)
    assert second.connect(device_connect(stack, name, secret, 4)).reason_code == 0
    assert first.until_closed() == [Disconnect(0x8E)]  # Session taken over
    second.send(Subscribe(1, ((f"{name}/#", 1),)))
    assert second.receive() == Suback(1, (1,))


def test_topic_aliases_cannot_escape_the_policy(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    name, victim = unique("alias"), unique("target")
    secret = add_device(name)
    victim_secret = add_device(victim)
    watcher = raw(5)
    watch = device_connect(
        stack, victim, victim_secret, properties=Properties.of(topic_alias_maximum=10)
    )
    assert watcher.connect(watch).reason_code == 0
    watcher.send(Subscribe(1, ((f"{victim}/#", 1),)))
    assert isinstance(watcher.receive(), Suback)

    client = raw(5)
    assert client.connect(device_connect(stack, name, secret)).reason_code == 0
    alias = Properties.of(topic_alias=1)
    client.send(Publish(f"{name}/own", b"1", qos=1, packet_id=1, properties=alias))
    accepted = client.receive()
    # Success, or mosquitto's 0x10 No matching subscribers: both below 0x80.
    assert isinstance(accepted, Ack) and accepted.packet_id == 1 and accepted.reason_code < 0x80
    # Re-pointing alias 1 at a foreign topic is refused, and so is using it afterwards.
    client.send(Publish(f"{victim}/inbox", b"2", qos=1, packet_id=2, properties=alias))
    assert client.receive() == Ack(PUBACK, 2, 0x87)
    client.send(Publish("", b"3", qos=1, packet_id=3, properties=alias))
    assert client.receive() == Ack(PUBACK, 3, 0x87)
    client.send(Publish("", b"4", qos=1, packet_id=4, properties=Properties.of(topic_alias=9)))
    assert client.until_closed() == [Disconnect(0x94)]  # over Topic Alias Maximum 8
    assert watcher.receive(timeout=0.5) is None

    # The watcher's deliveries carry full topics, never an alias (it offered 10).
    sender = raw(5)
    assert sender.connect(device_connect(stack, victim + "-s", victim_secret)).reason_code == 0x87
    watcher.send(Publish(f"{victim}/self", b"5", qos=1, packet_id=5, properties=alias))
    got = [watcher.receive(), watcher.receive()]
    delivered = next(p for p in got if isinstance(p, Publish))
    assert delivered.topic == f"{victim}/self" and "topic_alias" not in delivered.properties


def test_unknown_alias_is_a_protocol_error(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    name = unique("alias")
    client = raw(5)
    assert client.connect(device_connect(stack, name, add_device(name))).reason_code == 0
    client.send(Publish("", b"x", qos=0, properties=Properties.of(topic_alias=2)))
    assert client.until_closed() == [Disconnect(0x82)]


def test_malformed_packets_close_cleanly_and_the_gateway_keeps_serving(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    name = unique("junk")
    secret = add_device(name)
    junks = (
        b"\x10\xff\xff\xff\xff\x7f",  # a Remaining Length over 4 bytes
        b"\x00\x00",  # reserved packet type
        b"\x30\x03\x00\x01a",  # a PUBLISH before any CONNECT
        b"\x10\x04\x00\x02MQ",  # a CONNECT whose fields overrun it
        b"GET / HTTP/1.1\r\n\r\n",
    )
    for junk in junks:
        client = raw(5)
        client.send_raw(junk)
        assert client.until_closed() == []
        assert client.closed, junk  # closed by the gateway, not a timeout
    client = raw(5)
    assert client.connect(device_connect(stack, name, secret)).reason_code == 0
    client.send_raw(b"\x82\x05\x00\x01\x00\x00\x01")  # SUBSCRIBE: empty filter list + junk
    assert client.until_closed() in ([Disconnect(0x81)], [Disconnect(0x82)])


def test_200_devices_connect_concurrently(stack: StackInfo, add_device: Callable[..., str]) -> None:
    """200 devices connect at once through the real authorizer: every one gets CONNACK 0,
    i.e. no authorizer call missed IoT's 5 s budget (the gateway refuses those)."""
    devices = {unique("fleet"): "" for _ in range(200)}
    for name in devices:
        devices[name] = add_device(name)

    async def one(name: str, secret: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.mqtt_port)
        try:
            writer.write(encode_packet(device_connect(stack, name, secret), 5))
            await writer.drain()
            packets = PacketReader()
            while True:
                data = await reader.read(4096)
                if not data:
                    return -1
                packets.feed(data)
                for first, body in packets.packets():
                    answer = decode_packet(first, body, 5)
                    assert isinstance(answer, Connack)
                    return answer.reason_code
        finally:
            writer.close()

    async def all_of_them() -> list[int]:
        tasks = [one(n, s) for n, s in devices.items()]
        return await asyncio.wait_for(asyncio.gather(*tasks), 30)

    # In a thread of its own: another test's library (Playwright's sync API) may have left an
    # event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        codes = pool.submit(asyncio.run, all_of_them()).result(60)
    assert codes == [0] * 200


def test_persistent_session_keeps_subscriptions_and_queued_messages(
    stack: StackInfo, add_device: Callable[..., str], raw: Opened
) -> None:
    name, sender = unique("persist"), unique("sender")
    secret = add_device(name)
    sender_secret = add_device(sender, publish=(f"{name}/inbox",))
    keep = Properties.of(session_expiry_interval=300)
    first = raw(5)
    connect = device_connect(stack, name, secret, clean_start=False, properties=keep)
    assert first.connect(connect).reason_code == 0
    first.send(Subscribe(1, ((f"{name}/inbox", 1),)))
    assert first.receive() == Suback(1, (1,))
    first.send(Disconnect())
    assert first.until_closed() == []

    other = raw(5)
    assert other.connect(device_connect(stack, sender, sender_secret)).reason_code == 0
    other.send(Publish(f"{name}/inbox", b"while away", qos=1, packet_id=1))
    assert isinstance(other.receive(), Ack)

    again = raw(5)
    connack = again.connect(connect)
    assert connack.reason_code == 0 and connack.session_present
    delivered = again.receive()
    assert isinstance(delivered, Publish) and delivered.payload == b"while away"
