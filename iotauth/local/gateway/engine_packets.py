"""What the engine sends a connection, checked before the client sees it.

Every delivery is checked for ``iot:Receive``; a refused one is acknowledged to the engine
by the gateway (QoS 1: PUBACK; QoS 2: PUBREC, then PUBCOMP) and never reaches the client.
So is a retained message sent on subscribe to a filter that is not exactly its topic, which
IoT Core never delivers (:func:`~iotauth.local.enforcement.retained_delivery_allowed`).
SUBACKs merge the engine's codes with the filters the gateway refused itself.
"""

from __future__ import annotations

import contextlib
import logging

from iotauth.local import enforcement
from iotauth.local.gateway.config import READ_SIZE
from iotauth.local.gateway.connection import Connection
from iotauth.local.gateway.streams import raw_packet
from iotauth.local.mqtt.codec import (
    CONNACK,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Ack,
    Connack,
    Disconnect,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    Publish,
    Suback,
    decode_packet,
    encode_packet,
)
from iotauth.local.mqtt.reasons import Reason

__all__ = ["EnginePackets"]

log = logging.getLogger("iotauth.local.gateway")


class EnginePackets(Connection):
    """Engine → client: deliveries and acknowledgements, each checked before it is passed on."""

    async def _engine_loop(self) -> None:
        reader = self._engine_reader
        assert reader is not None
        packets = self._engine_packets
        for first, body in self._engine_backlog:
            await self._engine_packet(first, body)
        while not self._closing:
            data = await reader.read(READ_SIZE)
            if not data:
                await self.end(Reason.SERVER_UNAVAILABLE, "engine connection closed")
                return
            packets.feed(data)
            try:
                for first, body in packets.packets():
                    await self._engine_packet(first, body)
                    if self._closing:
                        return
            except (MalformedPacket, ProtocolError, PacketTooLarge) as exc:
                log.warning("engine sent a packet the gateway cannot read: %s", exc)
                await self.end(Reason.UNSPECIFIED_ERROR, "engine error")
                return
            with contextlib.suppress(Exception):
                await self.stream.drain()

    async def _engine_packet(self, first: int, body: bytes) -> None:
        packet = decode_packet(first, body, self.version)
        if isinstance(packet, Publish):
            await self._delivery(packet, first, body)
        elif isinstance(packet, Suback):
            refused = self._pending_subacks.pop(packet.packet_id, None)
            if refused is None:
                self.stream.write(raw_packet(first, body))
                return
            granted = iter(packet.reason_codes)
            codes = tuple(next(granted, 0x80) if code is None else code for code in refused)
            self.send(Suback(packet.packet_id, codes, packet.properties))
        elif isinstance(packet, Ack):
            if packet.kind == PUBACK:
                self._inflight.discard(packet.packet_id)
            if packet.kind == PUBREL and packet.packet_id in self._dropped_qos2:
                self._dropped_qos2.discard(packet.packet_id)
                self.to_engine(encode_packet(Ack(PUBCOMP, packet.packet_id), self.version))
                return
            self.stream.write(raw_packet(first, body))
        elif isinstance(packet, Disconnect):
            # e.g. 0x8E Session taken over: a newer connection with this client id won.
            try:
                reason = Reason(packet.reason_code)
            except ValueError:
                reason = Reason.UNSPECIFIED_ERROR
            await self.end(reason, f"engine sent DISCONNECT 0x{packet.reason_code:02x}")
        elif isinstance(packet, Connack) or first >> 4 == CONNACK:
            raise ProtocolError("second CONNACK from the engine")
        else:
            self.stream.write(raw_packet(first, body))

    async def _delivery(self, packet: Publish, first: int, body: bytes) -> None:
        if not packet.topic or "topic_alias" in packet.properties:
            raise ProtocolError("engine used a topic alias")
        grant = await self._current()
        if grant is None:
            return
        if not enforcement.retained_delivery_allowed(
            version=self.version,
            topic=packet.topic,
            retain=packet.retain,
            exact_filters=self._exact_filters,
        ):
            # Not an error: IoT sends retained messages only to exact-topic subscriptions.
            log.debug("retained %r not sent to a wildcard subscription", packet.topic)
        elif enforcement.receive_allowed(grant.enforcement(self.config.arn), packet.topic):
            self.stream.write(raw_packet(first, body))
            return
        else:
            log.info(
                "iot:Receive refused on %r for client %r (connection %s): not delivered",
                packet.topic,
                grant.client_id,
                grant.connection_id,
            )
        if packet.qos == 1 and packet.packet_id is not None:
            self.to_engine(encode_packet(Ack(PUBACK, packet.packet_id), self.version))
        elif packet.qos == 2 and packet.packet_id is not None:
            self._dropped_qos2.add(packet.packet_id)
            self.to_engine(encode_packet(Ack(PUBREC, packet.packet_id), self.version))
