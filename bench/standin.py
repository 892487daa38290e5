"""The local stand-in's costs: its policy checks, and traffic through it next to the bare engine.

- Policy checks: µs per decision of :class:`iotauth.access.policy.PolicySet` for an ordinary grant
  and for grants with many ``*`` against a long topic that does not match — the shape that
  made the old backtracking-regex matcher take seconds to minutes on the gateway's event
  loop.
- Traffic, in the same run: MQTT 3.1.1 connects/s (CONNECT → CONNACK → DISCONNECT, 10 at
  a time) and QoS 1 messages/s (one publisher with 20 in flight, one subscriber) through
  the stand-in's plain-TCP listener (gateway: authorizer per CONNECT against moto's
  DynamoDB, policy checks per packet) and through the bare engine: the same mosquitto
  configuration reached directly on its Unix socket, as the gateway reaches it.

A test harness, not a product: figures only, no goal, never assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import struct
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ARN = "arn:aws:iot:us-east-1:123456789012"


def _per_call_us(call: Callable[[], object], seconds: float = 0.3) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            call()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / n * 1e6


def _regex_of(pattern: str) -> re.Pattern[str]:
    """What the evaluator used to do: IAM wildcards as a backtracking regex."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def policy_checks() -> None:
    from iotauth.access import policy
    from iotauth.access.policy import PolicySet

    def policies(resource: str) -> PolicySet:
        statement = {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": resource}
        return PolicySet([json.dumps({"Version": "2012-10-17", "Statement": [statement]})])

    prefix = f"{ARN}:topicfilter/"
    topic = prefix + "a" * 239 + "b"  # IoT's topic limit is 256 bytes
    cases = [("ordinary grant 'sensor-1/*'", f"{prefix}sensor-1/*")]
    # Many '*' and a piece that is missing: every split of the 'a's is a candidate for a
    # backtracking matcher.
    for stars in (2, 3, 25, 100):
        cases.append((f"{stars + 2} '*', no match", prefix + "*a" * stars + "*c*b"))
    cases.append(("50 '*a?', no match", prefix + "*a?" * 50 + "*c*b"))
    print("policy check, µs (a 240-character topic filter; old regex: the matcher it replaced)")
    print(f"  {'grant':<28} {'decision':>10} {'matcher':>10} {'old regex':>12}")
    for label, pattern in cases:
        policy_set = policies(pattern)
        decision = _per_call_us(lambda p=policy_set: p.allows("iot:Subscribe", topic))
        glob = policy._compiled(pattern)
        matcher = _per_call_us(lambda g=glob: g.matches(topic))
        old = "(not run)"  # grows like len(topic) ** stars
        if pattern.count("*") <= 5:
            regex = _regex_of(pattern)
            old = f"{_per_call_us(lambda r=regex: r.fullmatch(topic), 0.5):.1f}"
        print(f"  {label:<28} {decision:10.1f} {matcher:10.1f} {old:>12}")


# --- traffic: a minimal MQTT 3.1.1 client (asyncio), so the client costs little ----------


def _string(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def _packet(kind: int, body: bytes) -> bytes:
    size, length = bytearray(), len(body)
    while True:
        byte, length = length % 128, length // 128
        size.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind]) + bytes(size) + body


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return kind, await reader.readexactly(length)


@dataclass(frozen=True)
class _Endpoint:
    host: str | None  # None: a Unix socket at ``path``
    port: int
    path: Path | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.path is not None:
            return await asyncio.open_unix_connection(str(self.path))
        return await asyncio.open_connection(self.host, self.port)


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(
        cls, where: _Endpoint, client_id: str, username: str | None, password: str | None
    ) -> _Client:
        reader, writer = await where.open()
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password else 0)
        body = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
        body += _string(client_id.encode())
        if username is not None:
            body += _string(username.encode())
        if password:
            body += _string(password.encode())
        writer.write(_packet(0x10, body))
        kind, answer = await asyncio.wait_for(_read_packet(reader), 10)
        if kind != 0x20 or answer[1] != 0:
            raise RuntimeError(f"CONNECT refused: {answer.hex()}")
        return cls(reader, writer)

    async def subscribe(self, topic: str) -> None:
        self.writer.write(_packet(0x82, struct.pack("!H", 1) + _string(topic.encode()) + b"\0"))
        kind, answer = await asyncio.wait_for(_read_packet(self.reader), 10)
        if kind != 0x90 or answer[2] & 0x80:
            raise RuntimeError(f"SUBSCRIBE refused: {answer.hex()}")

    async def close(self) -> None:
        self.writer.write(b"\xe0\x00")
        self.writer.close()
        await self.writer.wait_closed()


@dataclass(frozen=True)
class _Identity:
    client_id: str
    username: str | None
    password: str | None


async def _connects_per_second(
    where: _Endpoint, identities: list[_Identity], total: int, parallel: int = 10
) -> float:
    async def worker(identity: _Identity, count: int) -> None:
        for _ in range(count):
            client = await _Client.connect(
                where, identity.client_id, identity.username, identity.password
            )
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i, total // parallel) for i in identities[:parallel]))
    return total / (time.perf_counter() - start)


async def _messages_per_second(
    where: _Endpoint, publisher: _Identity, subscriber: _Identity, topic: str, total: int
) -> float:
    sub = await _Client.connect(
        where, subscriber.client_id, subscriber.username, subscriber.password
    )
    await sub.subscribe(topic)
    pub = await _Client.connect(where, publisher.client_id, publisher.username, publisher.password)
    payload = b"x" * 64
    window = asyncio.Semaphore(20)  # QoS 1 messages in flight

    async def receive() -> None:
        got = 0
        while got < total:
            kind, _ = await _read_packet(sub.reader)
            if kind & 0xF0 == 0x30:
                got += 1

    async def acks() -> None:
        for _ in range(total):
            kind, _ = await _read_packet(pub.reader)
            if kind == 0x40:
                window.release()

    start = time.perf_counter()
    receiving, acking = asyncio.create_task(receive()), asyncio.create_task(acks())
    for n in range(total):
        await window.acquire()
        body = _string(topic.encode()) + struct.pack("!H", n % 65535 + 1) + payload
        pub.writer.write(_packet(0x32, body))
        if n % 100 == 0:
            await pub.writer.drain()
    await asyncio.wait_for(asyncio.gather(receiving, acking), 120)
    elapsed = time.perf_counter() - start
    await pub.close()
    await sub.close()
    return total / elapsed


def traffic(connects: int = 200, messages: int = 5000) -> None:
    import boto3

    from iotauth.identities.credentials import issue_secret
    from iotauth.identities.records import IdentityRecord
    from iotauth.identities.store import DynamoDBStore
    from iotauth.local.engine import MosquittoEngine
    from iotauth.local.stack import LocalPorts, LocalStack

    print(
        f"traffic, MQTT 3.1.1 over loopback: {connects} connects 10 at a time, "
        f"{messages} QoS 1 messages of 64 bytes"
    )
    rows: list[tuple[str, float, float]] = []
    quiet = io.StringIO()  # the handlers' Powertools logs and metrics, not for the report
    with (
        contextlib.redirect_stdout(quiet),  # Powertools prints metrics to stdout
        warnings.catch_warnings(),
        LocalStack(LocalPorts.any_free(), handler_logs=quiet) as running,
    ):
        warnings.simplefilter("ignore")
        info = running.info
        client = boto3.client(
            "dynamodb",
            endpoint_url=info.aws_endpoint_url,
            region_name=info.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        store = DynamoDBStore(info.table_name, client=client)
        auth = f"?x-amz-customauthorizer-name={info.authorizer_name}"

        def device(name: str, subscribe: tuple[str, ...] = ()) -> _Identity:
            (secret, verifier), now = issue_secret(), int(time.time())
            store.add_identity(
                IdentityRecord(
                    username=name,
                    kind="secret",
                    verifier=verifier,
                    subscribe=subscribe,
                    created_at=now,
                    updated_at=now,
                )
            )
            return _Identity(name, name + auth, secret)

        fleet = [device(f"bench-{n}") for n in range(10)]
        publisher = device("bench-pub")
        subscriber = device("bench-sub", subscribe=("bench-pub/data",))
        where = _Endpoint("127.0.0.1", info.mqtt_port)
        rows.append(
            (
                "stand-in (gateway + engine)",
                asyncio.run(_connects_per_second(where, fleet, connects)),
                asyncio.run(
                    _messages_per_second(where, publisher, subscriber, "bench-pub/data", messages)
                ),
            )
        )
    engine = MosquittoEngine()
    try:
        socket_path = engine.start()
        bare = _Endpoint(None, 0, socket_path)
        anonymous = [_Identity(f"bare-{n}", None, None) for n in range(10)]
        rows.append(
            (
                "bare engine (mosquitto)",
                asyncio.run(_connects_per_second(bare, anonymous, connects)),
                asyncio.run(
                    _messages_per_second(
                        bare,
                        _Identity("bare-pub", None, None),
                        _Identity("bare-sub", None, None),
                        "bench/data",
                        messages,
                    )
                ),
            )
        )
    finally:
        engine.stop()
    print(f"  {'':<30} {'connects/s':>12} {'messages/s':>12}")
    for label, connects_s, messages_s in rows:
        print(f"  {label:<30} {connects_s:12.0f} {messages_s:12.0f}")


def main() -> None:
    policy_checks()
    traffic()


if __name__ == "__main__":
    main()
