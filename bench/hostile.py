"""Hostile input to the local stand-in (issue 16): what one flood CONNECT costs, and what a
flood of them does to a connected device.

- Decode: ms per CONNECT made of 149 KB of empty User Properties (29,800 pairs, under the
  146 KB Maximum Packet Size), decoded in full (no budget: what the gateway did before) and
  within IoT's budget (:attr:`~iotauth.local.enforcement.Limits.decode_budget`: refused
  with PacketTooLarge at the pair that passes 8 KB on the wire).
- Flood: a gateway on loopback (scripted authorizer, its own mosquitto); 8 senders send that
  CONNECT in a loop for a few seconds while one connected device sends PINGREQ every 50 ms:
  PINGREQ → PINGRESP latency (median, worst) and the flood CONNECTs answered.

A test harness, not a product: figures only, no goal, never assertions.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SENDERS = 8
FLOOD_SECONDS = 3.0
PAIRS = 29_800


def _hostile_connect(version: int = 5) -> bytes:
    from iotauth.local.mqtt.codec import Connect, Properties, encode_packet

    empty = Properties(tuple((0x26, ("", "")) for _ in range(PAIRS)))
    connect = Connect(
        client_id="flood",
        version=version,
        username="flood?x-amz-customauthorizer-name=iotauth",
        password=b"pw",
        properties=empty,
    )
    return encode_packet(connect, version)


def decode_costs() -> None:
    from iotauth.local.enforcement import LIMITS
    from iotauth.local.mqtt.codec import decode_packet, split_packets

    packet = _hostile_connect()
    ((first, body),) = split_packets(packet)

    def ms(budgeted: bool) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            try:
                if budgeted:
                    decode_packet(first, body, 5, LIMITS.decode_budget)
                else:
                    decode_packet(first, body, 5)
            except ValueError:
                pass
            best = min(best, time.perf_counter() - start)
        return best * 1000

    print(f"hostile CONNECT: {len(packet):,} bytes, {PAIRS:,} empty User Properties")
    print(f"  decoded in full (no budget)   {ms(False):8.2f} ms  (best of 5)")
    print(f"  within IoT's budget (refused) {ms(True):8.2f} ms  (best of 5)")


def _flood(port: int, packet: bytes, stop: threading.Event, answered: list[int]) -> None:
    import socket

    for _ in range(100_000):  # bounded; ``stop`` ends it first
        if stop.is_set():
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(packet)
                while sock.recv(64):
                    pass
            answered.append(1)
        except OSError:
            pass


def flood() -> None:
    from iotauth.access.scoping import ArnContext, Scope, policy_documents
    from iotauth.local.certs import generate_certificates
    from iotauth.local.gateway import GatewayConfig, LocalGateway
    from iotauth.local.mqtt.codec import Connect, Ping
    from tests.e2e.mqtt_raw import RawClient

    arn = ArnContext("aws", "us-east-1", "123456789012")

    def authorizer(event: dict[str, Any]) -> dict[str, Any]:
        user = event["protocolData"]["mqtt"]["username"].split("?", 1)[0]
        return {
            "isAuthenticated": True,
            "principalId": "p" + user.replace("-", ""),
            "policyDocuments": policy_documents(Scope.for_identity(user), arn),
            "disconnectAfterInSeconds": 3600,
            "refreshAfterInSeconds": 300,
        }

    certs = generate_certificates(Path(tempfile.mkdtemp(prefix="iotauth-bench-")))
    config = GatewayConfig(
        authorizer=authorizer,
        authorizer_name="iotauth",
        arn=arn,
        certificates=certs,
    )
    gateway = LocalGateway(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ports = asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(15)
    try:
        device = RawClient(ports.tcp, version=4)
        named = "dev-ping?x-amz-customauthorizer-name=iotauth"
        device.connect(Connect("dev-ping", version=4, username=named, password=b"pw"))
        stop, answered = threading.Event(), list[int]()
        packet = _hostile_connect()
        senders = [
            threading.Thread(target=_flood, args=(ports.tcp, packet, stop, answered))
            for _ in range(SENDERS)
        ]
        for sender in senders:
            sender.start()
        latencies: list[float] = []
        time.sleep(0.3)
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            start = time.monotonic()
            device.send(Ping(12))
            if device.receive(timeout=60) is None:
                break
            latencies.append(time.monotonic() - start)
            time.sleep(0.05)
        stop.set()
        for sender in senders:
            sender.join(60)
        device.close()
        if latencies:
            median, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
            print(
                f"flood: {SENDERS} senders for {FLOOD_SECONDS:.0f} s, {len(answered)} hostile "
                f"CONNECTs answered; PINGREQ x{len(latencies)}: median {median:.1f} ms, "
                f"worst {worst:.1f} ms"
            )
        else:
            print("flood: the device got no PINGRESP")
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def main() -> None:
    decode_costs()
    flood()


if __name__ == "__main__":
    main()
