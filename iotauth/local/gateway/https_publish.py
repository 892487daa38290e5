"""HTTPS publish on iot:Data-ATS: IoT's ``POST /topics/<topic>?qos=1`` with custom authentication.

Served on the IoT port's TLS listener beside the WebSocket upgrade (a connection whose first
request is a ``POST``; everything else goes on to :mod:`.websocket`). As IoT Core does it
(custom-auth.html "HTTPS", API_iotdata_Publish, custom-auth-lambda.html):

- the authorizer is named by the ``x-amz-customauthorizer-name`` header or query parameter
  (else the endpoint's default; iot:Data-ATS has none here), and with token signing on the
  token (``TokenKeyName``) and ``x-amz-customauthorizer-signature`` come in headers or the
  query string and are verified before the authorizer is called;
- the authorizer gets ``protocols: ["tls", "http"]``, the TLS server name, every header and
  the query string (no MQTT part, no client id); its answer is checked as for MQTT;
- the policy must allow ``iot:Publish`` on the topic (``iot:RetainPublish`` too with
  ``retain=true``); HTTP has no connection to allow, so ``iot:Connect`` is not asked (the
  custom authorizer over HTTPS "only supports publish operations");
- the message goes to the engine as a PUBLISH of its own (QoS as asked, 0 or 1), so every
  subscriber gets it through its own ``iot:Receive`` check;
- answers: 200 ``{"message":"OK","traceId":…}``; 401 ``Unauthorized`` (no authorizer, no or
  a bad token signature, refused or failed authorizer); 403 ``Forbidden`` (the policy
  denies the topic); 400 (bad topic, QoS, body); 404 (another path); 413 (a payload over
  128 KB); 503 (the engine did not take it). One request per connection.

Headers, query strings, tokens and signatures are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from iotauth.access.policy import PolicySet
from iotauth.local import enforcement
from iotauth.local.engine import open_engine
from iotauth.local.gateway.config import HTTP_REQUEST_LIMIT, READ_SIZE, GatewayConfig
from iotauth.local.gateway.grants import AllOf, Authorization
from iotauth.local.gateway.streams import SocketStream
from iotauth.local.iot_events import (
    AUTHORIZER_NAME_PARAMETER,
    ConnectionInfo,
    http_publish_event,
)
from iotauth.local.mqtt.codec import (
    PUBACK,
    Ack,
    Connack,
    Connect,
    Disconnect,
    PacketReader,
    Publish,
    decode_packet,
    encode_packet,
)
from iotauth.local.mqtt.reasons import Reason
from iotauth.local.token_signing import signed_token

__all__ = ["PublishGateway", "serve_or_pass"]

log = logging.getLogger("iotauth.local.gateway")

TOPICS_PREFIX = "/topics/"
ENGINE_TIMEOUT = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_DRAIN_FACTOR = 4  # an oversized body read before the 413, in multiples of the payload quota
_REASONS |= {404: "Not Found", 411: "Length Required", 413: "Request Entity Too Large"}
_REASONS |= {503: "Service Unavailable"}


class PublishGateway(Protocol):
    """What HTTPS publish needs of the gateway: its settings and its engine."""

    config: GatewayConfig

    @property
    def engine_socket(self) -> Path: ...


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def serve_or_pass(
    gateway: PublishGateway,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    server_name: str | None,
) -> SocketStream | None:
    """Serve an HTTPS publish and return ``None``; any other connection comes back as a
    stream that replays what was read (``None`` too when it closed or said nothing)."""
    try:
        first = await asyncio.wait_for(reader.read(READ_SIZE), gateway.config.connect_timeout)
    except (TimeoutError, ConnectionError, OSError):
        first = b""
    if not first:
        with contextlib.suppress(Exception):
            writer.close()
        return None
    if not first.startswith(b"POST "):
        return SocketStream(reader, writer, initial=first)
    status, body = await _serve(gateway, reader, first, server_name)
    _respond(writer, status, body)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.drain(), 5)
    with contextlib.suppress(Exception):
        writer.close()
    return None


async def _read_request(
    reader: asyncio.StreamReader, first: bytes, timeout: float, max_body: int
) -> HttpRequest:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    data = bytearray(first)

    async def more() -> bytes:
        chunk = await asyncio.wait_for(reader.read(READ_SIZE), max(0.0, deadline - loop.time()))
        if not chunk:
            raise _BadRequest(400)
        return chunk

    while b"\r\n\r\n" not in data:
        if len(data) > HTTP_REQUEST_LIMIT:
            raise _BadRequest(400)
        data += await more()
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    if len(head) > HTTP_REQUEST_LIMIT:
        raise _BadRequest(400)
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise _BadRequest(400) from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest(400)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400)
        headers.append((name, value.strip()))
    request = HttpRequest(method, target, tuple(headers), b"")
    if request.header("transfer-encoding") is not None:
        raise _BadRequest(411)  # a publish's body is sent with its length
    lengths = {v for k, v in headers if k.lower() == "content-length"}
    if len(lengths) > 1:
        raise _BadRequest(400)
    try:
        length = int(lengths.pop()) if lengths else 0
    except ValueError:
        raise _BadRequest(400) from None
    if length < 0:
        raise _BadRequest(400)
    if length > max_body:
        # Read (and drop) a body of up to a few times the quota before answering, so the
        # client gets its 413 instead of a reset mid-send; a larger one is not waited for.
        received = len(rest)
        if length <= _DRAIN_FACTOR * max_body:
            with contextlib.suppress(_BadRequest, TimeoutError, ConnectionError, OSError):
                while received < length:
                    received += len(await more())
        raise _BadRequest(413)
    body = bytearray(rest)
    while len(body) < length:
        body += await more()
    return HttpRequest(method, target, tuple(headers), bytes(body[:length]))


async def _serve(
    gateway: PublishGateway, reader: asyncio.StreamReader, first: bytes, server_name: str | None
) -> tuple[int, dict[str, str]]:
    trace = str(uuid.uuid4())
    config = gateway.config

    def answer(status: int) -> tuple[int, dict[str, str]]:
        return status, {"message": _REASONS.get(status, "Error"), "traceId": trace}

    try:
        request = await _read_request(
            reader, first, config.connect_timeout, config.limits.payload_bytes
        )
    except _BadRequest as bad:
        return answer(bad.status)
    except (TimeoutError, ConnectionError, OSError):
        return answer(400)
    url = urlsplit(request.target)
    if request.method != "POST" or not url.path.startswith(TOPICS_PREFIX):
        return answer(404)
    topic = unquote(url.path[len(TOPICS_PREFIX) :])
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    qos_text, retain_text = query.get("qos", "0"), query.get("retain", "false").lower()
    if qos_text not in ("0", "1") or retain_text not in ("true", "false"):
        return answer(400)
    qos, retain = int(qos_text), retain_text == "true"
    info = ConnectionInfo(
        "https",
        server_name=server_name,
        http_headers=dict(request.headers),
        query_string=f"?{url.query}" if url.query else "",
    )
    what = f"HTTPS publish to {topic!r} (trace {trace})"
    requested = info.header(AUTHORIZER_NAME_PARAMETER) or query.get(AUTHORIZER_NAME_PARAMETER)
    chosen = config.data_endpoint.authorizer_for(requested, frozenset({config.authorizer_name}))
    if chosen is None:
        log.info("refused: no such custom authorizer, %s", what)
        return answer(401)
    authorization = Authorization(config)
    signed = signed_token(authorization.token_verifier, None, info, what)
    if not signed.allowed:
        return answer(401)
    event = http_publish_event(
        info,
        token=signed.token,
        signature_verified=signed.signature_verified,
        connection_id=trace,
    )
    granted = await authorization.call_authorizer(event)
    if granted is None:
        log.info("refused by the authorizer: %s", what)
        return answer(401)
    grant = enforcement.Grant(
        AllOf([PolicySet(granted.policy_documents)]), client_id="", arn=config.arn
    )
    verdict = enforcement.publish_verdict(
        grant,
        version=5,
        topic=topic,
        qos=qos,
        retain=retain,
        payload_size=len(request.body),
        limits=config.limits,
    )
    if verdict.outcome is not enforcement.Outcome.FORWARD:
        log.info("refused: %s, %s", verdict.why, what)
        return answer(403 if verdict.reason == Reason.NOT_AUTHORIZED else 400)
    if not await _deliver(gateway.engine_socket, Publish(topic, request.body, qos, retain)):
        log.warning("the engine did not take an %s", what)
        return answer(503)
    log.info("delivered: %s", what)
    return answer(200)


async def _deliver(socket_path: Path, message: Publish) -> bool:
    """Publish ``message`` to the engine as a client of its own; True once it took it."""
    client_id = f"iotauth-https-{uuid.uuid4().hex}"
    try:
        engine_reader, engine_writer = await asyncio.wait_for(
            open_engine(socket_path), ENGINE_TIMEOUT
        )
    except (TimeoutError, OSError):
        return False
    packets = PacketReader()
    try:
        engine_writer.write(encode_packet(Connect(client_id, version=4, keep_alive=0), 4))
        connack = await _next_packet(engine_reader, packets)
        if not isinstance(connack, Connack) or connack.reason_code != 0:
            return False
        packet_id = 1 if message.qos else None
        publish = Publish(
            message.topic, message.payload, message.qos, message.retain, packet_id=packet_id
        )
        engine_writer.write(encode_packet(publish, 4))
        if packet_id is not None:
            ack = await _next_packet(engine_reader, packets)
            if not (isinstance(ack, Ack) and ack.kind == PUBACK and ack.packet_id == packet_id):
                return False
        engine_writer.write(encode_packet(Disconnect(0), 4))
        await asyncio.wait_for(engine_writer.drain(), ENGINE_TIMEOUT)
        return True
    except (TimeoutError, OSError, ValueError):
        return False
    finally:
        with contextlib.suppress(Exception):
            engine_writer.close()


async def _next_packet(reader: asyncio.StreamReader, packets: PacketReader) -> object:
    while True:
        for first, body in packets.packets():
            return decode_packet(first, body, 4)
        data = await asyncio.wait_for(reader.read(READ_SIZE), ENGINE_TIMEOUT)
        if not data:
            return None
        packets.feed(data)


def _respond(writer: asyncio.StreamWriter, status: int, body: Mapping[str, str]) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"x-amzn-RequestId: {body.get('traceId', '')}\r\n"
        "Connection: close\r\n\r\n"
    )
    with contextlib.suppress(Exception):
        writer.write(head.encode("ascii") + payload)
