"""Decoding within IoT's limits (issue 16): the decoder refuses a packet where it goes past
the receiver's budget and decodes nothing after that point, so a hostile packet costs what
the limit allows, not what its size allows."""

from __future__ import annotations

import asyncio
import concurrent.futures
import struct
import threading

import pytest

from iotauth.local import enforcement
from iotauth.local.enforcement import LIMITS
from iotauth.local.gateway import connection
from iotauth.local.mqtt.codec import (
    Connect,
    DecodeBudget,
    MalformedPacket,
    Packet,
    PacketTooLarge,
    Properties,
    ProtocolError,
    Publish,
    QuotaExceeded,
    Subscribe,
    decode_packet,
    encode_packet,
    encode_varint,
    split_packets,
)
from iotauth.local.mqtt.primitives import Cursor
from iotauth.local.mqtt.reasons import Reason

EMPTY_PAIR = (0x26, ("", ""))  # a User Property with empty name and value: 5 bytes


def _split(packet: bytes) -> tuple[int, bytes]:
    ((first, body),) = split_packets(packet)
    return first, body


def _hostile_connect(pairs: int) -> bytes:
    """The issue's CONNECT: nothing but empty User Properties, about 5 bytes each."""
    properties = Properties(tuple(EMPTY_PAIR for _ in range(pairs)))
    return encode_packet(Connect(client_id="c", version=5, properties=properties), 5)


def test_empty_user_properties_count_against_the_8kb() -> None:
    packet = _hostile_connect(29_800)
    assert len(packet) < LIMITS.maximum_packet_size  # under the packet limit: 149 KB
    first, body = _split(packet)
    with pytest.raises(PacketTooLarge):
        decode_packet(first, body, 5, LIMITS.decode_budget)
    decoded = decode_packet(first, body, 5)  # the engine's side: no budget
    assert isinstance(decoded, Connect)
    assert decoded.properties.user_properties_size() == 0  # no content at all…
    assert decoded.properties.user_properties_wire_size() == 5 * 29_800  # …149 KB on the wire
    assert enforcement.connect_problem(decoded) == Reason.PACKET_TOO_LARGE


def test_the_decoder_stops_at_the_budget() -> None:
    """Past the budget comes an unknown property: refused as too large, so never read."""
    section = b"\x26\x00\x00\x00\x00" * 2_000 + b"\x7f\x00"
    body = (
        struct.pack("!H", 4)
        + b"MQTT\x05\x02\x00\x3c"
        + encode_varint(len(section))
        + section
        + struct.pack("!H", 1)
        + b"c"
    )
    with pytest.raises(PacketTooLarge):
        decode_packet(0x10, body, 5, LIMITS.decode_budget)
    with pytest.raises(MalformedPacket):
        decode_packet(0x10, body, 5)  # read in full: the unknown property


@pytest.mark.parametrize(("wire", "allowed"), [(8_192, True), (8_193, False)])
def test_the_limit_is_8kb_on_the_wire(wire: int, allowed: bool) -> None:
    # One pair of 8,187 content bytes (+5 framing) is exactly 8 KB; one more byte is over.
    pairs = ((0x26, ("k", "v" * (wire - 5 - 1))),)
    properties = Properties(pairs)
    assert properties.user_properties_wire_size() == wire
    connect = Connect(client_id="c", version=5, properties=properties)
    first, body = _split(encode_packet(connect, 5))
    if allowed:
        assert decode_packet(first, body, 5, LIMITS.decode_budget) == connect
        assert enforcement.connect_problem(connect) is None
    else:
        with pytest.raises(PacketTooLarge):
            decode_packet(first, body, 5, LIMITS.decode_budget)
        assert enforcement.connect_problem(connect) == Reason.PACKET_TOO_LARGE


def test_will_properties_have_their_own_budget() -> None:
    will_props = Properties(tuple(EMPTY_PAIR for _ in range(1_700)))
    body = (
        struct.pack("!H", 4)
        + b"MQTT\x05\x06\x00\x3c"  # clean start, will
        + b"\x00"  # no CONNECT properties
        + struct.pack("!H", 1)
        + b"c"
        + will_props.encode()
        + struct.pack("!H", 1)
        + b"t"
        + struct.pack("!H", 0)
    )
    with pytest.raises(PacketTooLarge):
        decode_packet(0x10, body, 5, LIMITS.decode_budget)


def _subscribe_body(filters: list[bytes]) -> bytes:
    return struct.pack("!H", 1) + b"".join(struct.pack("!H", len(f)) + f + b"\x01" for f in filters)


def test_at_most_8_filters_per_subscribe() -> None:
    eight = [f"f/{i}".encode() for i in range(8)]
    packet = decode_packet(0x82, _subscribe_body(eight), 4, LIMITS.decode_budget)
    assert isinstance(packet, Subscribe) and len(packet.filters) == 8
    with pytest.raises(QuotaExceeded):
        decode_packet(0x82, _subscribe_body([*eight, b"f/8"]), 4, LIMITS.decode_budget)
    # 15,000 filters, the 9th not even UTF-8: refused at the 9th, before reading it.
    many = [*eight, b"\xff\xfe", *(b"x" for _ in range(15_000 - 9))]
    with pytest.raises(QuotaExceeded):
        decode_packet(0x82, _subscribe_body(many), 4, LIMITS.decode_budget)
    with pytest.raises(MalformedPacket):
        decode_packet(0x82, _subscribe_body(many), 4)


def test_one_subscription_identifier_per_section() -> None:
    ids = Properties(((0x0B, 1), (0x0B, 2)))
    packet = encode_packet(Subscribe(1, (("a", 1),), ids), 5)
    first, body = _split(packet)
    with pytest.raises(ProtocolError):
        decode_packet(first, body, 5, LIMITS.decode_budget)
    assert decode_packet(first, body, 5) == Subscribe(1, (("a", 1),), ids)  # the engine may
    one = encode_packet(Subscribe(1, (("a", 1),), Properties(((0x0B, 7),))), 5)
    assert isinstance(decode_packet(*_split(one), 5, LIMITS.decode_budget), Subscribe)


def test_cursor_reads_stop_at_its_end() -> None:
    """A bounded cursor never reads past ``end``, without copying the buffer to bound it."""
    with pytest.raises(MalformedPacket):
        Cursor(b"\x80\x01", 0, 1).varint()
    assert Cursor(b"\x80\x01", 0, 2).varint() == 128
    with pytest.raises(MalformedPacket):
        Cursor(b"\x00\x05hello", 0, 6).text()
    assert Cursor(b"\x00\x05hello", 0, 7).text() == "hello"


def test_budget_defaults_are_unlimited() -> None:
    assert DecodeBudget() == DecodeBudget(None, None, None)
    assert LIMITS.decode_budget == DecodeBudget(8 * 1024, 8, 1)


def test_large_packets_are_decoded_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    real = decode_packet  # what the gateway's connection module calls

    def recording(first: int, body: bytes, version: int, budget: DecodeBudget) -> Packet:
        threads.append(threading.current_thread().name)
        return real(first, body, version, budget)

    monkeypatch.setattr(connection, "decode_packet", recording)
    small = Publish("t", b"x" * 10)
    large = Publish("t", b"x" * connection.OFF_LOOP_BYTES)

    loop_thread: list[str] = []

    async def both() -> list[Packet]:
        loop_thread.append(threading.current_thread().name)
        return [
            await connection.decode_from_client(*_split(encode_packet(p, 5)), 5, LIMITS)
            for p in (small, large)
        ]

    # In a thread of its own: another test's library (Playwright's sync API) may have left an
    # event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, both()).result(30) == [small, large]
    assert threads[0] == loop_thread[0]
    assert threads[1].startswith("iotauth-mqtt-decode")
