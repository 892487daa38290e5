"""The byte streams a session reads MQTT from: one interface for TCP/TLS and WebSocket.

A session needs only ``read`` (``b""``: closed), ``write``, ``drain`` and ``close``;
:class:`SocketStream` is a plain or TLS socket, :mod:`.websocket` frames the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from iotauth.local.gateway.config import READ_SIZE
from iotauth.local.mqtt.codec import encode_varint

__all__ = ["SocketStream", "Stream", "raw_packet"]


class Stream(Protocol):
    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...


class SocketStream:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes = b""
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._initial = initial

    async def read(self) -> bytes:
        if self._initial:
            data, self._initial = self._initial, b""
            return data
        return await self._reader.read(READ_SIZE)

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


def raw_packet(first: int, body: bytes) -> bytes:
    """A packet as it came (first byte and body), to forward without re-encoding it."""
    return bytes([first]) + encode_varint(len(body)) + body
