"""One client connection's state, and the few things every part of it does: write, end.

A :class:`Connection` pairs the client's stream with its engine connection (opened only
once the CONNECT is authorized). :class:`~.session.Session` builds on it, with what the
client sends (:mod:`.client_packets`) and what the engine delivers (:mod:`.engine_packets`).
Ending is the one way out: MQTT 5 clients hear a DISCONNECT with the reason first.

What a client sends is decoded within IoT's limits (:func:`decode_from_client`), and a large
packet off the event loop, so one connection's decoding never holds up the others for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from iotauth.local.domain import DomainConfiguration
from iotauth.local.enforcement import Limits
from iotauth.local.gateway.grants import AllOf, ConnectionGrant
from iotauth.local.gateway.streams import Stream
from iotauth.local.iot_events import ConnectionInfo
from iotauth.local.mqtt.codec import (
    Disconnect,
    Packet,
    PacketReader,
    decode_packet,
    encode_packet,
)
from iotauth.local.mqtt.reasons import Reason

if TYPE_CHECKING:
    from iotauth.local.gateway.server import LocalGateway

__all__ = ["OFF_LOOP_BYTES", "Connection", "decode_from_client"]

log = logging.getLogger("iotauth.local.gateway")

# A body this large is decoded in a worker thread: a packet of many small items (filters,
# properties) costs up to ~0.3 us per byte in pure Python, and under the GIL the event loop
# gets the interpreter back within its switch interval (5 ms), not after the whole decode.
OFF_LOOP_BYTES = 16 * 1024


@functools.cache
def _decoder_pool() -> ThreadPoolExecutor:
    """Two threads of its own: never queued behind (or ahead of) the authorizer's calls."""
    return ThreadPoolExecutor(2, thread_name_prefix="iotauth-mqtt-decode")


async def decode_from_client(first: int, body: bytes, version: int, limits: Limits) -> Packet:
    """A client's packet, decoded within ``limits.decode_budget`` (raises as
    :func:`~iotauth.local.mqtt.codec.decode_packet` does); a body of
    :data:`OFF_LOOP_BYTES` or more is decoded off the event loop."""
    budget = limits.decode_budget
    if len(body) < OFF_LOOP_BYTES:
        return decode_packet(first, body, version, budget)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_decoder_pool(), decode_packet, first, body, version, budget)


class Connection:
    """One client connection and its engine connection: state, writing and ending."""

    def __init__(
        self,
        gateway: LocalGateway,
        stream: Stream,
        info: ConnectionInfo,
        presigned: AllOf | None,
        endpoint: DomainConfiguration,
    ) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.config = gateway.config
        self.limits = gateway.config.limits
        self.stream = stream
        self.info = info
        self._presigned = presigned  # this connection's verified URL, and only its
        self.version = 4
        self.client_id = ""
        self.grant: ConnectionGrant | None = None
        self._engine_writer: asyncio.StreamWriter | None = None
        self._engine_reader: asyncio.StreamReader | None = None
        self._aliases: dict[int, str] = {}
        self._pending_subacks: dict[int, tuple[int | None, ...]] = {}
        # Its wildcard-free filters: the only ones IoT sends retained messages on subscribe.
        self._exact_filters: set[str] = set()
        self._inflight: set[int] = set()  # the client's QoS 1 PUBLISHes awaiting the engine
        self._dropped_qos2: set[int] = set()
        self._keep_alive = 0.0
        self._closing = False
        self._done = asyncio.Event()
        # Packets that arrived with the CONNECT (before its CONNACK) or with the engine's
        # CONNACK: handled first once the connection is up.
        self._client_packets = PacketReader(self.limits.maximum_packet_size)
        self._early: list[tuple[int, bytes]] = []
        self._engine_packets = PacketReader()
        self._engine_backlog: list[tuple[int, bytes]] = []

    # -- writing --------------------------------------------------------------------------

    def send(self, packet: Packet) -> None:
        self.stream.write(encode_packet(packet, self.version))

    def to_engine(self, data: bytes) -> None:
        writer = self._engine_writer
        if writer is not None and not writer.is_closing():
            writer.write(data)

    # -- ending ---------------------------------------------------------------------------

    async def end(
        self, reason: Reason | None, why: str, *, engine_disconnect: bool = False
    ) -> None:
        """Close the client (MQTT 5: DISCONNECT ``reason`` first) and the engine side.

        ``engine_disconnect``: say DISCONNECT to the engine (a normal disconnect: no will);
        otherwise the engine connection just drops and the engine publishes any will.
        """
        if self._closing:
            return
        self._closing = True
        if self.grant is not None:
            log.info(
                "disconnecting client %r (connection %s): %s",
                self.client_id,
                self.grant.connection_id,
                why,
            )
        if reason is not None and self.version == 5:
            with contextlib.suppress(Exception):
                self.send(Disconnect(int(reason)))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.drain(), 1)
        self.stream.close()
        writer = self._engine_writer
        if writer is not None:
            if engine_disconnect:
                with contextlib.suppress(Exception):
                    writer.write(encode_packet(Disconnect(0), self.version))
                    await asyncio.wait_for(writer.drain(), 1)
            with contextlib.suppress(Exception):
                writer.close()
        self._done.set()

    def kick(self, reason: Reason, why: str, *, engine_disconnect: bool = False) -> None:
        self.gateway.spawn(self.end(reason, why, engine_disconnect=engine_disconnect))

    async def _current(self) -> ConnectionGrant | None:
        """The grant for the next action; ``None``: the connection is being ended."""
        expired = self.grant is not None and self.config.clock() >= self.grant.disconnect_at
        grant = await self.gateway.current(self)
        if grant is None and not self._closing:
            if expired:
                await self.end(Reason.MAXIMUM_CONNECT_TIME, "disconnectAfterInSeconds")
            else:
                await self.end(Reason.NOT_AUTHORIZED, "refresh refused")
        return grant
