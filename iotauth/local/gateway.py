"""A local stand-in for the AWS IoT Core message broker: a policy-enforcing MQTT gateway.

The gateway owns everything IoT Core decides; the engine (mosquitto 2, :mod:`.engine`,
reachable only through the gateway) does sessions, routing, retained messages and QoS 1.
Each client connection gets one engine connection with the same protocol version and client
id, opened only after the CONNECT was authorized. Listeners, all on 127.0.0.1, stand for
IoT's two kinds of endpoint (REFERENCE §11):

- the account's default endpoint, ``iot:Data-ATS`` (``GatewayConfig.data_endpoint``: no
  default authorizer unless one is set; port and ALPN decide):
  **iot** (IoT's port 443; 8443 when 443 may not be bound): TLS; ALPN ``mqtt`` → MQTT with
  custom authentication, otherwise HTTPS with the WebSocket upgrade at ``/mqtt`` (a SigV4
  presigned URL or custom authentication); **ws** (8083): the same WebSocket without TLS,
  for browsers that do not trust the local CA;
- the device endpoint, a domain configuration (``GatewayConfig.domain``, from the
  template's ``IotDomainConfiguration``): **tls** (8883): MQTT over TLS, where
  ``CUSTOM_AUTH`` over ``SECURE_MQTT`` needs no ALPN (without a domain configuration: ALPN
  ``mqtt``, as on 443) and the default authorizer serves a CONNECT that names none;
  **tcp** (1883): the same without TLS, for quick scripts.

MQTT 3.1.1 and MQTT 5 on every listener, with the codec of :mod:`.mqtt`. Every decision
about a packet is a pure function of :mod:`.enforcement` (policy evaluation with
:class:`iotauth.access.policy.PolicySet`); this module carries the verdicts out:

- CONNECT: the authorizer event for the transport (:mod:`.iot_events`), called off the
  event loop with a 5 s budget, ``iot:Connect`` on ``client/<clientId>``, a will needs
  ``iot:Publish`` (and ``iot:RetainPublish``) at CONNECT; a presigned WebSocket connection
  gets the intersection of its session policy and the role's policies, verified at the
  upgrade and bound to that one connection; refusals answer CONNACK with a reason code;
- one client id, one connection: the new one wins, the old one is disconnected (MQTT 5:
  DISCONNECT 0x8E Session taken over);
- PUBLISH: topic aliases are resolved here and never forwarded (the engine's CONNECT offers
  it none and mosquitto accepts none, so deliveries carry full topics, each checked); the
  resolved topic is checked; a
  refused PUBLISH is never acknowledged as accepted (MQTT 5 QoS 1: PUBACK 0x87; otherwise
  the connection ends, MQTT 5 with a DISCONNECT naming the reason);
- SUBSCRIBE: per filter, refused ones get their SUBACK code and are not forwarded;
- every delivery from the engine is checked for ``iot:Receive``; a refused one is
  acknowledged to the engine by the gateway and never reaches the client;
- keep-alive (IoT's range, 1.5x rule), ``disconnectAfterInSeconds``, and a new authorizer
  call after ``refreshAfterInSeconds`` on the connection's next action.

Passwords, tokens, presigned URLs and signatures are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from iotauth.access.policy import PolicySet
from iotauth.access.scoping import ArnContext
from iotauth.local import enforcement
from iotauth.local.certs import CertificateFiles
from iotauth.local.domain import NO_DOMAIN, DomainConfiguration
from iotauth.local.enforcement import LIMITS, Grant, Limits, Outcome
from iotauth.local.engine import MosquittoEngine, open_engine
from iotauth.local.iot_events import (
    AuthorizerGrant,
    ConnectionInfo,
    authorizer_event,
    parse_authorizer_response,
    requested_authorizer,
)
from iotauth.local.mqtt.codec import (
    CONNACK,
    CONNECT,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    Ack,
    Auth,
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    PacketReader,
    PacketTooLarge,
    Ping,
    ProtocolError,
    Publish,
    Suback,
    Subscribe,
    decode_packet,
    encode_packet,
    encode_varint,
)
from iotauth.local.mqtt.reasons import Reason, v3_connack_code

__all__ = [
    "AuthorizerFunction",
    "GatewayConfig",
    "GatewayPorts",
    "LocalGateway",
    "PresignedVerifier",
]

log = logging.getLogger("iotauth.local.gateway")
# websockets would log request lines (a presigned URL's signature and token) at DEBUG.
_ws_log = logging.getLogger("iotauth.local.gateway.websocket")
_ws_log.setLevel(logging.WARNING)

#: Calls the custom authorizer with an IoT event and returns its answer (run in a thread).
AuthorizerFunction = Callable[[dict[str, Any]], Any]
#: Checks a presigned WebSocket upgrade (request target, headers as sent, over TLS?); returns
#: the policy sets that bound the credentials (e.g. the STS session policy and the role's
#: policies: the effective permissions are their intersection), or ``None`` to refuse it.
PresignedVerifier = Callable[[str, Sequence[tuple[str, str]], bool], Sequence[Sequence[str]] | None]

_MAX_CONNECTION_SECONDS = 86_400  # IoT Core ends every connection after 24 hours
_READ_SIZE = 65_536
_HTTP_REQUEST_LIMIT = 16_384  # IoT passes at most 8 KB of headers to an authorizer


@dataclass(slots=True)
class GatewayConfig:
    authorizer: AuthorizerFunction
    authorizer_name: str
    arn: ArnContext
    certificates: CertificateFiles
    presigned: PresignedVerifier | None = None
    host: str = "127.0.0.1"
    tcp_port: int = 0  # 0: any free port
    tls_port: int = 0
    ws_port: int = 0
    iot_port: int = 0
    domain: DomainConfiguration = NO_DOMAIN  # the device endpoint (tcp, tls listeners)
    data_endpoint: DomainConfiguration = NO_DOMAIN  # iot:Data-ATS (iot, ws listeners)
    limits: Limits = LIMITS
    engine_socket: Path | None = None  # None: the gateway starts its own mosquitto
    authorizer_timeout: float = 5.0
    connect_timeout: float = 10.0  # from accepting a connection to its CONNECT
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    tcp: int
    tls: int
    ws: int
    iot: int = 0


class _AllOf:
    """Permissions that need every policy set to allow (session policy ∩ role policy)."""

    def __init__(self, sets: Iterable[PolicySet]) -> None:
        self._sets = tuple(sets)

    def allows(self, action: str, resource: str, variables: Mapping[str, str]) -> bool:
        return bool(self._sets) and all(s.allows(action, resource, variables) for s in self._sets)


@dataclass(slots=True)
class _ConnectionGrant:
    """What one connection may do, and until when."""

    kind: str  # "custom-auth" or "sigv4"
    client_id: str
    connection_id: str
    policies: _AllOf
    disconnect_at: float
    refresh_at: float | None = None
    event: dict[str, Any] | None = None  # the CONNECT event, replayed on refresh
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def enforcement(self, arn: ArnContext) -> Grant:
        return Grant(self.policies, self.client_id, arn)


# --- transports ---------------------------------------------------------------------------


class _Stream(Protocol):
    async def read(self) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...


class _SocketStream:
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
        return await self._reader.read(_READ_SIZE)

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()


class _WebSocketStream:
    """MQTT bytes over an accepted WebSocket, with websockets' sans-I/O protocol."""

    def __init__(self, protocol: ServerProtocol, raw: _SocketStream) -> None:
        self._protocol = protocol
        self._raw = raw

    def _flush(self) -> None:
        for chunk in self._protocol.data_to_send():
            if chunk:
                self._raw.write(chunk)

    async def read(self) -> bytes:
        protocol = self._protocol
        while True:
            data = await self._raw.read()
            if not data:
                protocol.receive_eof()
                self._flush()
                return b""
            protocol.receive_data(data)
            out = bytearray()
            for event in protocol.events_received():
                if not isinstance(event, Frame):
                    continue
                if event.opcode in (Opcode.BINARY, Opcode.CONT):
                    out += event.data
                elif event.opcode == Opcode.TEXT:
                    # MQTT over WebSocket is binary only [MQTT-6.0.0-1].
                    protocol.fail(1003, "MQTT needs binary frames")
                    self._flush()
                    return b""
            self._flush()
            if out:
                return bytes(out)
            if protocol.state is not State.OPEN:
                return b""

    def write(self, data: bytes) -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_binary(data)
            self._flush()

    async def drain(self) -> None:
        await self._raw.drain()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(1000)
                self._flush()
        self._raw.close()


def _raw_packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + encode_varint(len(body)) + body


# --- one client connection ------------------------------------------------------------------


class _Session:
    """One client connection and its engine connection."""

    def __init__(
        self,
        gateway: LocalGateway,
        stream: _Stream,
        info: ConnectionInfo,
        presigned: _AllOf | None,
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
        self.grant: _ConnectionGrant | None = None
        self._engine_writer: asyncio.StreamWriter | None = None
        self._engine_reader: asyncio.StreamReader | None = None
        self._aliases: dict[int, str] = {}
        self._pending_subacks: dict[int, tuple[int | None, ...]] = {}
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

    # -- the connection's life ------------------------------------------------------------------

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
        reader = PacketReader(self.limits.maximum_packet_size)
        deadline = asyncio.get_running_loop().time() + self.config.connect_timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                data = await asyncio.wait_for(self.stream.read(), max(0.0, remaining))
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
                log.info("connection closed: malformed first packet (%s)", self.info.transport)
                return None
            if not packets:
                continue
            first, body = packets[0]
            if first >> 4 != CONNECT:
                log.info("connection closed: the first packet is not a CONNECT")
                return None
            try:
                packet = decode_packet(first, body, 5)
            except (MalformedPacket, ProtocolError) as exc:
                # Not UTF-8 where MQTT requires text, bad flags…: no CONNACK [MQTT-1.5.4-1].
                log.info("CONNECT refused: malformed (%s)", exc)
                return None
            assert isinstance(packet, Connect)
            self._early = packets[1:]  # sent before the CONNACK: handled after it
            self._client_packets = reader
            return packet

    def _refuse(self, reason: Reason, why: str, client: str) -> None:
        log.info("CONNECT refused: %s, %s", why, client)
        if self.version == 5:
            self.send(Connack(int(reason)))
        else:
            self.send(Connack(v3_connack_code(reason)))

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
        self.send(self._client_connack(connect, connack))
        log.info("CONNECT accepted (%s): %s (connection %s)", grant.kind, what, grant.connection_id)
        return True

    def _client_connack(self, connect: Connect, engine: Connack) -> Connack:
        if self.version != 5:
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
        limits = self.limits
        properties = (
            keep.with_("topic_alias_maximum", limits.topic_alias_maximum)
            .with_("receive_maximum", limits.receive_maximum)
            .with_("maximum_qos", 1)
            .with_("retain_available", 1)
            .with_("maximum_packet_size", limits.maximum_packet_size)
        )
        if int(self._keep_alive) != connect.keep_alive:
            properties = properties.with_("server_keep_alive", int(self._keep_alive))
        expiry = connect.properties.get("session_expiry_interval")
        if expiry is not None:
            granted = enforcement.effective_session_expiry(expiry, limits)
            if granted != expiry:
                properties = properties.with_("session_expiry_interval", granted)
        return Connack(0, engine.session_present, properties)

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
        properties = connect.properties.without(
            "topic_alias_maximum", "authentication_method", "authentication_data"
        )
        expiry = connect.properties.get("session_expiry_interval")
        if expiry is not None:
            properties = properties.with_(
                "session_expiry_interval", enforcement.effective_session_expiry(expiry, self.limits)
            )
        upstream = Connect(
            client_id=connect.client_id,
            version=self.version,
            clean_start=connect.clean_start,
            keep_alive=0,  # the gateway enforces keep-alive and answers PINGREQ itself
            will=connect.will,
            properties=properties,
        )
        writer.write(encode_packet(upstream, self.version))
        await writer.drain()
        engine_reader = self._engine_packets
        while True:
            data = await asyncio.wait_for(reader.read(_READ_SIZE), 5)
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

    # -- client → engine ----------------------------------------------------------------------

    async def _client_loop(self) -> None:
        reader = self._client_packets
        try:
            for first, body in self._early:
                await self._client_packet(first, body)
        except (MalformedPacket, ProtocolError):
            await self.end(Reason.PROTOCOL_ERROR, "malformed packet")
            return
        while not self._closing:
            deadline = 1.5 * self._keep_alive
            try:
                data = await asyncio.wait_for(self.stream.read(), deadline)
            except TimeoutError:
                await self.end(Reason.KEEP_ALIVE_TIMEOUT, "keep-alive timeout")
                return
            if not data:
                await self.end(None, "client closed the connection")
                return
            reader.feed(data)
            try:
                for first, body in reader.packets():
                    await self._client_packet(first, body)
                    if self._closing:
                        return
            except PacketTooLarge:
                await self.end(Reason.PACKET_TOO_LARGE, "packet over the maximum packet size")
                return
            except MalformedPacket:
                await self.end(Reason.MALFORMED_PACKET, "malformed packet")
                return
            except ProtocolError:
                await self.end(Reason.PROTOCOL_ERROR, "protocol error")
                return
            with contextlib.suppress(Exception):
                await self.stream.drain()

    async def _client_packet(self, first: int, body: bytes) -> None:
        packet = decode_packet(first, body, self.version)
        if isinstance(packet, Publish):
            await self._client_publish(packet, first, body)
        elif isinstance(packet, Ack):
            if packet.kind == PUBACK or packet.kind in (PUBREC, PUBCOMP):
                self.to_engine(_raw_packet(first, body))
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
                self.to_engine(_raw_packet(first, body))
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.drain(), 1)
            await self.end(None, "client sent DISCONNECT")
        elif isinstance(packet, Auth):
            raise ProtocolError("AUTH without enhanced authentication")
        elif first >> 4 == 10:  # UNSUBSCRIBE: no policy check in IoT
            if await self._current() is None:
                return
            self.to_engine(_raw_packet(first, body))
        else:
            raise ProtocolError("a packet only a server sends")

    async def _current(self) -> _ConnectionGrant | None:
        expired = self.grant is not None and self.config.clock() >= self.grant.disconnect_at
        grant = await self.gateway.current(self)
        if grant is None and not self._closing:
            if expired:
                await self.end(Reason.MAXIMUM_CONNECT_TIME, "disconnectAfterInSeconds")
            else:
                await self.end(Reason.NOT_AUTHORIZED, "refresh refused")
        return grant

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
                self.to_engine(_raw_packet(first, body))
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
        upstream = Subscribe(
            packet.packet_id,
            tuple(packet.filters[i] for i in forwarded),
            packet.properties,
        )
        self.to_engine(encode_packet(upstream, self.version))

    # -- engine → client -------------------------------------------------------------------

    async def _engine_loop(self) -> None:
        reader = self._engine_reader
        assert reader is not None
        packets = self._engine_packets
        for first, body in self._engine_backlog:
            await self._engine_packet(first, body)
        while not self._closing:
            data = await reader.read(_READ_SIZE)
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
                self.stream.write(_raw_packet(first, body))
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
            self.stream.write(_raw_packet(first, body))
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
            self.stream.write(_raw_packet(first, body))

    async def _delivery(self, packet: Publish, first: int, body: bytes) -> None:
        if not packet.topic or "topic_alias" in packet.properties:
            raise ProtocolError("engine used a topic alias")
        grant = await self._current()
        if grant is None:
            return
        if enforcement.receive_allowed(grant.enforcement(self.config.arn), packet.topic):
            self.stream.write(_raw_packet(first, body))
            return
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


# --- listeners ----------------------------------------------------------------------------------


def _tls_context(certs: CertificateFiles, alpn: Sequence[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    context.set_alpn_protocols(list(alpn))
    context.sni_callback = _remember_sni
    return context


def _remember_sni(ssl_object: Any, server_name: str | None, _: Any) -> None:
    # Kept on the connection's own SSLObject: it lives and dies with that connection.
    with contextlib.suppress(AttributeError, TypeError):
        ssl_object.iotauth_server_name = server_name


def _tls_facts(writer: asyncio.StreamWriter) -> tuple[str | None, str | None]:
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None, None
    server_name = getattr(ssl_object, "iotauth_server_name", None)
    return ssl_object.selected_alpn_protocol(), server_name


class LocalGateway:
    """The local IoT Core stand-in. ``await start()`` returns the bound ports."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.ports: GatewayPorts | None = None
        self._servers: list[asyncio.Server] = []
        self._engine: MosquittoEngine | None = None
        self._engine_socket: Path | None = config.engine_socket
        self._tasks: set[asyncio.Future[Any]] = set()
        self._live: dict[str, _Session] = {}
        self._sessions: set[_Session] = set()
        self.engine_handshakes = asyncio.Semaphore(8)

    @property
    def engine_socket(self) -> Path:
        if self._engine_socket is None:
            raise RuntimeError("the gateway is not running")
        return self._engine_socket

    async def start(self) -> GatewayPorts:
        if self._engine_socket is None:
            engine = MosquittoEngine()
            self._engine_socket = await asyncio.get_running_loop().run_in_executor(
                None, engine.start
            )
            self._engine = engine
        certs = self.config.certificates
        host = self.config.host
        mqtt_tls = _tls_context(certs, ["mqtt"])
        iot_tls = _tls_context(certs, ["mqtt", "http/1.1"])
        try:
            tcp = await self._listen(self._on_tcp, host, self.config.tcp_port, None)
            tls = await self._listen(self._on_tls, host, self.config.tls_port, mqtt_tls)
            ws = await self._listen(self._on_ws, host, self.config.ws_port, None)
            iot = await self._listen(self._on_iot, host, self.config.iot_port, iot_tls)
        except BaseException:
            await self.stop()
            raise
        self.ports = GatewayPorts(tcp=tcp, tls=tls, ws=ws, iot=iot)
        return self.ports

    async def _listen(
        self,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
        host: str,
        port: int,
        context: ssl.SSLContext | None,
    ) -> int:
        server = await asyncio.start_server(
            handler,
            host,
            port,
            ssl=context,
            ssl_handshake_timeout=10 if context is not None else None,
            limit=1 << 20,
        )
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for session in list(self._sessions):
            await session.end(Reason.SERVER_SHUTTING_DOWN, "gateway stopping")
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.get_running_loop().run_in_executor(None, engine.stop)
            self._engine_socket = self.config.engine_socket

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connection registry ------------------------------------------------------------------

    async def register(self, session: _Session) -> None:
        """One client id, one connection: the newest wins, the previous one is ended."""
        previous = self._live.get(session.client_id)
        self._live[session.client_id] = session
        if previous is not None and previous is not session:
            await previous.end(
                Reason.SESSION_TAKEN_OVER, "a new connection took over its client id"
            )

    def forget(self, session: _Session) -> None:
        self._sessions.discard(session)
        if self._live.get(session.client_id) is session:
            del self._live[session.client_id]

    def live_client_ids(self) -> list[str]:
        return sorted(self._live)

    async def delete_connection(
        self, client_id: str, *, clean_session: bool = False, prevent_will: bool = False
    ) -> bool:
        """IoT's DeleteConnection: end ``client_id``'s connection now. False: none live."""
        session = self._live.get(client_id)
        if session is None:
            return False
        await session.end(
            Reason.ADMINISTRATIVE_ACTION, "DeleteConnection", engine_disconnect=prevent_will
        )
        if clean_session:
            await self._discard_session(client_id, session.version)
        return True

    async def _discard_session(self, client_id: str, version: int) -> None:
        """Connect to the engine with a clean start under ``client_id``, then leave."""
        with contextlib.suppress(Exception):
            reader, writer = await asyncio.wait_for(open_engine(self.engine_socket), 5)
            try:
                writer.write(encode_packet(Connect(client_id, version=version), version))
                await writer.drain()
                await asyncio.wait_for(reader.read(_READ_SIZE), 5)
                writer.write(encode_packet(Disconnect(0), version))
                await writer.drain()
            finally:
                writer.close()

    # -- transports ---------------------------------------------------------------------------

    async def _run_session(
        self,
        stream: _Stream,
        info: ConnectionInfo,
        presigned: _AllOf | None,
        endpoint: DomainConfiguration,
    ) -> None:
        session = _Session(self, stream, info, presigned, endpoint)
        self._sessions.add(session)
        await session.run()

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = _SocketStream(reader, writer)
        await self._run_session(stream, ConnectionInfo("tcp"), None, self.config.domain)

    async def _on_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The device endpoint over TLS."""
        alpn, server_name = _tls_facts(writer)
        stream = _SocketStream(reader, writer)
        domain = self.config.domain
        if alpn != "mqtt" and not domain.custom_auth_without_alpn:
            # Port and ALPN decide: custom authentication over MQTT/TLS needs ALPN "mqtt".
            log.info("TLS connection closed: no ALPN 'mqtt' (custom authentication needs it)")
            stream.close()
            return
        await self._run_session(
            stream, ConnectionInfo("tls", server_name=server_name), None, domain
        )

    async def _on_iot(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """iot:Data-ATS on its port 443: ALPN "mqtt" is MQTT, anything else HTTPS."""
        alpn, server_name = _tls_facts(writer)
        stream = _SocketStream(reader, writer)
        endpoint = self.config.data_endpoint
        if alpn == "mqtt" or endpoint.custom_auth_without_alpn:
            info = ConnectionInfo("tls", server_name=server_name)
            await self._run_session(stream, info, None, endpoint)
            return
        await self._websocket(stream, "wss", server_name)

    async def _on_ws(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._websocket(_SocketStream(reader, writer), "ws", None)

    async def _websocket(self, raw: _SocketStream, transport: str, server_name: str | None) -> None:
        protocol = ServerProtocol(
            subprotocols=[Subprotocol("mqtt")],
            max_size=2 * self.config.limits.maximum_packet_size,
            logger=_ws_log,
        )
        request = await self._read_request(raw, protocol)
        if request is None:
            raw.close()
            return
        url = urlsplit(request.path)
        if url.path != "/mqtt":
            self._respond(raw, protocol, protocol.reject(HTTPStatus.NOT_FOUND, "Not Found\n"))
            return
        response = protocol.accept(request)
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            self._respond(raw, protocol, response)
            return
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        presigned: _AllOf | None = None
        if "X-Amz-Algorithm" in query or "X-Amz-Signature" in query:
            presigned = self._verify_presigned(request, secure=transport == "wss")
            if presigned is None:
                log.info("websocket upgrade refused: presigned URL not valid")
                self._respond(raw, protocol, protocol.reject(HTTPStatus.FORBIDDEN, "Forbidden\n"))
                return
        protocol.send_response(response)
        stream = _WebSocketStream(protocol, raw)
        for chunk in protocol.data_to_send():
            if chunk:
                raw.write(chunk)
        headers: Headers = request.headers
        info = ConnectionInfo(
            transport="wss" if transport == "wss" else "ws",
            server_name=server_name,
            http_headers={name: value for name, value in headers.raw_items()},
            query_string=f"?{url.query}" if url.query else "",
        )
        await self._run_session(stream, info, presigned, self.config.data_endpoint)

    async def _read_request(self, raw: _SocketStream, protocol: ServerProtocol) -> Request | None:
        received = 0
        deadline = asyncio.get_running_loop().time() + self.config.connect_timeout
        while received < _HTTP_REQUEST_LIMIT:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                data = await asyncio.wait_for(raw.read(), max(0.0, remaining))
            except TimeoutError:
                return None
            if not data or (not received and not data.startswith(b"G")):
                return None  # closed, or not an HTTP GET (an upgrade is nothing else)
            received += len(data)
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Request):
                    return event
            if protocol.handshake_exc is not None:
                return None
        return None

    def _respond(self, raw: _SocketStream, protocol: ServerProtocol, response: Any) -> None:
        protocol.send_response(response)
        for chunk in protocol.data_to_send():
            if chunk:
                raw.write(chunk)
        raw.close()

    def _verify_presigned(self, request: Request, *, secure: bool) -> _AllOf | None:
        verifier = self.config.presigned
        if verifier is None:
            return None
        try:
            documents = verifier(request.path, list(request.headers.raw_items()), secure)
        except Exception:  # fail closed, and say nothing about the URL
            log.warning("presigned URL verification failed with an error")
            return None
        if not documents or not all(documents):
            return None
        return _AllOf(PolicySet(d) for d in documents)

    # -- decisions ------------------------------------------------------------------------------

    def _resource(self, kind: str, name: str) -> str:
        return self.config.arn.resource(kind, name)

    async def _call_authorizer(self, event: dict[str, Any]) -> AuthorizerGrant | None:
        loop = asyncio.get_running_loop()
        try:
            response = await asyncio.wait_for(
                loop.run_in_executor(None, self.config.authorizer, event),
                timeout=self.config.authorizer_timeout,
            )
        except TimeoutError:
            log.warning("authorizer timed out (connection %s)", event["connectionMetadata"]["id"])
            return None
        except Exception as exc:  # a failing authorizer refuses the connection
            log.warning(
                "authorizer failed with %s (connection %s)",
                type(exc).__name__,
                event["connectionMetadata"]["id"],
            )
            return None
        grant = parse_authorizer_response(response)
        if grant is None and isinstance(response, Mapping) and response.get("isAuthenticated"):
            log.warning("authorizer response rejected: it breaks IoT Core's response rules")
        return grant

    async def authorize(
        self,
        connect: Connect,
        info: ConnectionInfo,
        presigned: _AllOf | None,
        endpoint: DomainConfiguration = NO_DOMAIN,
    ) -> _ConnectionGrant | None:
        """The connection's grant, or ``None`` to refuse its CONNECT."""
        client_id = connect.client_id
        connection_id = str(uuid.uuid4())
        now = self.config.clock()
        what = f"client {client_id!r} via {info.transport} (connection {connection_id})"
        if presigned is not None:
            grant = _ConnectionGrant(
                kind="sigv4",
                client_id=client_id,
                connection_id=connection_id,
                policies=presigned,
                disconnect_at=now + _MAX_CONNECTION_SECONDS,
            )
        else:
            username = connect.username
            requested = requested_authorizer(username, info)
            chosen = endpoint.authorizer_for(requested, frozenset({self.config.authorizer_name}))
            if chosen is None:
                log.info("CONNECT refused: no such custom authorizer, %s", what)
                return None
            event = authorizer_event(
                info,
                username=username,
                password=connect.password,
                client_id=client_id,
                connection_id=connection_id,
            )
            answer = await self._call_authorizer(event)
            if answer is None:
                # No username: for an unknown identity it may be a mistyped password (the
                # authorizer logs names only for identities it knows).
                log.info("CONNECT refused by the authorizer: %s", what)
                return None
            grant = _ConnectionGrant(
                kind="custom-auth",
                client_id=client_id,
                connection_id=connection_id,
                policies=_AllOf([PolicySet(answer.policy_documents)]),
                disconnect_at=now + answer.disconnect_after,
                refresh_at=now + answer.refresh_after,
                event=event,
            )
        checks = grant.enforcement(self.config.arn)
        if not checks.allows("iot:Connect", "client", client_id):
            log.info("CONNECT refused: policy does not allow iot:Connect, %s", what)
            return None
        if not enforcement.will_allowed(checks, connect, self.config.limits):
            log.info("CONNECT refused: will topic not allowed, %s", what)
            return None
        return grant

    async def current(self, session: _Session) -> _ConnectionGrant | None:
        """The session's grant if still valid, refreshed through the authorizer when due."""
        grant = session.grant
        if grant is None:
            return None
        now = self.config.clock()
        if now >= grant.disconnect_at:
            return None
        if grant.refresh_at is None or now < grant.refresh_at or grant.event is None:
            return grant
        async with grant.lock:
            if grant.refresh_at is not None and self.config.clock() >= grant.refresh_at:
                answer = await self._call_authorizer(grant.event)
                if answer is None:
                    log.info("refresh refused (connection %s)", grant.connection_id)
                    session.grant = None
                    return None
                now = self.config.clock()
                grant.policies = _AllOf([PolicySet(answer.policy_documents)])
                grant.refresh_at = now + answer.refresh_after
                if not grant.enforcement(self.config.arn).allows(
                    "iot:Connect", "client", grant.client_id
                ):
                    log.info(
                        "refreshed policy denies iot:Connect (connection %s)", grant.connection_id
                    )
                    session.grant = None
                    return None
        return grant
