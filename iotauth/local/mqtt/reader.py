"""Framing: :class:`PacketReader` splits a byte stream into whole MQTT packets.

Contract: complete packets come out as ``(first byte, body)`` in order, partial ones stay
buffered, and a packet announcing more than ``max_size`` raises :class:`PacketTooLarge`
before its body is buffered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from iotauth.local.mqtt.primitives import MAX_VARINT, MalformedPacket, PacketTooLarge, decode_varint

__all__ = ["PacketReader", "split_packets"]


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
