"""The gateway itself: its listeners, its engine, and its registry of live connections.

:class:`LocalGateway` binds the four listeners (tcp, tls: the device endpoint; iot, ws:
``iot:Data-ATS``), starts mosquitto unless given an engine socket, and hands each accepted
connection to a :class:`~.session.Session`. Port and ALPN decide what a connection is.
It also keeps one live connection per client id, for IoT's DeleteConnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iotauth.local.domain import NO_DOMAIN, DomainConfiguration
from iotauth.local.engine import MosquittoEngine, open_engine
from iotauth.local.gateway import https_publish, websocket
from iotauth.local.gateway.config import READ_SIZE, GatewayConfig, GatewayPorts
from iotauth.local.gateway.grants import AllOf, Authorization, ConnectionGrant, HoldsGrant
from iotauth.local.gateway.session import Session
from iotauth.local.gateway.streams import SocketStream, Stream
from iotauth.local.gateway.tls import tls_context, tls_facts
from iotauth.local.iot_events import ConnectionInfo
from iotauth.local.mqtt.codec import Connect, Disconnect, encode_packet
from iotauth.local.mqtt.reasons import Reason

__all__ = ["LocalGateway"]

log = logging.getLogger("iotauth.local.gateway")


class LocalGateway:
    """The local IoT Core stand-in. ``await start()`` returns the bound ports."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.ports: GatewayPorts | None = None
        self._authorization = Authorization(config)
        self._servers: list[asyncio.Server] = []
        self._engine: MosquittoEngine | None = None
        self._engine_socket: Path | None = config.engine_socket
        self._tasks: set[asyncio.Future[Any]] = set()
        self._live: dict[str, Session] = {}
        self._sessions: set[Session] = set()
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
        mqtt_tls = tls_context(certs, ["mqtt"])
        iot_tls = tls_context(certs, ["mqtt", "http/1.1"])
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

    # -- decisions (see .grants) ------------------------------------------------------------

    async def authorize(
        self,
        connect: Connect,
        info: ConnectionInfo,
        presigned: AllOf | None,
        endpoint: DomainConfiguration = NO_DOMAIN,
    ) -> ConnectionGrant | None:
        """The connection's grant, or ``None`` to refuse its CONNECT."""
        return await self._authorization.authorize(connect, info, presigned, endpoint)

    async def current(self, session: HoldsGrant) -> ConnectionGrant | None:
        """The session's grant if still valid, refreshed through the authorizer when due."""
        return await self._authorization.current(session)

    # -- connection registry ------------------------------------------------------------------

    async def register(self, session: Session) -> None:
        """One client id, one connection: the newest wins, the previous one is ended."""
        previous = self._live.get(session.client_id)
        self._live[session.client_id] = session
        if previous is not None and previous is not session:
            await previous.end(
                Reason.SESSION_TAKEN_OVER, "a new connection took over its client id"
            )

    def forget(self, session: Session) -> None:
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
                await asyncio.wait_for(reader.read(READ_SIZE), 5)
                writer.write(encode_packet(Disconnect(0), version))
                await writer.drain()
            finally:
                writer.close()

    # -- listeners ----------------------------------------------------------------------------

    async def _run_session(
        self,
        stream: Stream,
        info: ConnectionInfo,
        presigned: AllOf | None,
        endpoint: DomainConfiguration,
    ) -> None:
        session = Session(self, stream, info, presigned, endpoint)
        self._sessions.add(session)
        await session.run()

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = SocketStream(reader, writer)
        await self._run_session(stream, ConnectionInfo("tcp"), None, self.config.domain)

    async def _on_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The device endpoint over TLS."""
        alpn, server_name = tls_facts(writer)
        stream = SocketStream(reader, writer)
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
        alpn, server_name = tls_facts(writer)
        stream = SocketStream(reader, writer)
        endpoint = self.config.data_endpoint
        if alpn == "mqtt" or endpoint.custom_auth_without_alpn:
            info = ConnectionInfo("tls", server_name=server_name)
            await self._run_session(stream, info, None, endpoint)
            return
        request = await https_publish.serve_or_pass(self, reader, writer, server_name)
        if request is not None:  # not an HTTPS publish: the WebSocket upgrade
            await self._websocket(request, "wss", server_name)

    async def _on_ws(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._websocket(SocketStream(reader, writer), "ws", None)

    async def _websocket(self, raw: SocketStream, transport: str, server_name: str | None) -> None:
        upgraded = await websocket.upgrade(raw, transport, server_name, self.config)
        if upgraded is None:
            return
        await self._run_session(
            upgraded.stream, upgraded.info, upgraded.presigned, self.config.data_endpoint
        )
