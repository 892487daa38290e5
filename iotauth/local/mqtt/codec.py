"""Encode and decode MQTT 3.1.1 (protocol level 4) and MQTT 5.0 (level 5) control packets.

Contract: :func:`decode_packet` turns one complete packet (as framed by
:class:`PacketReader`) into a typed packet or raises :class:`MalformedPacket` /
:class:`ProtocolError`, or, within a :class:`~.budget.DecodeBudget`, :class:`PacketTooLarge`
/ :class:`QuotaExceeded` as soon as the packet goes past it (the rest is never decoded); it
never raises anything else on any input. :func:`encode_packet`
is its inverse: ``encode_packet(decode_packet(x)) == x`` for every packet this module
accepts, so the gateway can check a packet and forward it unchanged. Strings must be
well-formed UTF-8 without U+0000 [MQTT-1.5.4-1, -2]; MQTT 5 properties must be allowed in
their packet and, except User Property and Subscription Identifier, appear at most once
[MQTT-2.2.2-1]. Protocol level 3 (MQTT 3.1) is recognised only so that the gateway can
refuse it with the right return code.

The parts: packet values in :mod:`.packets`, properties in :mod:`.properties`, integers and
strings in :mod:`.primitives`, framing in :mod:`.reader`, decoding limits in :mod:`.budget`;
every name is importable from here.
"""

from __future__ import annotations

import struct

from iotauth.local.mqtt.budget import UNLIMITED, DecodeBudget
from iotauth.local.mqtt.packets import (
    Ack,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Ping,
    Publish,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
)
from iotauth.local.mqtt.primitives import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    MAX_VARINT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Cursor,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    QuotaExceeded,
    decode_varint,
    encode_binary,
    encode_string,
    encode_varint,
)
from iotauth.local.mqtt.properties import (
    PROPERTY_IDS,
    WILL_PROPERTIES,
    Properties,
    read_properties,
)
from iotauth.local.mqtt.reader import PacketReader, split_packets

__all__ = [
    "AUTH",
    "CONNACK",
    "CONNECT",
    "DISCONNECT",
    "MAX_VARINT",
    "PINGREQ",
    "PINGRESP",
    "PROPERTY_IDS",
    "PUBACK",
    "PUBCOMP",
    "PUBLISH",
    "PUBREC",
    "PUBREL",
    "SUBACK",
    "SUBSCRIBE",
    "UNLIMITED",
    "UNSUBACK",
    "UNSUBSCRIBE",
    "Ack",
    "Auth",
    "Connack",
    "Connect",
    "DecodeBudget",
    "Disconnect",
    "MalformedPacket",
    "Packet",
    "PacketReader",
    "PacketTooLarge",
    "Ping",
    "Properties",
    "ProtocolError",
    "Publish",
    "QuotaExceeded",
    "Suback",
    "Subscribe",
    "Unsuback",
    "Unsubscribe",
    "Will",
    "decode_packet",
    "decode_varint",
    "encode_packet",
    "encode_varint",
    "split_packets",
]

# Fixed-header flags each packet type must carry (PUBLISH's are its own) [MQTT-2.1.3-1].
_FLAGS = {
    CONNECT: 0,
    CONNACK: 0,
    PUBACK: 0,
    PUBREC: 0,
    PUBREL: 2,
    PUBCOMP: 0,
    SUBSCRIBE: 2,
    SUBACK: 0,
    UNSUBSCRIBE: 2,
    UNSUBACK: 0,
    PINGREQ: 0,
    PINGRESP: 0,
    DISCONNECT: 0,
    AUTH: 0,
}


def _decode_connect(c: Cursor, budget: DecodeBudget) -> Connect:
    name = c.text()
    version = c.byte()
    if name == "MQIsdp" and version == 3:
        return Connect(client_id="", version=3, protocol_name=name)  # MQTT 3.1: refused later
    if name != "MQTT" or version not in (4, 5):
        # [MQTT-3.1.2-2]: unsupported level → CONNACK 0x84 / return code 1, then close.
        if name == "MQTT":
            return Connect(client_id="", version=version, protocol_name=name)
        raise MalformedPacket("not an MQTT CONNECT")
    flags = c.byte()
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")  # [MQTT-3.1.2-3]
    keep_alive = c.u16()
    properties = read_properties(c, CONNECT, budget) if version == 5 else Properties()
    client_id = c.text()
    will = None
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if flags & 0x04:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")
        will_properties = (
            read_properties(c, WILL_PROPERTIES, budget) if version == 5 else Properties()
        )
        will = Will(c.text(), c.binary(), will_qos, will_retain, will_properties)
    elif will_qos or will_retain:
        raise MalformedPacket("will QoS or retain without a will")  # [MQTT-3.1.2-11..13]
    username = c.text() if flags & 0x80 else None
    if flags & 0x40:
        if version == 4 and username is None:
            raise MalformedPacket("password without user name")  # [MQTT-3.1.2-22]
        password: bytes | None = c.binary()
    else:
        password = None
    if c.remaining():
        raise MalformedPacket("bytes after the CONNECT payload")
    return Connect(
        client_id=client_id,
        version=version,
        clean_start=bool(flags & 0x02),
        keep_alive=keep_alive,
        username=username,
        password=password,
        will=will,
        properties=properties,
        protocol_name=name,
    )


def _encode_connect(p: Connect) -> bytes:
    if p.version not in (4, 5):
        raise ValueError("only MQTT 3.1.1 and 5 CONNECT packets are encoded")
    flags = 0x02 if p.clean_start else 0
    if p.will is not None:
        flags |= 0x04 | (p.will.qos << 3) | (0x20 if p.will.retain else 0)
    if p.username is not None:
        flags |= 0x80
    if p.password is not None:
        flags |= 0x40
    body = bytearray(encode_string(p.protocol_name) + bytes([p.version, flags]))
    body += struct.pack("!H", p.keep_alive)
    if p.version == 5:
        body += p.properties.encode()
    body += encode_string(p.client_id)
    if p.will is not None:
        if p.version == 5:
            body += p.will.properties.encode()
        body += encode_string(p.will.topic) + encode_binary(p.will.payload)
    if p.username is not None:
        body += encode_string(p.username)
    if p.password is not None:
        body += encode_binary(p.password)
    return bytes(body)


def _decode_publish(flags: int, c: Cursor, version: int, budget: DecodeBudget) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH QoS 3")  # [MQTT-3.3.1-4]
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise MalformedPacket("DUP set on a QoS 0 PUBLISH")  # [MQTT-3.3.1-2]
    topic = c.text()
    packet_id = None
    if qos:
        packet_id = c.u16()
        if packet_id == 0:
            raise MalformedPacket("packet identifier 0")
    properties = read_properties(c, PUBLISH, budget) if version == 5 else Properties()
    payload = c.take(c.remaining())
    return Publish(topic, payload, qos, bool(flags & 0x01), dup, packet_id, properties)


def _decode_ack(kind: int, c: Cursor, version: int, budget: DecodeBudget) -> Ack:
    packet_id = c.u16()
    reason, properties = 0, Properties()
    if version == 5 and c.remaining():
        reason = c.byte()
        if c.remaining():
            properties = read_properties(c, kind, budget)
    if c.remaining():
        raise MalformedPacket("bytes after the acknowledgement")
    return Ack(kind, packet_id, reason, properties)


def _encode_ack(p: Ack, version: int) -> bytes:
    body = struct.pack("!H", p.packet_id)
    if version == 5 and (p.reason_code or p.properties.items):
        body += bytes([p.reason_code])
        if p.properties.items:
            body += p.properties.encode()
    return body


def _decode_subscribe(c: Cursor, version: int, budget: DecodeBudget) -> Subscribe:
    packet_id = c.u16()
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    properties = read_properties(c, SUBSCRIBE, budget) if version == 5 else Properties()
    filters: list[tuple[str, int]] = []
    most = budget.filters_per_subscribe
    while c.remaining():
        if most is not None and len(filters) >= most:
            raise QuotaExceeded(f"more than {most} topic filters in one SUBSCRIBE")
        topic_filter = c.text()
        options = c.byte()
        if options & (0xC0 if version == 5 else 0xFC) or options & 0x03 == 3:
            raise MalformedPacket("invalid subscription options")  # [MQTT-3.8.3-5]
        if version == 5 and (options >> 4) & 0x03 == 3:
            raise ProtocolError("retain handling 3")
        filters.append((topic_filter, options))
    if not filters:
        raise ProtocolError("SUBSCRIBE without a topic filter")  # [MQTT-3.8.3-3]
    return Subscribe(packet_id, tuple(filters), properties)


def _decode_unsubscribe(c: Cursor, version: int, budget: DecodeBudget) -> Unsubscribe:
    packet_id = c.u16()
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    properties = read_properties(c, UNSUBSCRIBE, budget) if version == 5 else Properties()
    filters = []
    while c.remaining():
        filters.append(c.text())
    if not filters:
        raise ProtocolError("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id, tuple(filters), properties)


def decode_packet(
    first_byte: int, body: bytes, version: int, budget: DecodeBudget = UNLIMITED
) -> Packet:
    """One packet from its fixed header's first byte and its body (after Remaining Length).

    ``version`` is the connection's protocol level (4 or 5); a CONNECT carries its own.
    ``budget``: the receiver's limits, applied while decoding (default: none).
    """
    try:
        return _decode(first_byte, body, version, budget)
    except (MalformedPacket, ProtocolError, PacketTooLarge, QuotaExceeded):
        raise
    except Exception as exc:  # defensive: any surprise in decoding is a malformed packet
        raise MalformedPacket(f"undecodable packet ({type(exc).__name__})") from None


def _decode(first_byte: int, body: bytes, version: int, budget: DecodeBudget) -> Packet:
    kind, flags = first_byte >> 4, first_byte & 0x0F
    if kind == 0:
        raise MalformedPacket("reserved packet type 0")
    if kind != PUBLISH and flags != _FLAGS[kind]:
        raise MalformedPacket("invalid fixed header flags")
    if kind == AUTH and version != 5:
        raise MalformedPacket("AUTH is MQTT 5 only")
    c = Cursor(body)
    if kind == CONNECT:
        return _decode_connect(c, budget)
    if kind == PUBLISH:
        return _decode_publish(flags, c, version, budget)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        return _decode_ack(kind, c, version, budget)
    if kind == SUBSCRIBE:
        return _decode_subscribe(c, version, budget)
    if kind == UNSUBSCRIBE:
        return _decode_unsubscribe(c, version, budget)
    if kind in (PINGREQ, PINGRESP):
        if body:
            raise MalformedPacket("PING with a body")
        return Ping(kind)
    if kind == CONNACK:
        session_present = c.byte()
        if session_present & 0xFE:
            raise MalformedPacket("CONNACK reserved flags")
        reason = c.byte()
        properties = read_properties(c, CONNACK, budget) if version == 5 else Properties()
        if c.remaining():
            raise MalformedPacket("bytes after CONNACK")
        return Connack(reason, bool(session_present), properties)
    if kind == SUBACK:
        packet_id = c.u16()
        properties = read_properties(c, SUBACK, budget) if version == 5 else Properties()
        codes = tuple(c.take(c.remaining()))
        return Suback(packet_id, codes, properties)
    if kind == UNSUBACK:
        packet_id = c.u16()
        if version != 5:
            if c.remaining():
                raise MalformedPacket("bytes after UNSUBACK")
            return Unsuback(packet_id)
        properties = read_properties(c, UNSUBACK, budget)
        return Unsuback(packet_id, tuple(c.take(c.remaining())), properties)
    # DISCONNECT and AUTH: reason code and properties may be omitted (MQTT 5.0 §3.14.2.1).
    reason, properties = 0, Properties()
    if version == 5 and c.remaining():
        reason = c.byte()
        if c.remaining():
            properties = read_properties(c, kind, budget)
    if c.remaining():
        raise MalformedPacket("bytes after DISCONNECT")
    return Disconnect(reason, properties) if kind == DISCONNECT else Auth(reason, properties)


def _body(packet: Packet, version: int) -> tuple[int, bytes]:
    """(first byte of the fixed header, body)."""
    if isinstance(packet, Publish):
        flags = (0x08 if packet.dup else 0) | (packet.qos << 1) | (0x01 if packet.retain else 0)
        body = encode_string(packet.topic)
        if packet.qos:
            if not packet.packet_id:
                raise ValueError("a QoS 1/2 PUBLISH needs a packet identifier")
            body += struct.pack("!H", packet.packet_id)
        if version == 5:
            body += packet.properties.encode()
        return (PUBLISH << 4) | flags, body + packet.payload
    if isinstance(packet, Ack):
        return (packet.kind << 4) | _FLAGS[packet.kind], _encode_ack(packet, version)
    if isinstance(packet, Connect):
        return CONNECT << 4, _encode_connect(packet)
    if isinstance(packet, Connack):
        body = bytes([1 if packet.session_present else 0, packet.reason_code])
        if version == 5:
            body += packet.properties.encode()
        return CONNACK << 4, body
    if isinstance(packet, Subscribe):
        body = struct.pack("!H", packet.packet_id)
        if version == 5:
            body += packet.properties.encode()
        for topic_filter, options in packet.filters:
            body += encode_string(topic_filter) + bytes([options])
        return (SUBSCRIBE << 4) | 2, body
    if isinstance(packet, Suback):
        body = struct.pack("!H", packet.packet_id)
        if version == 5:
            body += packet.properties.encode()
        return SUBACK << 4, body + bytes(packet.reason_codes)
    if isinstance(packet, Unsubscribe):
        body = struct.pack("!H", packet.packet_id)
        if version == 5:
            body += packet.properties.encode()
        for topic_filter in packet.filters:
            body += encode_string(topic_filter)
        return (UNSUBSCRIBE << 4) | 2, body
    if isinstance(packet, Unsuback):
        body = struct.pack("!H", packet.packet_id)
        if version == 5:
            body += packet.properties.encode() + bytes(packet.reason_codes)
        return UNSUBACK << 4, body
    if isinstance(packet, Ping):
        return packet.kind << 4, b""
    kind = DISCONNECT if isinstance(packet, Disconnect) else AUTH
    body = b""
    if version == 5 and (packet.reason_code or packet.properties.items):
        body = bytes([packet.reason_code])
        if packet.properties.items:
            body += packet.properties.encode()
    return kind << 4, body


def encode_packet(packet: Packet, version: int) -> bytes:
    """The packet's bytes for a connection at protocol level ``version`` (4 or 5)."""
    first, body = _body(packet, version)
    return bytes([first]) + encode_varint(len(body)) + body
