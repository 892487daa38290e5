"""Opening a connection: the client's first CONNECT, the engine's CONNECT, the CONNACKs.

The first packet must be a well-formed CONNECT within ``connect_timeout`` (otherwise the
connection closes without a CONNACK [MQTT-1.5.4-1]). Before anyone authenticates it, it is
held to IoT's limits as it is read: a CONNECT announcing more than the Maximum Packet Size
is refused from its fixed header, before its body is read, and one whose User Properties
pass 8 KB (on the wire) is refused (CONNACK 0x95) where they pass it, the rest undecoded.
The engine's CONNECT is the client's without what the gateway keeps to itself (topic
aliases, enhanced auth, keep-alive), and the client's CONNACK states IoT Core's limits
rather than mosquitto's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from iotauth.local import enforcement
from iotauth.local.enforcement import Limits
from iotauth.local.gateway.connection import decode_from_client
from iotauth.local.gateway.streams import Stream
from iotauth.local.mqtt.codec import (
    CONNECT,
    Connack,
    Connect,
    MalformedPacket,
    PacketReader,
    PacketTooLarge,
    ProtocolError,
    QuotaExceeded,
    encode_packet,
)
from iotauth.local.mqtt.reasons import Reason, v3_connack_code

__all__ = ["FirstConnect", "client_connack", "read_connect", "refusal", "upstream_connect"]

log = logging.getLogger("iotauth.local.gateway")


@dataclass(slots=True)
class FirstConnect:
    """The CONNECT, the packets that came with it, and the reader holding any partial rest."""

    connect: Connect
    early: list[tuple[int, bytes]]  # sent before the CONNACK: handled after it
    reader: PacketReader


async def read_connect(
    stream: Stream, limits: Limits, timeout: float, transport: str
) -> FirstConnect | None:
    """The connection's CONNECT, or ``None``: close it without a CONNACK."""
    reader = PacketReader(limits.maximum_packet_size)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            data = await asyncio.wait_for(stream.read(), max(0.0, remaining))
        except TimeoutError:
            return None
        if not data:
            return None
        if not reader.buffered() and data[0] >> 4 != CONNECT:
            log.info("connection closed: the first packet is not a CONNECT")
            return None
        reader.feed(data)
        try:
            packets = list(reader.packets())
        except (MalformedPacket, PacketTooLarge):
            log.info("connection closed: malformed first packet (%s)", transport)
            return None
        if not packets:
            continue
        first, body = packets[0]
        if first >> 4 != CONNECT:
            log.info("connection closed: the first packet is not a CONNECT")
            return None
        try:
            packet = await decode_from_client(first, body, 5, limits)
        except PacketTooLarge as exc:
            # Only MQTT 5 has properties: its CONNACK names the reason.
            log.info("CONNECT refused: packet too large (%s), via %s", exc, transport)
            stream.write(encode_packet(refusal(Reason.PACKET_TOO_LARGE, 5), 5))
            return None
        except (MalformedPacket, ProtocolError, QuotaExceeded) as exc:
            # Not UTF-8 where MQTT requires text, bad flags…: no CONNACK [MQTT-1.5.4-1].
            log.info("CONNECT refused: malformed (%s)", exc)
            return None
        assert isinstance(packet, Connect)
        return FirstConnect(packet, packets[1:], reader)


def refusal(reason: Reason, version: int) -> Connack:
    """The CONNACK refusing a CONNECT: MQTT 5's reason code, or its MQTT 3.1.1 return code."""
    if version == 5:
        return Connack(int(reason))
    return Connack(v3_connack_code(reason))


def upstream_connect(connect: Connect, version: int, limits: Limits) -> Connect:
    """The engine's CONNECT for the client's: no topic aliases, no AUTH, no keep-alive."""
    properties = connect.properties.without(
        "topic_alias_maximum", "authentication_method", "authentication_data"
    )
    expiry = connect.properties.get("session_expiry_interval")
    if expiry is not None:
        properties = properties.with_(
            "session_expiry_interval", enforcement.effective_session_expiry(expiry, limits)
        )
    return Connect(
        client_id=connect.client_id,
        version=version,
        clean_start=connect.clean_start,
        keep_alive=0,  # the gateway enforces keep-alive and answers PINGREQ itself
        will=connect.will,
        properties=properties,
    )


def client_connack(
    connect: Connect, engine: Connack, version: int, keep_alive: float, limits: Limits
) -> Connack:
    """The client's CONNACK for the engine's: IoT Core's limits, the granted keep-alive."""
    if version != 5:
        return Connack(0, engine.session_present)
    keep = engine.properties.without(
        "topic_alias_maximum",
        "receive_maximum",
        "maximum_qos",
        "maximum_packet_size",
        "server_keep_alive",
        "retain_available",
        "assigned_client_identifier",
    )
    properties = (
        keep.with_("topic_alias_maximum", limits.topic_alias_maximum)
        .with_("receive_maximum", limits.receive_maximum)
        .with_("maximum_qos", 1)
        .with_("retain_available", 1)
        .with_("maximum_packet_size", limits.maximum_packet_size)
    )
    if int(keep_alive) != connect.keep_alive:
        properties = properties.with_("server_keep_alive", int(keep_alive))
    expiry = connect.properties.get("session_expiry_interval")
    if expiry is not None:
        granted = enforcement.effective_session_expiry(expiry, limits)
        if granted != expiry:
            properties = properties.with_("session_expiry_interval", granted)
    return Connack(0, engine.session_present, properties)
