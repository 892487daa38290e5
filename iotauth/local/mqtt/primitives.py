"""MQTT's data representations (MQTT 5.0 §1.5), the packet types and the codec's three errors.

Contract: :func:`encode_varint` / :func:`decode_varint` (Variable Byte Integer, minimally
encoded, at most 4 bytes), :func:`encode_string` / :func:`encode_binary` (two-byte length
prefix) and :class:`Cursor`, which reads them from one packet body and raises
:class:`MalformedPacket` on every overrun or ill-formed string, so decoding never fails in
another way. Each read costs time in proportion to what it reads, never to the body's size.
The codec's errors: :class:`MalformedPacket`, :class:`ProtocolError`, and, for a well-formed
packet over the receiver's limits, :class:`PacketTooLarge` and :class:`QuotaExceeded`.
"""

from __future__ import annotations

import struct

__all__ = [
    "AUTH",
    "CONNACK",
    "CONNECT",
    "DISCONNECT",
    "MAX_VARINT",
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
    "Cursor",
    "MalformedPacket",
    "PacketTooLarge",
    "ProtocolError",
    "QuotaExceeded",
    "decode_varint",
    "encode_binary",
    "encode_string",
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
    """A packet's announced size exceeds the receiver's maximum (MQTT 5 reason 0x95); also a
    packet whose User Properties exceed the decoder's budget (see :mod:`.budget`)."""


class QuotaExceeded(ValueError):
    """A well-formed packet over a count the receiver allows, e.g. topic filters per
    SUBSCRIBE (MQTT 5 reason 0x97)."""


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


def decode_varint(
    data: bytes | bytearray | memoryview, offset: int = 0, end: int | None = None
) -> tuple[int, int]:
    """(value, offset after it); :class:`MalformedPacket` when truncated or over 4 bytes.

    ``end``: where the data ends for this read (default: its length), so that a reader
    bounded inside a larger buffer needs no copy of it.
    """
    limit = len(data) if end is None else min(end, len(data))
    value = shift = 0
    for index in range(4):
        if offset + index >= limit:
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


def encode_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("string longer than 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def encode_binary(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("binary data longer than 65,535 bytes")
    return struct.pack("!H", len(value)) + value


class Cursor:
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
        value, after = decode_varint(self.data, self.pos, self.end)  # no copy of the body
        self.pos = after
        return value

    def binary(self) -> bytes:
        # take(u16()) inlined: strings are most of what a hostile packet is made of.
        pos, data = self.pos, self.data
        start = pos + 2
        if start > self.end:
            raise MalformedPacket("packet shorter than its fields")
        stop = start + ((data[pos] << 8) | data[pos + 1])
        if stop > self.end:
            raise MalformedPacket("packet shorter than its fields")
        self.pos = stop
        return data[start:stop]

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")  # strict: surrogates and overlongs are refused
        except UnicodeDecodeError:
            raise MalformedPacket("string is not well-formed UTF-8") from None
        if "\x00" in value:
            raise MalformedPacket("string contains U+0000")
        return value
