"""Encode and decode MQTT 3.1.1 (protocol level 4) and MQTT 5.0 (level 5) control packets.

Contract: :func:`decode_packet` turns one complete packet (as framed by
:class:`PacketReader`) into a typed packet or raises :class:`MalformedPacket` /
:class:`ProtocolError`; it never raises anything else on any input. :func:`encode_packet`
is its inverse: ``encode_packet(decode_packet(x)) == x`` for every packet this module
accepts, so the gateway can check a packet and forward it unchanged. Strings must be
well-formed UTF-8 without U+0000 [MQTT-1.5.4-1, -2]; MQTT 5 properties must be allowed in
their packet and, except User Property and Subscription Identifier, appear at most once
[MQTT-2.2.2-1]. Protocol level 3 (MQTT 3.1) is recognised only so that the gateway can
refuse it with the right return code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUTH",
    "CONNACK",
    "CONNECT",
    "DISCONNECT",
    "PINGREQ",
    "PINGRESP",
    "PUBACK",
    "PUBCOMP",
    "PUBLISH",
    "PUBREC",
    "PUBREL",
    "SUBACK",
    "SUBSCRIBE",
    "UNSUBACK",
    "UNSUBSCRIBE",
    "Ack",
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "MalformedPacket",
    "Packet",
    "PacketReader",
    "PacketTooLarge",
    "Ping",
    "Properties",
    "ProtocolError",
    "Publish",
    "Suback",
    "Subscribe",
    "Unsuback",
    "Unsubscribe",
    "Will",
    "decode_packet",
    "decode_varint",
    "encode_packet",
    "encode_varint",
]

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

MAX_VARINT = 268_435_455  # four bytes of variable byte integer (MQTT 5.0 §1.5.5)


class MalformedPacket(ValueError):
    """The bytes are not a valid packet (MQTT 5 reason 0x81)."""


class ProtocolError(ValueError):
    """A valid encoding that breaks a protocol rule (MQTT 5 reason 0x82)."""


class PacketTooLarge(ValueError):
    """A packet's announced size exceeds the receiver's maximum (MQTT 5 reason 0x95)."""


# --- primitives ------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Variable Byte Integer (MQTT 5.0 §1.5.5): 7 bits per byte, high bit = more follows."""
    if not 0 <= value <= MAX_VARINT:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """(value, offset after it); :class:`MalformedPacket` when truncated or over 4 bytes."""
    value = shift = 0
    for index in range(4):
        if offset + index >= len(data):
            raise MalformedPacket("truncated variable byte integer")
        byte = data[offset + index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if index and byte == 0:
                # [MQTT-1.5.5-1]: the minimum number of bytes must be used.
                raise MalformedPacket("variable byte integer not minimally encoded")
            return value, offset + index + 1
        shift += 7
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def _utf8(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("string longer than 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _binary(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("binary data longer than 65,535 bytes")
    return struct.pack("!H", len(value)) + value


class _Cursor:
    """Reads primitives from one packet body; every overrun is a MalformedPacket."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise MalformedPacket("packet shorter than its fields")
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack("!I", self.take(4))[0]
        return value

    def varint(self) -> int:
        value, after = decode_varint(self.data[: self.end], self.pos)
        self.pos = after
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")  # strict: surrogates and overlongs are refused
        except UnicodeDecodeError:
            raise MalformedPacket("string is not well-formed UTF-8") from None
        if "\x00" in value:
            raise MalformedPacket("string contains U+0000")
        return value


# --- properties (MQTT 5.0 §2.2.2.2) ------------------------------------------------------

_BYTE, _U16, _U32, _VARINT, _TEXT, _BINARY, _PAIR = range(7)
_W = 0x10000  # pseudo packet type: will properties inside CONNECT

# identifier → (name, type, packet types it may appear in)
_PROPERTIES: dict[int, tuple[str, int, frozenset[int]]] = {
    0x01: ("payload_format_indicator", _BYTE, frozenset({PUBLISH, _W})),
    0x02: ("message_expiry_interval", _U32, frozenset({PUBLISH, _W})),
    0x03: ("content_type", _TEXT, frozenset({PUBLISH, _W})),
    0x08: ("response_topic", _TEXT, frozenset({PUBLISH, _W})),
    0x09: ("correlation_data", _BINARY, frozenset({PUBLISH, _W})),
    0x0B: ("subscription_identifier", _VARINT, frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("session_expiry_interval", _U32, frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("assigned_client_identifier", _TEXT, frozenset({CONNACK})),
    0x13: ("server_keep_alive", _U16, frozenset({CONNACK})),
    0x15: ("authentication_method", _TEXT, frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("authentication_data", _BINARY, frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("request_problem_information", _BYTE, frozenset({CONNECT})),
    0x18: ("will_delay_interval", _U32, frozenset({_W})),
    0x19: ("request_response_information", _BYTE, frozenset({CONNECT})),
    0x1A: ("response_information", _TEXT, frozenset({CONNACK})),
    0x1C: ("server_reference", _TEXT, frozenset({CONNACK, DISCONNECT})),
    0x1F: (
        "reason_string",
        _TEXT,
        frozenset({CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH}),
    ),
    0x21: ("receive_maximum", _U16, frozenset({CONNECT, CONNACK})),
    0x22: ("topic_alias_maximum", _U16, frozenset({CONNECT, CONNACK})),
    0x23: ("topic_alias", _U16, frozenset({PUBLISH})),
    0x24: ("maximum_qos", _BYTE, frozenset({CONNACK})),
    0x25: ("retain_available", _BYTE, frozenset({CONNACK})),
    0x26: (
        "user_property",
        _PAIR,
        frozenset(
            {CONNECT, CONNACK, PUBLISH, _W, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK}
            | {UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH}
        ),
    ),
    0x27: ("maximum_packet_size", _U32, frozenset({CONNECT, CONNACK})),
    0x28: ("wildcard_subscription_available", _BYTE, frozenset({CONNACK})),
    0x29: ("subscription_identifier_available", _BYTE, frozenset({CONNACK})),
    0x2A: ("shared_subscription_available", _BYTE, frozenset({CONNACK})),
}
_REPEATABLE = frozenset({0x26, 0x0B})
PROPERTY_IDS = {name: pid for pid, (name, _, _) in _PROPERTIES.items()}


@dataclass(frozen=True, slots=True)
class Properties:
    """MQTT 5 properties in wire order: ``(identifier, value)`` pairs.

    Values: int for byte/two/four-byte/varint properties, str for strings, bytes for binary
    data, ``(str, str)`` for a User Property.
    """

    items: tuple[tuple[int, Any], ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        pid = PROPERTY_IDS[name]
        for key, value in self.items:
            if key == pid:
                return value
        return default

    def all(self, name: str) -> list[Any]:
        pid = PROPERTY_IDS[name]
        return [value for key, value in self.items if key == pid]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k == PROPERTY_IDS[name] for k, _ in self.items)

    def without(self, *names: str) -> Properties:
        drop = {PROPERTY_IDS[n] for n in names}
        return Properties(tuple((k, v) for k, v in self.items if k not in drop))

    def with_(self, name: str, value: Any) -> Properties:
        """A copy with ``name`` set to ``value`` (replacing it; appended when absent)."""
        pid = PROPERTY_IDS[name]
        rest = tuple((k, v) for k, v in self.items if k != pid)
        return Properties((*rest, (pid, value)))

    @classmethod
    def of(cls, **values: Any) -> Properties:
        return cls(tuple((PROPERTY_IDS[name], value) for name, value in values.items()))

    def user_properties_size(self) -> int:
        """Bytes of all User Properties' names and values (UTF-8)."""
        return sum(len(k.encode()) + len(v.encode()) for k, v in self.all("user_property"))

    def encode(self) -> bytes:
        body = bytearray()
        for pid, value in self.items:
            kind = _PROPERTIES[pid][1]
            body += encode_varint(pid)
            if kind == _BYTE:
                body.append(value)
            elif kind == _U16:
                body += struct.pack("!H", value)
            elif kind == _U32:
                body += struct.pack("!I", value)
            elif kind == _VARINT:
                body += encode_varint(value)
            elif kind == _TEXT:
                body += _utf8(value)
            elif kind == _BINARY:
                body += _binary(value)
            else:
                body += _utf8(value[0]) + _utf8(value[1])
        return encode_varint(len(body)) + bytes(body)


def _read_properties(cursor: _Cursor, packet_type: int) -> Properties:
    length = cursor.varint()
    if length > cursor.remaining():
        raise MalformedPacket("property length beyond the packet")
    inner = _Cursor(cursor.data, cursor.pos, cursor.pos + length)
    cursor.pos += length
    items: list[tuple[int, Any]] = []
    seen: set[int] = set()
    while inner.remaining():
        pid = inner.varint()
        spec = _PROPERTIES.get(pid)
        if spec is None:
            raise MalformedPacket(f"unknown property 0x{pid:02x}")
        name, kind, allowed = spec
        if packet_type not in allowed:
            raise ProtocolError(f"property {name} not allowed in this packet")
        if pid in seen and pid not in _REPEATABLE:
            raise ProtocolError(f"property {name} appears twice")
        seen.add(pid)
        value: Any
        if kind == _BYTE:
            value = inner.byte()
        elif kind == _U16:
            value = inner.u16()
        elif kind == _U32:
            value = inner.u32()
        elif kind == _VARINT:
            value = inner.varint()
            if value == 0:
                raise ProtocolError("subscription identifier 0")
        elif kind == _TEXT:
            value = inner.text()
        elif kind == _BINARY:
            value = inner.binary()
        else:
            value = (inner.text(), inner.text())
        items.append((pid, value))
    return Properties(tuple(items))


# --- packets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes = field(repr=False)
    qos: int = 0
    retain: bool = False
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    version: int = 4  # protocol level: 4 = MQTT 3.1.1, 5 = MQTT 5.0 (3 = MQTT 3.1)
    clean_start: bool = True
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = field(default=None, repr=False)
    will: Will | None = None
    properties: Properties = Properties()
    protocol_name: str = "MQTT"


@dataclass(frozen=True, slots=True)
class Connack:
    reason_code: int = 0  # MQTT 3.1.1: the return code
    session_present: bool = False
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes = field(default=b"", repr=False)
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""

    kind: int
    packet_id: int
    reason_code: int = 0
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    filters: tuple[tuple[str, int], ...]  # (topic filter, options byte; 3.1.1: the QoS)
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Suback:
    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Unsuback:
    packet_id: int
    reason_codes: tuple[int, ...] = ()  # MQTT 5 only
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Ping:
    kind: int  # PINGREQ or PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason_code: int = 0
    properties: Properties = Properties()


@dataclass(frozen=True, slots=True)
class Auth:
    reason_code: int = 0
    properties: Properties = Properties()


Packet = (
    Connect
    | Connack
    | Publish
    | Ack
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Ping
    | Disconnect
    | Auth
)

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


def _decode_connect(c: _Cursor) -> Connect:
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
    properties = _read_properties(c, CONNECT) if version == 5 else Properties()
    client_id = c.text()
    will = None
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if flags & 0x04:
        if will_qos == 3:
            raise MalformedPacket("will QoS 3")
        will_properties = _read_properties(c, _W) if version == 5 else Properties()
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
    body = bytearray(_utf8(p.protocol_name) + bytes([p.version, flags]))
    body += struct.pack("!H", p.keep_alive)
    if p.version == 5:
        body += p.properties.encode()
    body += _utf8(p.client_id)
    if p.will is not None:
        if p.version == 5:
            body += p.will.properties.encode()
        body += _utf8(p.will.topic) + _binary(p.will.payload)
    if p.username is not None:
        body += _utf8(p.username)
    if p.password is not None:
        body += _binary(p.password)
    return bytes(body)


def _decode_publish(flags: int, c: _Cursor, version: int) -> Publish:
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
    properties = _read_properties(c, PUBLISH) if version == 5 else Properties()
    payload = c.take(c.remaining())
    return Publish(topic, payload, qos, bool(flags & 0x01), dup, packet_id, properties)


def _decode_ack(kind: int, c: _Cursor, version: int) -> Ack:
    packet_id = c.u16()
    reason, properties = 0, Properties()
    if version == 5 and c.remaining():
        reason = c.byte()
        if c.remaining():
            properties = _read_properties(c, kind)
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


def _decode_subscribe(c: _Cursor, version: int) -> Subscribe:
    packet_id = c.u16()
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    properties = _read_properties(c, SUBSCRIBE) if version == 5 else Properties()
    filters = []
    while c.remaining():
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


def _decode_unsubscribe(c: _Cursor, version: int) -> Unsubscribe:
    packet_id = c.u16()
    if packet_id == 0:
        raise MalformedPacket("packet identifier 0")
    properties = _read_properties(c, UNSUBSCRIBE) if version == 5 else Properties()
    filters = []
    while c.remaining():
        filters.append(c.text())
    if not filters:
        raise ProtocolError("UNSUBSCRIBE without a topic filter")  # [MQTT-3.10.3-2]
    return Unsubscribe(packet_id, tuple(filters), properties)


def decode_packet(first_byte: int, body: bytes, version: int) -> Packet:
    """One packet from its fixed header's first byte and its body (after Remaining Length).

    ``version`` is the connection's protocol level (4 or 5); a CONNECT carries its own.
    """
    try:
        return _decode(first_byte, body, version)
    except (MalformedPacket, ProtocolError):
        raise
    except Exception as exc:  # defensive: any surprise in decoding is a malformed packet
        raise MalformedPacket(f"undecodable packet ({type(exc).__name__})") from None


def _decode(first_byte: int, body: bytes, version: int) -> Packet:
    kind, flags = first_byte >> 4, first_byte & 0x0F
    if kind == 0:
        raise MalformedPacket("reserved packet type 0")
    if kind != PUBLISH and flags != _FLAGS[kind]:
        raise MalformedPacket("invalid fixed header flags")
    if kind == AUTH and version != 5:
        raise MalformedPacket("AUTH is MQTT 5 only")
    c = _Cursor(body)
    if kind == CONNECT:
        return _decode_connect(c)
    if kind == PUBLISH:
        return _decode_publish(flags, c, version)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        return _decode_ack(kind, c, version)
    if kind == SUBSCRIBE:
        return _decode_subscribe(c, version)
    if kind == UNSUBSCRIBE:
        return _decode_unsubscribe(c, version)
    if kind in (PINGREQ, PINGRESP):
        if body:
            raise MalformedPacket("PING with a body")
        return Ping(kind)
    if kind == CONNACK:
        session_present = c.byte()
        if session_present & 0xFE:
            raise MalformedPacket("CONNACK reserved flags")
        reason = c.byte()
        properties = _read_properties(c, CONNACK) if version == 5 else Properties()
        if c.remaining():
            raise MalformedPacket("bytes after CONNACK")
        return Connack(reason, bool(session_present), properties)
    if kind == SUBACK:
        packet_id = c.u16()
        properties = _read_properties(c, SUBACK) if version == 5 else Properties()
        codes = tuple(c.take(c.remaining()))
        return Suback(packet_id, codes, properties)
    if kind == UNSUBACK:
        packet_id = c.u16()
        if version != 5:
            if c.remaining():
                raise MalformedPacket("bytes after UNSUBACK")
            return Unsuback(packet_id)
        properties = _read_properties(c, UNSUBACK)
        return Unsuback(packet_id, tuple(c.take(c.remaining())), properties)
    # DISCONNECT and AUTH: reason code and properties may be omitted (MQTT 5.0 §3.14.2.1).
    reason, properties = 0, Properties()
    if version == 5 and c.remaining():
        reason = c.byte()
        if c.remaining():
            properties = _read_properties(c, kind)
    if c.remaining():
        raise MalformedPacket("bytes after DISCONNECT")
    return Disconnect(reason, properties) if kind == DISCONNECT else Auth(reason, properties)


def _body(packet: Packet, version: int) -> tuple[int, bytes]:
    """(first byte of the fixed header, body)."""
    if isinstance(packet, Publish):
        flags = (0x08 if packet.dup else 0) | (packet.qos << 1) | (0x01 if packet.retain else 0)
        body = _utf8(packet.topic)
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
            body += _utf8(topic_filter) + bytes([options])
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
            body += _utf8(topic_filter)
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


# --- framing -----------------------------------------------------------------------------


class PacketReader:
    """Splits a byte stream into packets: ``feed(data)``, then iterate over ``packets()``.

    ``max_size`` bounds a whole packet (fixed header included, as MQTT 5's Maximum Packet
    Size does): a larger announced size raises :class:`PacketTooLarge` before its body is
    buffered, so a client cannot make the gateway hold more than that.
    """

    def __init__(self, max_size: int = MAX_VARINT + 5) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def buffered(self) -> int:
        return len(self._buffer)

    def packets(self) -> Iterator[tuple[int, bytes]]:
        """Complete packets as (first byte, body), in order; partial ones stay buffered."""
        while True:
            packet = self._next()
            if packet is None:
                return
            yield packet

    def _next(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        try:
            length, start = decode_varint(buffer, 1)
        except MalformedPacket:
            if len(buffer) < 5 and buffer[-1] & 0x80:
                return None  # the length is still arriving
            raise
        if start + length > self.max_size:
            raise PacketTooLarge(f"packet of {start + length} bytes")
        if len(buffer) < start + length:
            return None
        first = buffer[0]
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return first, body


def split_packets(data: bytes, max_size: int = MAX_VARINT + 5) -> Iterable[tuple[int, bytes]]:
    """Every complete packet in ``data`` (for tests and tools)."""
    reader = PacketReader(max_size)
    reader.feed(data)
    return list(reader.packets())
