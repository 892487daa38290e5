"""MQTT over WebSocket: the upgrade at ``/mqtt``, and the stream of MQTT bytes it carries.

:func:`upgrade` reads one HTTP request and accepts it only at ``/mqtt`` with the ``mqtt``
subprotocol; a presigned (SigV4) URL must pass ``GatewayConfig.presigned`` there, and its
policies then bind that one connection. Everything else is refused before any MQTT.
websockets' own logger stays at WARNING: at DEBUG it would log the request line, which
holds a presigned URL's signature and token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from iotauth.access.policy import PolicySet
from iotauth.local.gateway.config import HTTP_REQUEST_LIMIT, GatewayConfig
from iotauth.local.gateway.grants import AllOf
from iotauth.local.gateway.streams import SocketStream
from iotauth.local.iot_events import ConnectionInfo

__all__ = ["Upgraded", "WebSocketStream", "upgrade"]

log = logging.getLogger("iotauth.local.gateway")
# websockets would log request lines (a presigned URL's signature and token) at DEBUG.
_ws_log = logging.getLogger("iotauth.local.gateway.websocket")
_ws_log.setLevel(logging.WARNING)


class WebSocketStream:
    """MQTT bytes over an accepted WebSocket, with websockets' sans-I/O protocol."""

    def __init__(self, protocol: ServerProtocol, raw: SocketStream) -> None:
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


@dataclass(frozen=True, slots=True)
class Upgraded:
    """An accepted upgrade: the MQTT stream, the authorizer's view of it, a presigned grant."""

    stream: WebSocketStream
    info: ConnectionInfo
    presigned: AllOf | None


async def upgrade(
    raw: SocketStream, transport: str, server_name: str | None, config: GatewayConfig
) -> Upgraded | None:
    """Answer the upgrade request on ``raw``; ``None``: refused (``raw`` is closed)."""
    protocol = ServerProtocol(
        subprotocols=[Subprotocol("mqtt")],
        max_size=2 * config.limits.maximum_packet_size,
        logger=_ws_log,
    )
    request = await _read_request(raw, protocol, config.connect_timeout)
    if request is None:
        raw.close()
        return None
    url = urlsplit(request.path)
    if url.path != "/mqtt":
        _respond(raw, protocol, protocol.reject(HTTPStatus.NOT_FOUND, "Not Found\n"))
        return None
    response = protocol.accept(request)
    if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
        _respond(raw, protocol, response)
        return None
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    presigned: AllOf | None = None
    if "X-Amz-Algorithm" in query or "X-Amz-Signature" in query:
        presigned = _verify_presigned(config, request, secure=transport == "wss")
        if presigned is None:
            log.info("websocket upgrade refused: presigned URL not valid")
            _respond(raw, protocol, protocol.reject(HTTPStatus.FORBIDDEN, "Forbidden\n"))
            return None
    protocol.send_response(response)
    stream = WebSocketStream(protocol, raw)
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
    return Upgraded(stream, info, presigned)


async def _read_request(
    raw: SocketStream, protocol: ServerProtocol, timeout: float
) -> Request | None:
    received = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while received < HTTP_REQUEST_LIMIT:
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


def _respond(raw: SocketStream, protocol: ServerProtocol, response: Any) -> None:
    protocol.send_response(response)
    for chunk in protocol.data_to_send():
        if chunk:
            raw.write(chunk)
    raw.close()


def _verify_presigned(config: GatewayConfig, request: Request, *, secure: bool) -> AllOf | None:
    verifier = config.presigned
    if verifier is None:
        return None
    try:
        documents = verifier(request.path, list(request.headers.raw_items()), secure)
    except Exception:  # fail closed, and say nothing about the URL
        log.warning("presigned URL verification failed with an error")
        return None
    if not documents or not all(documents):
        return None
    return AllOf(PolicySet(d) for d in documents)
