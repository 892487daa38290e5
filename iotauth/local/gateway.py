"""A local stand-in for the AWS IoT Core message broker, enforcing what IoT Core enforces.

An amqtt 0.12 broker (MQTT 3.1.1) with three listeners on 127.0.0.1:

- **tcp**: plain MQTT (IoT Core has no such port; handy for quick scripts);
- **tls**: MQTT over TLS with ALPN ``mqtt`` required, like IoT Core's port 443 for custom
  authentication; the certificate comes from :mod:`iotauth.local.certs`;
- **ws**: MQTT over WebSocket at ``/mqtt`` (subprotocol ``mqtt``), with either a SigV4
  presigned URL or custom-authorizer username/password.

Like IoT Core:

- a CONNECT is authorized *before* the broker touches any session (amqtt by itself would
  take over or clean a session of that client id first). Custom authentication builds the
  authorizer event for the transport (:mod:`iotauth.local.iot_events`), calls the
  authorizer function off the event loop with a 5 s budget, validates the answer and
  requires ``iot:Connect`` on ``client/<clientId>``; a presigned WebSocket connection gets
  the intersection of the session policy its credentials were issued with and the role's
  own policies. A will message needs ``iot:Publish``
  on its topic at CONNECT time (IoT would publish it later on the client's behalf). The
  password reaches the authorizer as the bytes sent (base64 in the event), read from the
  packet itself since amqtt decodes it as text; a client id, username or will topic that is
  not UTF-8 closes the connection without a CONNACK [MQTT-1.5.3-1];
- every SUBSCRIBE (``iot:Subscribe`` on ``topicfilter/<filter>``; refused filters get
  SUBACK 0x80), PUBLISH (``iot:Publish`` on ``topic/<topic>``, plus ``iot:RetainPublish``
  when retained) and delivery (``iot:Receive`` on ``topic/<topic>``, retained messages
  included) is checked with :class:`iotauth.policy.PolicySet`, the one evaluator;
- a denied PUBLISH disconnects the client; IoT's reserved ``$aws/…`` topics work like any
  other topic where a policy grants them (there is no shadow, jobs or rules engine behind
  them: they are plain topics here), any other ``$`` topic is refused;
- ``disconnectAfterInSeconds`` ends the connection; after ``refreshAfterInSeconds`` the
  authorizer is called again on the connection's next action, and a refusal disconnects.

Passwords, tokens, presigned URLs and signatures are never logged.

Not reproduced (IoT Core differs; do not rely on these locally): MQTT 5; QoS 2 (IoT sends no
PUBACK/SUBACK for it, amqtt serves it); IoT's quotas (topic length and depth, payload size,
connection and message rates); persistent-session expiry; the services behind ``$aws/…``
topics (shadows, jobs, rules), which are plain topics here.
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
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from amqtt.adapters import (
    ReaderAdapter,
    StreamReaderAdapter,
    StreamWriterAdapter,
    WebSocketsReader,
    WebSocketsWriter,
    WriterAdapter,
)
from amqtt.broker import Broker
from amqtt.contexts import Action, ListenerType
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from iotauth.local.certs import CertificateFiles
from iotauth.local.iot_events import (
    AuthorizerGrant,
    ConnectionInfo,
    authorizer_event,
    parse_authorizer_response,
    requested_authorizer,
)
from iotauth.policy import PolicySet
from iotauth.scoping import ArnContext

__all__ = [
    "AuthorizerFunction",
    "GatewayConfig",
    "GatewayPorts",
    "LocalGateway",
    "PresignedVerifier",
]

log = logging.getLogger("iotauth.local.gateway")
# websockets logs request lines (a presigned URL's signature and token) at DEBUG: never emit.
_ws_log = logging.getLogger("iotauth.local.gateway.websocket")
_ws_log.setLevel(logging.WARNING)

#: Calls the custom authorizer with an IoT event and returns its answer (run in a thread).
AuthorizerFunction = Callable[[dict[str, Any]], Any]
#: Checks a presigned WebSocket request (path with query, Host header); returns the policy
#: sets that bound the credentials (e.g. the STS session policy and the role's policies:
#: the effective permissions are their intersection), or ``None`` to refuse the URL.
PresignedVerifier = Callable[[str, str], Sequence[Sequence[str]] | None]

#: IoT Core's reserved topics: usable only where a policy grants them explicitly. Any other
#: topic starting with '$' is refused, and publishing to one ends the connection.
RESERVED_TOPIC_PREFIX = "$aws/"
_GRANT_ATTRIBUTE = "_iotauth_grant"
_MAX_CONNECTION_SECONDS = 86_400  # IoT Core ends every connection after 24 hours
_LISTENER_TCP, _LISTENER_TLS, _LISTENER_WS = "default", "tls", "ws"


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
    authorizer_timeout: float = 5.0
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    tcp: int
    tls: int
    ws: int


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

    @property
    def variables(self) -> dict[str, str]:
        return {"iot:ClientId": self.client_id}


def _grant_of(session: Session | None) -> _ConnectionGrant | None:
    grant = getattr(session, _GRANT_ATTRIBUTE, None)
    return grant if isinstance(grant, _ConnectionGrant) else None


def _sent_client_id(client_id: str | None) -> str | None:
    # amqtt invents "amqtt/<16 chars>" when a client sends none; IoT would see no clientId.
    if not client_id or (client_id.startswith("amqtt/") and len(client_id) == 22):
        return None
    return client_id


class _RecordingReader(ReaderAdapter):  # type: ignore[misc]  # amqtt is untyped
    """Keeps what amqtt reads of the CONNECT packet: its fields as bytes, before decoding."""

    def __init__(self, inner: ReaderAdapter) -> None:
        self._inner = inner
        self.data = bytearray()

    async def read(self, n: int = -1) -> bytes:
        chunk: bytes = await self._inner.read(n)
        if chunk:
            self.data += chunk
        return chunk

    def feed_eof(self) -> None:
        self._inner.feed_eof()


@dataclass(frozen=True, slots=True)
class _ConnectFields:
    """What the gateway takes from a CONNECT as sent, not as amqtt decoded it."""

    password: bytes | None = field(repr=False)  # any bytes


def _connect_fields(raw: bytes) -> _ConnectFields | None:
    """Parse an MQTT 3.1.1 CONNECT; ``None`` when malformed or a string is not UTF-8.

    amqtt decodes every field as text and, for bytes that are not UTF-8, substitutes their
    Python repr (``"b'\\xff'"``): a password would then be compared in that form. IoT Core
    passes the password's bytes to the authorizer (base64), and MQTT requires the string
    fields to be well-formed UTF-8, closing the connection otherwise [MQTT-1.5.3-1].
    """
    view = memoryview(raw)
    position = 1  # after the packet type byte
    remaining = shift = 0
    while True:
        if position >= len(view) or shift > 21:
            return None
        byte = view[position]
        position += 1
        remaining |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if view[0] >> 4 != 1 or len(view) - position < remaining:
        return None
    end = position + remaining

    def field_bytes() -> bytes | None:
        nonlocal position
        if end - position < 2:
            return None
        length = int.from_bytes(view[position : position + 2], "big")
        if end - position - 2 < length:
            return None
        value = bytes(view[position + 2 : position + 2 + length])
        position += 2 + length
        return value

    if field_bytes() is None or end - position < 4:  # protocol name; level, flags, keep alive
        return None
    flags = view[position + 1]
    position += 4
    client_id = field_bytes()
    if client_id is None:
        return None
    texts = [client_id]
    if flags & 0x04:  # will: its topic (text), then its message (binary)
        will_topic = field_bytes()
        if will_topic is None or field_bytes() is None:
            return None
        texts.append(will_topic)
    username = password = None
    if flags & 0x80:
        username = field_bytes()
        if username is None:
            return None
        texts.append(username)
    if flags & 0x40:
        password = field_bytes()
        if password is None:
            return None
    try:
        for text in texts:
            text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _ConnectFields(password=password)


def _identity(username: str | None) -> str:
    """The name part of a username, for logs (never the password, never the query)."""
    return (username or "").split("?", 1)[0][:64] or "-"


class _IoTBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's broker with IoT Core's authentication and authorization put in front."""

    def __init__(self, gateway: LocalGateway, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._gateway = gateway
        self._connection_info: dict[int, ConnectionInfo] = {}  # id(writer adapter) → info
        self._presigned: dict[int, _AllOf] = {}  # id(ws connection) → its permissions
        self._sni: dict[int, str] = {}  # id(SSLObject) → server name

    # --- listeners -------------------------------------------------------------------

    def _create_ssl_context(self, listener: Any) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(listener["certfile"], listener["keyfile"])
        context.set_alpn_protocols(["mqtt"])
        context.sni_callback = self._remember_sni
        return context

    def _remember_sni(self, ssl_object: Any, server_name: str | None, _: Any) -> None:
        if server_name:
            self._sni[id(ssl_object)] = server_name

    async def _create_server_instance(
        self,
        listener_name: str,
        listener_type: ListenerType,
        address: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> Any:
        if listener_type != ListenerType.WS:
            return await super()._create_server_instance(
                listener_name, listener_type, address, port, ssl_context
            )

        async def handler(websocket: ServerConnection) -> None:
            await self.ws_connected(websocket, listener_name)

        return await ws_serve(
            handler,
            address,
            port,
            ssl=ssl_context,
            subprotocols=[Subprotocol("mqtt")],
            process_request=self._check_upgrade,
            server_header=None,
            close_timeout=1,  # do not let a silent client hold up a shutdown
            logger=_ws_log,
        )

    def _check_upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        """IoT's checks on a WebSocket upgrade: the path, and a presigned URL's signature."""
        url = urlsplit(request.path)
        if url.path != "/mqtt":
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        if "X-Amz-Algorithm" not in query and "X-Amz-Signature" not in query:
            return None  # custom authentication happens at CONNECT
        verifier = self._gateway.config.presigned
        documents: Sequence[Sequence[str]] | None = None
        if verifier is not None:
            try:
                documents = verifier(request.path, request.headers.get("Host", ""))
            except Exception:  # fail closed, and say nothing about the URL
                log.exception("presigned URL verification failed with an error")
                documents = None
        if not documents or not all(documents):
            log.info("websocket upgrade refused: presigned URL not valid")
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        self._presigned[id(connection)] = _AllOf(PolicySet(d) for d in documents)
        return None

    async def ws_connected(self, websocket: ServerConnection, listener_name: str) -> None:
        documents = self._presigned.pop(id(websocket), None)
        request = websocket.request
        assert request is not None
        url = urlsplit(request.path)
        headers: Headers = request.headers
        info = ConnectionInfo(
            transport="ws",
            http_headers={name: value for name, value in headers.raw_items()},
            query_string=f"?{url.query}" if url.query else "",
        )
        reader, writer = WebSocketsReader(websocket), WebSocketsWriter(websocket)
        await self._serve(listener_name, reader, writer, info, documents)

    async def stream_connected(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        listener_name: str,
    ) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            server_name = self._sni.pop(id(ssl_object), None)
            if ssl_object.selected_alpn_protocol() != "mqtt":
                # IoT Core's port 443 serves MQTT only to clients that ask for ALPN "mqtt".
                log.warning("TLS connection refused: the client did not negotiate ALPN 'mqtt'")
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
                return
            info = ConnectionInfo(transport="tls", server_name=server_name)
        else:
            info = ConnectionInfo(transport="tcp")
        await self._serve(
            listener_name, StreamReaderAdapter(reader), StreamWriterAdapter(writer), info, None
        )

    async def _serve(
        self,
        listener_name: str,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        info: ConnectionInfo,
        presigned: _AllOf | None,
    ) -> None:
        key = id(writer)
        self._connection_info[key] = info
        if presigned is not None:
            self._presigned[key] = presigned
        try:
            await self._client_connected(listener_name, reader, writer)
        finally:
            self._connection_info.pop(key, None)
            self._presigned.pop(key, None)

    # --- CONNECT ---------------------------------------------------------------------

    async def _initialize_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        remote_address: str,
        remote_port: int,
    ) -> tuple[BrokerProtocolHandler, Session]:
        recording = _RecordingReader(reader)
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                recording, writer, self.plugins_manager
            )
        except (MQTTError, NoDataError) as exc:
            with contextlib.suppress(Exception):
                await writer.close()
            raise AMQTTError("invalid CONNECT") from exc
        fields = _connect_fields(bytes(recording.data))
        recording.data.clear()  # it held the password
        if fields is None:
            log.info("CONNECT refused: malformed, or a string field is not UTF-8")
            with contextlib.suppress(Exception):
                await writer.close()
            raise AMQTTError("invalid CONNECT")

        info = self._connection_info.get(id(writer), ConnectionInfo(transport="tcp"))
        presigned = self._presigned.get(id(writer))
        grant = await self._gateway.authorize_connect(session, info, presigned, fields.password)
        if grant is None:
            with contextlib.suppress(Exception):
                await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
                await writer.drain()
            with contextlib.suppress(Exception):
                await writer.close()
            raise AMQTTError("connection not authorized")

        # From here on, amqtt's own session handling (Broker._initialize_client_session).
        session_id = session.client_id
        previous = self._sessions.get(session_id)
        if previous is not None and previous[0].transitions.is_connected():
            # IoT Core: a second connection with the same client id ends the first one.
            log.info("client %r connected again: closing its previous connection", session_id)
            await previous[1].handle_connection_closed()
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for attribute in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "will_retain",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(existing, attribute, getattr(session, attribute))
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        setattr(session, _GRANT_ATTRIBUTE, grant)
        return handler, session

    async def _authenticate(self, session: Session, _: Any) -> bool:
        return _grant_of(session) is not None  # decided before the session was touched

    async def _handle_client_session(  # noqa: PLR0917 - amqtt's signature
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        grant = _grant_of(client_session)
        timer: asyncio.TimerHandle | None = None
        if grant is not None:
            delay = max(0.0, grant.disconnect_at - self._gateway.config.clock())
            timer = asyncio.get_running_loop().call_later(
                delay, self._gateway.schedule_disconnect, client_session, "disconnectAfter"
            )
        try:
            await super()._handle_client_session(
                reader, writer, client_session, handler, server, listener_name
            )
        finally:
            if timer is not None:
                timer.cancel()

    # --- SUBSCRIBE, PUBLISH, deliveries ----------------------------------------------

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        return await self._gateway.check_topic(session, topic, action)

    async def _handle_message_delivery(
        self,
        client_session: Session,
        handler: BrokerProtocolHandler,
        wait_deliver: asyncio.Future[Any],
    ) -> bool:
        message = wait_deliver.result()
        if message is not None:
            topic = message.topic or ""
            retain = bool(message.publish_packet and message.publish_packet.retain_flag)
            if not await self._gateway.check_publish(client_session, topic, retain=retain):
                await self._gateway.disconnect(client_session, "publish not authorized")
                return True
            if topic.startswith(RESERVED_TOPIC_PREFIX):
                # amqtt refuses every '$' topic [MQTT-4.7.2-1]; IoT Core lets a policy grant
                # its reserved '$aws/…' topics. Granted (checked above): deliver it.
                await self._broadcast_message(client_session, topic, message.data)
                if retain:
                    await self.retain_message(client_session, topic, message.data, message.qos)
                return True
        if not await super()._handle_message_delivery(client_session, handler, wait_deliver):
            # amqtt stops reading but leaves the connection open: close it properly.
            await self._gateway.disconnect(client_session, "invalid publish")
        return True

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        # amqtt delivers retained messages without a Receive check (and, on reconnect, for
        # every subscription in the broker): deliver only those the policy lets it receive.
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._gateway.check_topic(session, topic, Action.RECEIVE):
                continue
            tasks.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(
                        retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
                    )
                )
            )
        if tasks:
            await asyncio.wait(tasks)

    def listening_port(self, listener_name: str) -> int:
        server = self._servers[listener_name].instance
        sockets = list(server.sockets)
        port: int = sockets[0].getsockname()[1]
        return port


class LocalGateway:
    """The local IoT Core stand-in. ``await start()`` returns the bound ports."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._broker: _IoTBroker | None = None
        self.ports: GatewayPorts | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    async def start(self) -> GatewayPorts:
        certs = self.config.certificates
        host = self.config.host
        broker_config: dict[str, Any] = {
            "listeners": {
                _LISTENER_TCP: {"type": "tcp", "bind": f"{host}:{self.config.tcp_port}"},
                _LISTENER_TLS: {
                    "type": "tcp",
                    "bind": f"{host}:{self.config.tls_port}",
                    "ssl": True,
                    "certfile": str(certs.server_cert),
                    "keyfile": str(certs.server_key),
                },
                _LISTENER_WS: {"type": "ws", "bind": f"{host}:{self.config.ws_port}"},
            },
            "plugins": {},  # no amqtt plugins: the packet logger would log passwords
        }
        self._broker = _IoTBroker(self, broker_config)
        await self._broker.start()
        self.ports = GatewayPorts(
            tcp=self._broker.listening_port(_LISTENER_TCP),
            tls=self._broker.listening_port(_LISTENER_TLS),
            ws=self._broker.listening_port(_LISTENER_WS),
        )
        return self.ports

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.shutdown()

    # --- decisions -------------------------------------------------------------------

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

    async def authorize_connect(
        self,
        session: Session,
        info: ConnectionInfo,
        presigned: _AllOf | None,
        password: bytes | None,
    ) -> _ConnectionGrant | None:
        """The connection's grant, or ``None`` to refuse its CONNECT.

        ``password``: the CONNECT's password as sent (any bytes, like IoT Core passes on).
        """
        client_id = _sent_client_id(session.client_id)
        connection_id = str(uuid.uuid4())
        now = self.config.clock()
        what = f"client {client_id or '-'!r} via {info.transport} (connection {connection_id})"
        if client_id is None:
            log.info("CONNECT refused: no client id, %s", what)
            return None
        if presigned is not None:
            grant = _ConnectionGrant(
                kind="sigv4",
                client_id=client_id,
                connection_id=connection_id,
                policies=presigned,
                disconnect_at=now + _MAX_CONNECTION_SECONDS,
            )
        else:
            username: str | None = session.username
            name = requested_authorizer(username, info)
            if name != self.config.authorizer_name:
                log.info("CONNECT refused: no such custom authorizer, %s", what)
                return None
            event = authorizer_event(
                info,
                username=username,
                password=password,
                client_id=client_id,
                connection_id=connection_id,
            )
            answer = await self._call_authorizer(event)
            if answer is None:
                log.info("CONNECT refused by the authorizer: %s as %r", what, _identity(username))
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
        if not grant.policies.allows(
            "iot:Connect", self._resource("client", client_id), grant.variables
        ):
            log.info("CONNECT refused: policy does not allow iot:Connect, %s", what)
            return None
        if session.will_flag and not self._allows_publish(
            grant, session.will_topic or "", retain=bool(session.will_retain)
        ):
            log.info("CONNECT refused: will topic not allowed, %s", what)
            return None
        log.info("CONNECT accepted (%s): %s", grant.kind, what)
        return grant

    def _allows_publish(self, grant: _ConnectionGrant, topic: str, *, retain: bool) -> bool:
        if not topic or "+" in topic or "#" in topic:
            return False
        resource = self._resource("topic", topic)
        if not grant.policies.allows("iot:Publish", resource, grant.variables):
            return False
        return not retain or grant.policies.allows("iot:RetainPublish", resource, grant.variables)

    async def _current(self, session: Session) -> _ConnectionGrant | None:
        """The session's grant if still valid, refreshed through the authorizer when due."""
        grant = _grant_of(session)
        if grant is None:
            return None
        now = self.config.clock()
        if now >= grant.disconnect_at:
            self.schedule_disconnect(session, "disconnectAfter")
            return None
        if grant.refresh_at is None or now < grant.refresh_at or grant.event is None:
            return grant
        async with grant.lock:
            if grant.refresh_at is not None and self.config.clock() >= grant.refresh_at:
                answer = await self._call_authorizer(grant.event)
                if answer is None:
                    log.info("refresh refused (connection %s)", grant.connection_id)
                    self.schedule_disconnect(session, "refresh refused")
                    setattr(session, _GRANT_ATTRIBUTE, None)
                    return None
                now = self.config.clock()
                grant.policies = _AllOf([PolicySet(answer.policy_documents)])
                grant.refresh_at = now + answer.refresh_after
                if not grant.policies.allows(
                    "iot:Connect", self._resource("client", grant.client_id), grant.variables
                ):
                    self.schedule_disconnect(session, "refreshed policy denies iot:Connect")
                    setattr(session, _GRANT_ATTRIBUTE, None)
                    return None
        return grant

    async def check_topic(self, session: Session, topic: str, action: Action) -> bool:
        grant = await self._current(session)
        if grant is None:
            return False
        if action == Action.SUBSCRIBE:
            iot_action, resource = "iot:Subscribe", self._resource("topicfilter", topic)
        elif action == Action.RECEIVE:
            iot_action, resource = "iot:Receive", self._resource("topic", topic)
        elif action == Action.PUBLISH:
            return self._allows_publish(grant, topic, retain=False)
        else:
            return False
        allowed = grant.policies.allows(iot_action, resource, grant.variables)
        if not allowed:
            log.info(
                "%s denied on %r for client %r (connection %s)",
                iot_action,
                topic,
                grant.client_id,
                grant.connection_id,
            )
        return allowed

    async def check_publish(self, session: Session, topic: str, *, retain: bool) -> bool:
        grant = await self._current(session)
        if grant is None:
            return False
        if self._allows_publish(grant, topic, retain=retain):
            return True
        log.info(
            "iot:Publish denied on %r for client %r (connection %s): disconnecting",
            topic,
            grant.client_id,
            grant.connection_id,
        )
        return False

    async def disconnect(self, session: Session, reason: str) -> None:
        """End a client's connection as IoT Core does when it breaks its policy."""
        broker = self._broker
        if broker is None:
            return
        grant = _grant_of(session)
        log.info(
            "disconnecting client %r: %s",
            session.client_id,
            reason,
            extra={"connection_id": grant.connection_id if grant else None},
        )
        handler = broker._get_handler(session)
        if handler is not None and session.transitions.is_connected():
            await handler.handle_connection_closed()

    def schedule_disconnect(self, session: Session, reason: str) -> None:
        task = asyncio.ensure_future(self.disconnect(session, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
