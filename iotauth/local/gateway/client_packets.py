"""What a client sends once connected, checked against its grant before the engine sees it.

- PUBLISH: topic aliases are resolved here and never forwarded (the engine's CONNECT offers
  it none and mosquitto accepts none); the resolved topic is checked; a refused PUBLISH is
  never acknowledged as accepted (MQTT 5 QoS 1: PUBACK 0x87; otherwise the connection ends,
  MQTT 5 with a DISCONNECT naming the reason);
- SUBSCRIBE: per filter, refused ones get their SUBACK code and are not forwarded; one
  with more than IoT's 8 filters ends the connection (MQTT 5: DISCONNECT 0x97), as IoT does;
- PINGREQ is answered here; a client that completes no packet for 1.5x its keep-alive is
  disconnected (bytes of a partial packet do not count).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from iotauth.local import enforcement
from iotauth.local.enforcement import Outcome
from iotauth.local.gateway.connection import Connection, decode_from_client
from iotauth.local.gateway.streams import raw_packet
from iotauth.local.mqtt.codec import (
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBREC,
    Ack,
    Auth,
    Disconnect,
    MalformedPacket,
    PacketTooLarge,
    Ping,
    ProtocolError,
    Publish,
    QuotaExceeded,
    Suback,
    Subscribe,
    Unsubscribe,
    encode_packet,
)
from iotauth.local.mqtt.reasons import Reason

__all__ = ["TURN_SECONDS", "ClientPackets"]

log = logging.getLogger("iotauth.local.gateway")

# How long one connection's packets may hold the event loop before it serves the others.
TURN_SECONDS = 0.005


class ClientPackets(Connection):
    """Client → engine: each packet the client sends, forwarded only as its grant allows."""

    async def _client_loop(self) -> None:
        """Serve the client's packets until the connection ends.

        Keep-alive counts whole packets only: a client that completes no Control Packet
        within 1.5x its keep-alive is disconnected, however many bytes of a partial one
        trickle in (MQTT 3.1.1 §3.1.2.10, MQTT 5.0 §3.1.2.10); the timer starts at the
        CONNACK, as IoT's does. Work per turn is bounded: once the packets of one read have
        taken :data:`TURN_SECONDS`, other connections are served before the next packet.
        """
        reader = self._client_packets
        loop = asyncio.get_running_loop()
        last_packet = loop.time()
        try:
            for first, body in self._early:
                await self._client_packet(first, body)
                if self._closing:
                    return
            while not self._closing:
                left = last_packet + 1.5 * self._keep_alive - loop.time()
                try:
                    data = await asyncio.wait_for(self.stream.read(), max(0.0, left))
                except TimeoutError:
                    await self.end(Reason.KEEP_ALIVE_TIMEOUT, "keep-alive timeout")
                    return
                if not data:
                    await self.end(None, "client closed the connection")
                    return
                reader.feed(data)
                turn = loop.time()
                for first, body in reader.packets():
                    last_packet = loop.time()
                    await self._client_packet(first, body)
                    if self._closing:
                        return
                    if loop.time() - turn > TURN_SECONDS:
                        await asyncio.sleep(0)  # let the other connections run
                        turn = loop.time()
                with contextlib.suppress(Exception):
                    await self.stream.drain()
        except PacketTooLarge:
            await self.end(Reason.PACKET_TOO_LARGE, "packet over the maximum packet size")
        except QuotaExceeded as exc:
            # IoT ends the connection (MQTT 3.1.1: no SUBACK); one line, not one per filter.
            log.info("%s from client %r: disconnecting", exc, self.client_id)
            await self.end(Reason.QUOTA_EXCEEDED, "quota exceeded")
        except MalformedPacket:
            await self.end(Reason.MALFORMED_PACKET, "malformed packet")
        except ProtocolError:
            await self.end(Reason.PROTOCOL_ERROR, "protocol error")

    async def _client_packet(self, first: int, body: bytes) -> None:
        packet = await decode_from_client(first, body, self.version, self.limits)
        if isinstance(packet, Publish):
            await self._client_publish(packet, first, body)
        elif isinstance(packet, Ack):
            if packet.kind == PUBACK or packet.kind in (PUBREC, PUBCOMP):
                self.to_engine(raw_packet(first, body))
            else:  # PUBREL: only for a QoS 2 PUBLISH, which the gateway never accepts
                raise ProtocolError("PUBREL without a QoS 2 PUBLISH")
        elif isinstance(packet, Subscribe):
            await self._client_subscribe(packet)
        elif isinstance(packet, Ping):
            if packet.kind != PINGREQ:
                raise ProtocolError("PINGRESP from a client")
            self.send(Ping(13))
        elif isinstance(packet, Disconnect):
            # A normal disconnect: the engine drops the will (unless 0x04 asks for it).
            writer = self._engine_writer
            if writer is not None:
                self.to_engine(raw_packet(first, body))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.drain(), 1)
            await self.end(None, "client sent DISCONNECT")
        elif isinstance(packet, Auth):
            raise ProtocolError("AUTH without enhanced authentication")
        elif first >> 4 == 10:  # UNSUBSCRIBE: no policy check in IoT
            if await self._current() is None:
                return
            if isinstance(packet, Unsubscribe):
                self._exact_filters.difference_update(packet.filters)
            self.to_engine(raw_packet(first, body))
        else:
            raise ProtocolError("a packet only a server sends")

    async def _client_publish(self, packet: Publish, first: int, body: bytes) -> None:
        topic = packet.topic
        alias = packet.properties.get("topic_alias") if self.version == 5 else None
        if alias is not None:
            if not 0 < alias <= self.limits.topic_alias_maximum:
                await self.end(Reason.TOPIC_ALIAS_INVALID, f"topic alias {alias} out of range")
                return
            if topic:
                self._aliases[alias] = topic
            elif alias in self._aliases:
                topic = self._aliases[alias]
            else:
                await self.end(Reason.PROTOCOL_ERROR, f"unknown topic alias {alias}")
                return
        grant = await self._current()
        if grant is None:
            return
        verdict = enforcement.publish_verdict(
            grant.enforcement(self.config.arn),
            version=self.version,
            topic=topic,
            qos=packet.qos,
            retain=packet.retain,
            payload_size=len(packet.payload),
            properties=packet.properties,
            limits=self.limits,
        )
        if verdict.outcome is Outcome.FORWARD:
            if packet.qos == 1 and packet.packet_id is not None:
                if self.version == 5 and len(self._inflight) >= self.limits.receive_maximum:
                    await self.end(Reason.RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded")
                    return
                self._inflight.add(packet.packet_id)
            if alias is None:
                self.to_engine(raw_packet(first, body))
            else:
                resolved = Publish(
                    topic,
                    packet.payload,
                    packet.qos,
                    packet.retain,
                    packet.dup,
                    packet.packet_id,
                    packet.properties.without("topic_alias"),
                )
                self.to_engine(encode_packet(resolved, self.version))
            return
        log.info(
            "PUBLISH refused on %r for client %r (connection %s): %s",
            topic,
            grant.client_id,
            grant.connection_id,
            verdict.why,
        )
        if verdict.outcome is Outcome.REFUSE and packet.packet_id is not None:
            self.send(Ack(PUBACK, packet.packet_id, int(verdict.reason)))
            return
        await self.end(verdict.reason, f"PUBLISH refused: {verdict.why}")

    async def _client_subscribe(self, packet: Subscribe) -> None:
        grant = await self._current()
        if grant is None:
            return
        verdict = enforcement.subscribe_verdicts(
            grant.enforcement(self.config.arn),
            version=self.version,
            filters=packet.filters,
            limits=self.limits,
        )
        for (topic_filter, _), code in zip(packet.filters, verdict.refused, strict=True):
            if code is not None:
                log.info(
                    "iot:Subscribe refused on %r for client %r (connection %s)",
                    topic_filter,
                    grant.client_id,
                    grant.connection_id,
                )
        if not verdict.answer:
            log.info("SUBSCRIBE with QoS 2 ignored, as IoT does (client %r)", grant.client_id)
            return
        forwarded = verdict.forwarded
        if not forwarded:
            codes = tuple(code or 0 for code in verdict.refused)
            self.send(Suback(packet.packet_id, codes))
            return
        self._pending_subacks[packet.packet_id] = verdict.refused
        granted = [packet.filters[i] for i in forwarded]
        self._exact_filters.update(f for f, _ in granted if enforcement.is_exact_filter(f))
        upstream = Subscribe(
            packet.packet_id,
            tuple(
                (f, enforcement.engine_subscription_options(f, options, self.version))
                for f, options in granted
            ),
            packet.properties,
        )
        self.to_engine(encode_packet(upstream, self.version))
