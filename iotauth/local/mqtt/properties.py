"""MQTT 5 properties (MQTT 5.0 §2.2.2.2): :class:`Properties` and their wire form.

Contract: :meth:`Properties.encode` writes the property length and each property in order;
:func:`read_properties` reads them back and raises :class:`MalformedPacket` for an unknown
property and :class:`ProtocolError` for one not allowed in its packet or repeated (only User
Property and Subscription Identifier may repeat [MQTT-2.2.2-1]); given a budget of User
Property bytes (:mod:`.budget`), it raises :class:`PacketTooLarge` at the first pair past it,
without reading the rest of the section.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from iotauth.local.mqtt.budget import UNLIMITED, DecodeBudget, user_property_wire_size
from iotauth.local.mqtt.primitives import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
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
    encode_binary,
    encode_string,
    encode_varint,
)

__all__ = ["NO_PROPERTIES", "PROPERTY_IDS", "WILL_PROPERTIES", "Properties", "read_properties"]

_BYTE, _U16, _U32, _VARINT, _TEXT, _BINARY, _PAIR = range(7)
WILL_PROPERTIES = 0x10000  # pseudo packet type: will properties inside CONNECT
_W = WILL_PROPERTIES  # short, for the table

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

    def user_properties_wire_size(self) -> int:
        """Bytes all User Properties take on the wire: content, identifiers, length prefixes
        (an empty pair is 5 bytes), the measure :mod:`.budget` and IoT's limit use."""
        return sum(user_property_wire_size(k, v) for k, v in self.all("user_property"))

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
                body += encode_string(value)
            elif kind == _BINARY:
                body += encode_binary(value)
            else:
                body += encode_string(value[0]) + encode_string(value[1])
        return encode_varint(len(body)) + bytes(body)


NO_PROPERTIES = Properties()  # the default of every packet's properties


def read_properties(
    cursor: Cursor, packet_type: int, budget: DecodeBudget = UNLIMITED
) -> Properties:
    """The property section at ``cursor``, within ``budget``: User Property wire bytes are
    checked after each pair, Subscription Identifiers counted as they come."""
    length = cursor.varint()
    if length > cursor.remaining():
        raise MalformedPacket("property length beyond the packet")
    inner = Cursor(cursor.data, cursor.pos, cursor.pos + length)
    cursor.pos += length
    items: list[tuple[int, Any]] = []
    seen: set[int] = set()
    spent = identifiers = 0
    user_bytes = budget.user_properties_bytes
    most_identifiers = budget.subscription_identifiers
    while inner.remaining():
        start = inner.pos
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
            identifiers += 1
            if most_identifiers is not None and identifiers > most_identifiers:
                raise ProtocolError("too many subscription identifiers")
            value = inner.varint()
            if value == 0:
                raise ProtocolError("subscription identifier 0")
        elif kind == _TEXT:
            value = inner.text()
        elif kind == _BINARY:
            value = inner.binary()
        else:
            value = (inner.text(), inner.text())
            spent += inner.pos - start
            if user_bytes is not None and spent > user_bytes:
                raise PacketTooLarge(f"user properties over {user_bytes} bytes")
        items.append((pid, value))
    return Properties(tuple(items))
