"""Hostile input to the stand-in (issue 16, items 5-7), through a real gateway on loopback
with a scripted authorizer and its own mosquitto:

- a flood of unauthenticated CONNECTs made of 149 KB of empty User Properties is refused
  (CONNACK 0x95) without an authorizer call, and a connected device's PINGREQ is still
  answered within 1 s while 8 senders keep it up;
- a SUBSCRIBE of 15,000 filters (IoT allows 8) is refused once, in one log line, and the
  connection ends (MQTT 5: DISCONNECT 0x97; MQTT 3.1.1: closed, no SUBACK);
- keep-alive counts whole packets: a client trickling a partial packet is disconnected
  within 1.5x its keep-alive (the minimum is lowered to 1 s here, through ``Limits``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext, Scope, policy_documents
from iotauth.local.certs import generate_certificates
from iotauth.local.enforcement import LIMITS
from iotauth.local.gateway import GatewayConfig, GatewayPorts, LocalGateway
from iotauth.local.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    Ping,
    Properties,
    Subscribe,
    encode_packet,
)
from tests.e2e.mqtt_raw import RawClient

pytestmark = pytest.mark.e2e

ARN = ArnContext("aws", "us-east-1", "123456789012")
NAME = "iotauth"
FLOODERS = 8
FLOOD_SECONDS = 4.0
PING_BOUND = 1.0  # the bound: a PINGREQ answered within 1 s while flooded


@dataclass
class Running:
    ports: GatewayPorts
    asked: list[str]  # usernames the authorizer was called for


def _authorizer(asked: list[str]) -> Any:
    def authorize(event: dict[str, Any]) -> dict[str, Any]:
        mqtt = event["protocolData"]["mqtt"]
        user = mqtt["username"].split("?", 1)[0]
        asked.append(user)
        return {
            "isAuthenticated": True,
            "principalId": "p" + user.replace("-", ""),
            "policyDocuments": policy_documents(Scope.for_identity(user), ARN),
            "disconnectAfterInSeconds": 3600,
            "refreshAfterInSeconds": 300,
        }

    return authorize


@pytest.fixture(scope="module")
def gateway() -> Iterator[Running]:
    asked: list[str] = []
    certs = generate_certificates(Path(tempfile.mkdtemp(prefix="iotauth-test-")))
    config = GatewayConfig(
        authorizer=_authorizer(asked),
        authorizer_name=NAME,
        arn=ARN,
        certificates=certs,
        limits=replace(LIMITS, keep_alive_min=1),  # test-only: a keep-alive of seconds
    )
    server = LocalGateway(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ports = asyncio.run_coroutine_threadsafe(server.start(), loop).result(15)
    try:
        yield Running(ports, asked)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _connect(user: str, version: int, keep_alive: int = 60, **fields: Any) -> Connect:
    return Connect(
        client_id=user,
        version=version,
        username=f"{user}?x-amz-customauthorizer-name={NAME}",
        password=b"pw",
        keep_alive=keep_alive,
        **fields,
    )


def _connected(port: int, user: str, version: int, keep_alive: int = 60) -> RawClient:
    client = RawClient(port, version=version)
    assert client.connect(_connect(user, version, keep_alive)).reason_code == 0
    return client


# --- item 5: the CONNECT flood --------------------------------------------------------------

HOSTILE_PAIRS = 29_800  # 149 KB of empty User Properties: under the 146 KB packet limit


def _hostile_connect(user: str) -> bytes:
    empty = Properties(tuple((0x26, ("", "")) for _ in range(HOSTILE_PAIRS)))
    packet = encode_packet(_connect(user, 5, properties=empty), 5)
    assert len(packet) < LIMITS.maximum_packet_size
    return packet


def _flood(port: int, packet: bytes, stop: threading.Event, answers: list[bytes]) -> None:
    for _ in range(10_000):  # bounded: stops at ``stop`` long before this
        if stop.is_set():
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(packet)
                answer = b""
                while len(answer) < 64:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    answer += chunk
                answers.append(answer)
        except OSError as exc:
            answers.append(type(exc).__name__.encode())


def test_a_connect_flood_does_not_stall_a_connected_device(gateway: Running) -> None:
    device = _connected(gateway.ports.tcp, "dev-ping", 4)
    packet = _hostile_connect("flood")
    stop = threading.Event()
    answers: list[bytes] = []
    senders = [
        threading.Thread(target=_flood, args=(gateway.ports.tcp, packet, stop, answers))
        for _ in range(FLOODERS)
    ]
    for sender in senders:
        sender.start()
    latencies: list[float] = []
    try:
        time.sleep(0.3)  # the flood is under way
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            start = time.monotonic()
            device.send(Ping(12))
            answer = device.receive(timeout=30)
            latencies.append(time.monotonic() - start)
            assert answer == Ping(13), answer
            time.sleep(0.05)
    finally:
        stop.set()
        for sender in senders:
            sender.join(60)
        device.close()
    worst = max(latencies)
    print(
        f"\nPINGREQ under a flood of {FLOODERS} senders: {len(latencies)} pings, worst "
        f"{worst * 1000:.1f} ms, median {statistics.median(latencies) * 1000:.1f} ms; "
        f"{len(answers)} hostile CONNECTs answered"
    )
    assert answers, "the flood never got going"
    assert worst < PING_BOUND
    assert set(answers) == {encode_packet(Connack(0x95), 5)}  # Packet too large
    assert "flood" not in gateway.asked  # refused before anyone authenticates it


# --- item 6: 15,000 filters in one SUBSCRIBE ------------------------------------------------


@pytest.mark.parametrize("version", [5, 4])
def test_a_subscribe_over_8_filters_ends_the_connection_in_one_log_line(
    gateway: Running, version: int, caplog: pytest.LogCaptureFixture
) -> None:
    user = f"dev-many{version}"
    client = _connected(gateway.ports.tcp, user, version)
    filters = tuple((str(i), 1) for i in range(15_000))  # short: the packet is 110 KB
    time.sleep(0.2)  # the CONNECT's own log line is written just after its CONNACK
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="iotauth.local.gateway"):
        client.send(Subscribe(1, filters))
        seen = client.until_closed()
        time.sleep(0.2)  # the gateway's last lines are written after it closes
    client.close()
    assert seen == ([Disconnect(0x97)] if version == 5 else [])  # Quota exceeded; no SUBACK
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "iotauth.local.gateway" and not r.getMessage().startswith("CONNECT")
    ]
    about = [line for line in lines if "filter" in line.lower()]
    assert len(about) == 1, about[:3]
    assert len(lines) <= 2, lines[:5]  # that line, and the disconnect


# --- item 7: keep-alive by whole packets ----------------------------------------------------


def test_a_trickled_partial_packet_does_not_keep_the_connection_alive(gateway: Running) -> None:
    keep_alive = 2  # seconds: IoT's 1.5x rule closes the connection by 3 s
    bound = 1.5 * keep_alive
    client = _connected(gateway.ports.tcp, "dev-trickle", 5, keep_alive)
    connected = time.monotonic()
    partial = b"\x30\x7f" + b"x" * 127  # a PUBLISH announcing 127 bytes, sent 1 by 1
    seen: list[object] = []
    closed_after = None
    try:
        for byte in partial[:12]:  # 12 s at most
            try:
                client.send_raw(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - connected
                break
            packet = client.receive(timeout=1.0)  # one byte a second
            if packet is not None:
                seen.append(packet)
            if client.closed:
                closed_after = time.monotonic() - connected
                break
    finally:
        client.close()
    assert closed_after is not None, "still connected after 12 s of a trickled packet"
    assert closed_after < bound + 1.0, closed_after
    assert seen in ([Disconnect(0x8D)], [])  # Keep alive timeout, if it arrived before the reset


def test_whole_packets_keep_the_connection_alive(gateway: Running) -> None:
    client = _connected(gateway.ports.tcp, "dev-pinging", 5, keep_alive=2)
    try:
        for _ in range(5):  # 5 s: past 1.5x the keep-alive
            client.send(Ping(12))
            assert client.receive(timeout=2) == Ping(13)
            time.sleep(1)
        assert not client.closed
    finally:
        client.close()
