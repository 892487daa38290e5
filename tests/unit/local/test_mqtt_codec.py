"""The gateway's MQTT codec (iotauth.local.mqtt): byte-exact against the examples of the
MQTT 5.0 specification, round trips for generated packets, and malformed input always
raising MalformedPacket/ProtocolError (never another exception), for 3.1.1 and 5."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotauth.local.mqtt.codec import (
    PUBACK,
    PUBREC,
    Ack,
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    PacketReader,
    PacketTooLarge,
    Ping,
    Properties,
    ProtocolError,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
    decode_packet,
    decode_varint,
    encode_packet,
    encode_varint,
    split_packets,
)

# MQTT 5.0 §1.5.5, Table 1-1: Size of Variable Byte Integer (the boundaries).
VARINT_EXAMPLES = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16_383, b"\xff\x7f"),
    (16_384, b"\x80\x80\x01"),
    (2_097_151, b"\xff\xff\x7f"),
    (2_097_152, b"\x80\x80\x80\x01"),
    (268_435_455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "encoded"), VARINT_EXAMPLES)
def test_variable_byte_integer_table(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


def test_variable_byte_integer_limits() -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_varint(268_435_456)
    for bad in (b"\xff\xff\xff\xff\x01", b"\x80", b"\x80\x00"):  # too long, cut, not minimal
        with pytest.raises(MalformedPacket):
            decode_varint(bad)


def _decode(data: bytes, version: int) -> object:
    ((first, body),) = split_packets(data)
    return decode_packet(first, body, version)


def test_utf8_string_example() -> None:
    # MQTT 5.0 §1.5.4, Figure 1-1: "A𪛔" is 00 05 41 F0 AA 9B 94.
    packet = Publish("A\U0002a6d4", b"", qos=0)
    encoded = encode_packet(packet, 4)
    assert encoded[2:9] == bytes.fromhex("0005 41 F0AA9B94".replace(" ", ""))
    assert _decode(encoded, 4) == packet


def test_connect_variable_header_example() -> None:
    """MQTT 5.0 §3.1.2.12, Figure 3-7: protocol name, version 5, connect flags 0xCE (user
    name, password, will QoS 1, will, clean start), keep alive 10, properties of length 5:
    Session Expiry Interval (0x11) = 10."""
    variable_header = bytes.fromhex("00044d51545405ce000a05110000000a")
    packet = Connect(
        client_id="c1",
        version=5,
        clean_start=True,
        keep_alive=10,
        username="u",
        password=b"p",
        will=Will("w/t", b"bye", qos=1),
        properties=Properties.of(session_expiry_interval=10),
    )
    encoded = encode_packet(packet, 5)
    payload = b"\x00\x02c1" + b"\x00" + b"\x00\x03w/t" + b"\x00\x03bye" + b"\x00\x01u\x00\x01p"
    body = variable_header + payload
    assert encoded == bytes([0x10, len(body)]) + body
    assert _decode(encoded, 5) == packet


def test_mqtt311_connect_and_connack_bytes() -> None:
    packet = Connect(client_id="dev", version=4, keep_alive=30, username="u", password=b"\xff")
    assert encode_packet(packet, 4) == (
        b"\x10\x15\x00\x04MQTT\x04\xc2\x00\x1e\x00\x03dev\x00\x01u\x00\x01\xff"
    )
    assert encode_packet(Connack(5), 4) == b"\x20\x02\x00\x05"  # not authorized
    assert encode_packet(Connack(0x87), 5) == b"\x20\x03\x00\x87\x00"


def test_mqtt5_acks_and_disconnect_short_forms() -> None:
    # §3.4.2.1: reason 0x00 and no properties may be omitted; a receiver accepts both forms.
    assert encode_packet(Ack(PUBACK, 7), 5) == b"\x40\x02\x00\x07"
    assert encode_packet(Ack(PUBACK, 7, 0x87), 5) == b"\x40\x03\x00\x07\x87"
    assert _decode(b"\x40\x04\x00\x07\x87\x00", 5) == Ack(PUBACK, 7, 0x87)
    assert encode_packet(Disconnect(), 5) == b"\xe0\x00"
    assert encode_packet(Disconnect(0x8E), 5) == b"\xe0\x01\x8e"
    assert _decode(b"\xe0\x02\x8e\x00", 5) == Disconnect(0x8E)
    assert encode_packet(Ping(12), 4) == b"\xc0\x00"


def test_properties_of_every_type_round_trip() -> None:
    properties = Properties.of(
        payload_format_indicator=1,
        message_expiry_interval=3600,
        content_type="application/json",
        response_topic="r/t",
        correlation_data=b"\x00\x01",
        topic_alias=3,
        subscription_identifier=268_435_455,
    )
    properties = Properties((*properties.items, (0x26, ("k", "v")), (0x26, ("k", "w"))))
    packet = Publish("t/1", b"payload", qos=1, packet_id=9, properties=properties)
    assert _decode(encode_packet(packet, 5), 5) == packet
    assert properties.all("user_property") == [("k", "v"), ("k", "w")]
    assert properties.user_properties_size() == 4


def test_property_rules() -> None:
    # Topic Alias twice [MQTT-2.2.2-...]: a protocol error. Session expiry in a PUBLISH: too.
    twice = b"\x06\x23\x00\x01\x23\x00\x02"
    with pytest.raises(ProtocolError):
        _decode(b"\x30" + bytes([3 + len(twice)]) + b"\x00\x01t" + twice, 5)
    misplaced = b"\x05\x11\x00\x00\x00\x01"
    with pytest.raises(ProtocolError):
        _decode(b"\x30" + bytes([3 + len(misplaced)]) + b"\x00\x01t" + misplaced, 5)
    unknown = b"\x02\x7f\x00"
    with pytest.raises(MalformedPacket):
        _decode(b"\x30" + bytes([3 + len(unknown)]) + b"\x00\x01t" + unknown, 5)


@pytest.mark.parametrize(
    "data",
    [
        b"\x32\x04\x00\x01t\x00",  # QoS 1 with a cut packet identifier
        b"\x36\x05\x00\x01t\x00\x01",  # QoS 3
        b"\x38\x03\x00\x01t",  # DUP on QoS 0
        b"\x32\x05\x00\x01t\x00\x00",  # packet id 0
        b"\x80\x06\x00\x01\x00\x01t\x01",  # SUBSCRIBE with flags 0 (must be 2)
        b"\x82\x06\x00\x01\x00\x01t\x03",  # SUBSCRIBE QoS 3
        b"\x30\x03\x00\x01\xff",  # topic not UTF-8
        b"\x30\x05\x00\x03a\x00b",  # topic with U+0000
        b"\x30\x06\x00\x04\xed\xa0\x80a",  # a UTF-16 surrogate
        b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x00\x00\x00",  # CONNECT reserved flag
        b"\x10\x0c\x00\x04MQTT\x04\x10\x00\x00\x00\x00",  # will QoS without a will
        b"\x10\x0a\x00\x04XQTT\x04\x02\x00\x00",  # not MQTT
        b"\xd1\x00",  # PINGRESP with flags
        b"\xc0\x01\x00",  # PINGREQ with a body
    ],
)
def test_malformed_packets(data: bytes) -> None:
    with pytest.raises((MalformedPacket, ProtocolError)):
        reader = PacketReader()
        reader.feed(data)
        for first, body in reader.packets():
            decode_packet(first, body, 5)
            decode_packet(first, body, 4)
        raise MalformedPacket("incomplete")


def test_reader_frames_and_bounds() -> None:
    stream = encode_packet(Ping(12), 4) + encode_packet(Publish("a", b"x" * 300), 4)
    reader = PacketReader()
    for index in range(len(stream)):  # one byte at a time
        reader.feed(stream[index : index + 1])
    assert [first for first, _ in reader.packets()] == [0xC0, 0x30]
    small = PacketReader(max_size=100)
    small.feed(b"\x30\xc8\x01")  # announces 200 bytes: refused before they arrive
    with pytest.raises(PacketTooLarge):
        list(small.packets())


def test_protocol_level_3_and_unknown_levels_are_recognised_not_decoded() -> None:
    v31 = b"\x10\x0c\x00\x06MQIsdp\x03\x02\x00\x3c"
    assert _decode(v31, 5) == Connect(client_id="", version=3, protocol_name="MQIsdp")
    v6 = b"\x10\x0a\x00\x04MQTT\x06\x02\x00\x3c"
    assert _decode(v6, 5) == Connect(client_id="", version=6)


# --- generated packets -------------------------------------------------------------------

text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)
packet_ids = st.integers(1, 0xFFFF)


@st.composite
def properties(draw: st.DrawFn, allowed: tuple[str, ...]) -> Properties:
    values = {
        "payload_format_indicator": st.integers(0, 1),
        "message_expiry_interval": st.integers(0, 2**32 - 1),
        "content_type": text,
        "correlation_data": st.binary(max_size=20),
        "topic_alias": st.integers(1, 0xFFFF),
        "session_expiry_interval": st.integers(0, 2**32 - 1),
        "receive_maximum": st.integers(1, 0xFFFF),
        "maximum_packet_size": st.integers(1, 2**32 - 1),
        "reason_string": text,
        "server_keep_alive": st.integers(0, 0xFFFF),
    }
    chosen = draw(st.lists(st.sampled_from(allowed), unique=True)) if allowed else []
    items = Properties.of(**{name: draw(values[name]) for name in chosen}).items
    users = draw(st.lists(st.tuples(text, text), max_size=3))
    return Properties((*items, *((0x26, pair) for pair in users)))


@st.composite
def packets(draw: st.DrawFn, version: int) -> object:
    v5 = version == 5

    def props(*names: str) -> Properties:
        return draw(properties(names)) if v5 else Properties()

    kind = draw(
        st.sampled_from(
            [
                "connect",
                "connack",
                "publish",
                "ack",
                "sub",
                "suback",
                "unsub",
                "unsuback",
                "disconnect",
            ]
        )
    )
    if kind == "connect":
        will = None
        if draw(st.booleans()):
            will = Will(
                draw(text),
                draw(st.binary(max_size=20)),
                draw(st.integers(0, 2)),
                draw(st.booleans()),
                props("content_type", "message_expiry_interval"),
            )
        username = draw(st.none() | text)
        password = (
            draw(st.none() | st.binary(max_size=20)) if (username is not None or v5) else None
        )
        return Connect(
            draw(text),
            version,
            draw(st.booleans()),
            draw(st.integers(0, 0xFFFF)),
            username,
            password,
            will,
            props("session_expiry_interval", "receive_maximum", "maximum_packet_size"),
        )
    if kind == "connack":
        return Connack(
            draw(st.integers(0, 255)),
            draw(st.booleans()),
            props("server_keep_alive", "receive_maximum", "reason_string"),
        )
    if kind == "publish":
        qos = draw(st.integers(0, 2))
        return Publish(
            draw(text),
            draw(st.binary(max_size=50)),
            qos,
            draw(st.booleans()),
            draw(st.booleans()) if qos else False,
            draw(packet_ids) if qos else None,
            props("topic_alias", "content_type", "correlation_data", "payload_format_indicator"),
        )
    if kind == "ack":
        reason = draw(st.integers(1, 255)) if v5 else 0
        return Ack(
            draw(st.sampled_from([PUBACK, PUBREC, 6, 7])),
            draw(packet_ids),
            reason,
            props("reason_string") if reason else Properties(),
        )
    if kind == "sub":
        options = st.integers(0, 0x2E if v5 else 2).filter(
            lambda o: o & 3 != 3 and (o >> 4) & 3 != 3
        )
        return Subscribe(
            draw(packet_ids),
            tuple(draw(st.lists(st.tuples(text, options), min_size=1, max_size=4))),
            props(),
        )
    if kind == "suback":
        return Suback(
            draw(packet_ids),
            tuple(draw(st.lists(st.integers(0, 255), max_size=4))),
            props("reason_string"),
        )
    if kind == "unsub":
        return Unsubscribe(
            draw(packet_ids), tuple(draw(st.lists(text, min_size=1, max_size=4))), props()
        )
    if kind == "unsuback":
        codes = tuple(draw(st.lists(st.integers(0, 255), max_size=4))) if v5 else ()
        return Unsuback(draw(packet_ids), codes, props("reason_string"))
    reason = draw(st.integers(1, 255)) if v5 else 0
    return Disconnect(
        reason, props("reason_string", "session_expiry_interval") if reason else Properties()
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([4, 5]).flatmap(lambda v: st.tuples(st.just(v), packets(v))))
def test_round_trip(case: tuple[int, object]) -> None:
    version, packet = case
    encoded = encode_packet(packet, version)  # type: ignore[arg-type]
    decoded = _decode(encoded, version)
    assert decoded == packet
    assert encode_packet(decoded, version) == encoded  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=80), st.sampled_from([4, 5]))
def test_arbitrary_bytes_never_crash_the_decoder(first: int, body: bytes, version: int) -> None:
    try:
        packet = decode_packet(first, body, version)
    except (MalformedPacket, ProtocolError):
        return
    # Whatever decodes re-encodes to the same bytes (so it can be forwarded unchanged),
    # except a CONNECT of an unsupported level, which is only recognised.
    if not (isinstance(packet, Connect) and packet.version not in (4, 5)):
        connect_version = packet.version if isinstance(packet, Connect) else version
        assert (
            encode_packet(packet, connect_version)
            == bytes([first]) + encode_varint(len(body)) + body
        )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_streams_never_crash_the_reader(data: bytes) -> None:
    reader = PacketReader(max_size=1000)
    reader.feed(data)
    with contextlib.suppress(MalformedPacket, PacketTooLarge):
        for first, body in reader.packets():
            with contextlib.suppress(MalformedPacket, ProtocolError):
                decode_packet(first, body, 5)
