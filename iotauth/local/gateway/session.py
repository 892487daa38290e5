"""One client connection's life: CONNECT, authorize, open the engine side, serve, end.

The engine connection (same protocol version and client id) is opened only after the
CONNECT was authorized; refusals answer CONNACK with a reason code. One client id, one
connection: the new one wins and the old one hears DISCONNECT 0x8E Session taken over.
While served, each direction runs in its own task, and ``disconnectAfterInSeconds`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from iotauth.local import enforcement
from iotauth.local.engine import open_engine
from iotauth.local.gateway import connect_packets
from iotauth.local.gateway.client_packets import ClientPackets
from iotauth.local.gateway.config import READ_SIZE
from iotauth.local.gateway.engine_packets import EnginePackets
from iotauth.local.mqtt.codec import (
    Connack,
    Connect,
    MalformedPacket,
    PacketReader,
    ProtocolError,
    decode_packet,
    encode_packet,
)
from iotauth.local.mqtt.reasons import Reason

__all__ = ["Session"]

log = logging.getLogger("iotauth.local.gateway")


class Session(ClientPackets, EnginePackets):
    """One client connection and its engine connection, from CONNECT to the end."""

    async def run(self) -> None:
        try:
            connect = await self._read_connect()
            if connect is None:
                return
            if not await self._connect(connect):
                return
            await self._serve()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not self._closing:
                await self.end(None, "connection closed")
            self.gateway.forget(self)

    async def _read_connect(self) -> Connect | None:
        first = await connect_packets.read_connect(
            self.stream, self.limits, self.config.connect_timeout, self.info.transport
        )
        if first is None:
            return None
        self._early = first.early  # sent before the CONNACK: handled after it
        self._client_packets = first.reader
        return first.connect

    def _refuse(self, reason: Reason, why: str, client: str) -> None:
        log.info("CONNECT refused: %s, %s", why, client)
        self.send(connect_packets.refusal(reason, self.version))

    async def _connect(self, connect: Connect) -> bool:
        self.version = connect.version if connect.version in (4, 5) else 4
        problem = enforcement.connect_problem(connect, self.limits)
        what = f"client {connect.client_id[:128]!r} via {self.info.transport}"
        if problem is not None:
            self._refuse(problem, problem.name.lower().replace("_", " "), what)
            await self.end(None, "refused")
            return False
        grant = await self.gateway.authorize(connect, self.info, self._presigned, self.endpoint)
        self._presigned = None  # used once
        if grant is None:
            self._refuse(Reason.NOT_AUTHORIZED, "not authorized", what)
            await self.end(None, "refused")
            return False
        self.grant = grant
        self.client_id = connect.client_id
        # One client id, one connection: the previous one ends before the engine sees this
        # one (so it is told "Session taken over", not that the engine went away).
        await self.gateway.register(self)
        self._keep_alive = float(enforcement.effective_keep_alive(connect.keep_alive, self.limits))
        try:
            connack = await self._open_engine(connect)
        except (OSError, ConnectionError, TimeoutError, MalformedPacket, ProtocolError) as exc:
            log.warning("engine connection failed (%s) for %s", type(exc).__name__, what)
            self._refuse(Reason.SERVER_UNAVAILABLE, "engine unavailable", what)
            await self.end(None, "engine unavailable")
            return False
        if connack.reason_code != 0:
            log.warning("engine refused %s with 0x%02x", what, connack.reason_code)
            self._refuse(Reason.SERVER_UNAVAILABLE, "engine refused", what)
            await self.end(None, "engine refused")
            return False
        self.send(
            connect_packets.client_connack(
                connect, connack, self.version, self._keep_alive, self.limits
            )
        )
        log.info("CONNECT accepted (%s): %s (connection %s)", grant.kind, what, grant.connection_id)
        return True

    async def _open_engine(self, connect: Connect) -> Connack:
        # A few engine handshakes at once, each retried when reset: mosquitto resets Unix
        # socket connections past its accept backlog (probe: 58 of 300 reset with 32 at a
        # time, none with 8), which a fleet reconnecting at once would hit.
        for attempt in range(4):
            async with self.gateway.engine_handshakes:
                try:
                    return await self._engine_handshake(connect)
                except (ConnectionResetError, ConnectionRefusedError, BlockingIOError):
                    if attempt == 3:
                        raise
                    if self._engine_writer is not None:
                        self._engine_writer.close()
                        self._engine_writer = self._engine_reader = None
                    self._engine_packets = PacketReader()
            await asyncio.sleep(0.02 * (attempt + 1))
        raise ConnectionError("engine handshake failed")

    async def _engine_handshake(self, connect: Connect) -> Connack:
        reader, writer = await asyncio.wait_for(open_engine(self.gateway.engine_socket), 5)
        self._engine_reader, self._engine_writer = reader, writer
        upstream = connect_packets.upstream_connect(connect, self.version, self.limits)
        writer.write(encode_packet(upstream, self.version))
        await writer.drain()
        engine_reader = self._engine_packets
        while True:
            data = await asyncio.wait_for(reader.read(READ_SIZE), 5)
            if not data:
                raise ConnectionError("engine closed")
            engine_reader.feed(data)
            for first, body in engine_reader.packets():
                packet = decode_packet(first, body, self.version)
                if not isinstance(packet, Connack):
                    raise ProtocolError("engine did not answer with CONNACK")
                self._engine_backlog = list(engine_reader.packets())
                return packet

    async def _serve(self) -> None:
        grant = self.grant
        assert grant is not None
        loop = asyncio.get_running_loop()
        delay = max(0.0, grant.disconnect_at - self.config.clock())
        timer = loop.call_later(
            delay, self.kick, Reason.MAXIMUM_CONNECT_TIME, "disconnectAfterInSeconds"
        )
        tasks = [
            asyncio.ensure_future(self._client_loop()),
            asyncio.ensure_future(self._engine_loop()),
            asyncio.ensure_future(self._done.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
