"""Endpoint settings with a scripted authorizer: a domain configuration's default
authorizer (names none, mangled by SDK v1, override), custom authentication without ALPN,
and keep-alive enforcement (IoT's 1.5x rule, with a shortened minimum so a test is quick)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext, Scope, policy_documents
from iotauth.local.certs import generate_certificates
from iotauth.local.domain import DomainConfiguration
from iotauth.local.enforcement import LIMITS
from iotauth.local.gateway import GatewayConfig, GatewayPorts, LocalGateway
from iotauth.local.mqtt.codec import (
    Connect,
    Disconnect,
    PacketReader,
    Ping,
    Publish,
    Suback,
    Subscribe,
    decode_packet,
    encode_packet,
)
from tests.e2e.mqtt_raw import RawClient

pytestmark = pytest.mark.e2e

ARN = ArnContext("aws", "us-east-1", "123456789012")
NAME = "iotauth"
DEFAULT_DOMAIN = DomainConfiguration(
    default_authorizer=NAME,
    allow_authorizer_override=True,
    authentication_type="CUSTOM_AUTH",
    application_protocol="SECURE_MQTT",
)


def allow(event: dict[str, Any]) -> dict[str, Any]:
    mqtt = event["protocolData"]["mqtt"]
    user = mqtt["username"].split("?", 1)[0].split("&", 1)[0]
    if base64.b64decode(mqtt.get("password", "")) != f"pw-{user}".encode():
        return {"isAuthenticated": False}
    documents = policy_documents(Scope.for_identity(user), ARN) + EXTRA.get(user, [])
    return {
        "isAuthenticated": True,
        "principalId": "p" + user.replace("-", ""),
        "policyDocuments": documents,
        "disconnectAfterInSeconds": 3600,
        "refreshAfterInSeconds": 300,
    }


def _document(*statements: tuple[str, str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": action, "Resource": ARN.resource(*r.split(":", 1))}
                for action, r in statements
            ],
        }
    )


# Grants beyond an identity's own namespace, for the retained-message tests.
EXTRA = {
    "dev-ret": [_document(("iot:RetainPublish", "topic:dev-ret/state"))],
    "peek": [_document(("iot:Subscribe", "topicfilter:dev-ret/*"))],  # no iot:Receive
}


class Running:
    def __init__(self, ports: GatewayPorts, ca_cert: Path, events: list[dict[str, Any]]) -> None:
        self.ports = ports
        self.ca_cert = ca_cert
        self.events = events


def _run(config: GatewayConfig, events: list[dict[str, Any]]) -> Iterator[Running]:
    gateway = LocalGateway(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ports = asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(15)
    try:
        yield Running(ports, config.certificates.ca_cert, events)
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def _config(events: list[dict[str, Any]], **overrides: Any) -> GatewayConfig:
    def authorizer(event: dict[str, Any]) -> dict[str, Any]:
        events.append(event)
        return allow(event)

    certs = generate_certificates(Path(tempfile.mkdtemp(prefix="iotauth-test-")))
    return GatewayConfig(
        authorizer=authorizer, authorizer_name=NAME, arn=ARN, certificates=certs, **overrides
    )


@pytest.fixture(scope="module")
def with_domain() -> Iterator[Running]:
    events: list[dict[str, Any]] = []
    yield from _run(_config(events, domain=DEFAULT_DOMAIN), events)


@pytest.fixture(scope="module")
def without_domain() -> Iterator[Running]:
    events: list[dict[str, Any]] = []
    limits = replace(LIMITS, keep_alive_min=1)
    yield from _run(_config(events, limits=limits), events)


def _connect(user: str, username: str, version: int = 4, keep_alive: int = 60) -> Connect:
    return Connect(
        client_id=user,
        version=version,
        username=username,
        password=f"pw-{user}".encode(),
        keep_alive=keep_alive,
    )


NAMED = f"x-amz-customauthorizer-name={NAME}"
SDK_V1 = "dev-v1?x-amz-customauthorizer-name=iotauth?SDK=Python&Version=1.6.2"


@pytest.mark.parametrize(
    ("username", "accepted_with", "accepted_without"),
    [
        ("dev-a", True, False),  # names no authorizer
        (SDK_V1.replace("dev-v1", "dev-a"), True, False),  # SDK v1's mangled name
        ("dev-a?x-amz-customauthorizer-name=iotauth", True, True),
        ("dev-a?x-amz-customauthorizer-name=other", True, False),  # unknown: the default
    ],
)
def test_default_authorizer(
    with_domain: Running,
    without_domain: Running,
    username: str,
    accepted_with: bool,
    accepted_without: bool,
) -> None:
    for running, expected in ((with_domain, accepted_with), (without_domain, accepted_without)):
        client = RawClient(running.ports.tcp, version=4)
        try:
            code = client.connect(_connect("dev-a", username)).reason_code
        finally:
            client.close()
        assert (code == 0) is expected, (username, running is with_domain)
        if not expected:
            assert code == 5  # not authorized


def test_the_authorizer_sees_the_username_as_sent(with_domain: Running) -> None:
    client = RawClient(with_domain.ports.tcp, version=4)
    try:
        assert client.connect(_connect("dev-v1", SDK_V1)).reason_code == 0
    finally:
        client.close()
    assert with_domain.events[-1]["protocolData"]["mqtt"]["username"] == SDK_V1


def test_override_disallowed_uses_the_default() -> None:
    domain = DomainConfiguration(default_authorizer=NAME, allow_authorizer_override=False)
    assert domain.authorizer_for("other", frozenset({NAME, "other"})) == NAME
    allowed = replace(domain, allow_authorizer_override=True)
    assert allowed.authorizer_for("other", frozenset({NAME, "other"})) == "other"
    assert DomainConfiguration().authorizer_for(None, frozenset({NAME})) is None


def _answer_without_alpn(port: int, ca_cert: Path, connect: Connect) -> object:
    try:
        client = RawClient(port, version=4, ca_cert=ca_cert, alpn=False)
        client.send(connect)
        answer = client.receive()
        client.close()
    except OSError:
        return None
    return answer


def test_custom_auth_without_alpn_on_the_device_endpoint(
    with_domain: Running, without_domain: Running
) -> None:
    """An unmodified LinkKit device: TLS without ALPN, username ``deviceName&productKey``."""
    connect = _connect("dev-l", "dev-l&a1ProductKey")
    answer = _answer_without_alpn(with_domain.ports.tls, with_domain.ca_cert, connect)
    assert answer is not None and getattr(answer, "reason_code", None) == 0
    # Without a domain configuration, 8883 needs ALPN "mqtt" as 443 does: closed.
    assert _answer_without_alpn(without_domain.ports.tls, without_domain.ca_cert, connect) is None
    # iot:Data-ATS (the IoT port) keeps port + ALPN rules whatever the domain configuration
    # says: without ALPN "mqtt" a TLS connection is HTTPS, and a CONNECT is no HTTP request.
    for running in (with_domain, without_domain):
        assert _answer_without_alpn(running.ports.iot, running.ca_cert, connect) is None


def test_data_ats_needs_the_authorizer_name(with_domain: Running) -> None:
    """The domain configuration's default authorizer is the device endpoint's, not the
    account's default endpoint's: there a CONNECT must name the authorizer."""
    for username, accepted in (("dev-n", False), (f"dev-n?{NAMED}", True)):
        client = RawClient(with_domain.ports.iot, version=5, ca_cert=with_domain.ca_cert)
        try:
            code = client.connect(_connect("dev-n", username, 5)).reason_code
        finally:
            client.close()
        assert (code == 0) is accepted
        assert accepted or code == 0x87


def test_keep_alive_is_enforced(without_domain: Running) -> None:
    silent = RawClient(without_domain.ports.tcp, version=5)
    assert silent.connect(_connect("dev-k", f"dev-k?{NAMED}", 5, keep_alive=1)).reason_code == 0
    assert silent.until_closed(timeout=5) == [Disconnect(0x8D)]  # Keep alive timeout
    assert silent.closed

    talking = RawClient(without_domain.ports.tcp, version=4)
    try:
        assert (
            talking.connect(_connect("dev-t", f"dev-t?{NAMED}", 4, keep_alive=1)).reason_code == 0
        )
        for _ in range(6):  # 3 s: twice the 1.5 s a silent client gets
            talking.send(Ping(12))
            assert talking.receive() == Ping(13)
            time.sleep(0.5)
        assert not talking.closed
    finally:
        talking.close()
    v3 = RawClient(without_domain.ports.tcp, version=4)
    assert v3.connect(_connect("dev-s", f"dev-s?{NAMED}", 4, keep_alive=1)).reason_code == 0
    assert v3.until_closed(timeout=5) == []
    assert v3.closed


MakeRaw = Callable[..., RawClient]


def test_retained_messages_need_retain_publish_and_receive(without_domain: Running) -> None:
    port = without_domain.ports.tcp
    publisher = RawClient(port, version=5)
    try:
        assert publisher.connect(_connect("dev-ret", f"dev-ret?{NAMED}", 5)).reason_code == 0
        publisher.send(Publish("dev-ret/state", b"on", qos=1, retain=True, packet_id=1))
        answer = publisher.receive()
        assert answer is not None and getattr(answer, "reason_code", 0xFF) < 0x80
        # Retained elsewhere, without iot:RetainPublish: PUBACK 0x87, nothing retained.
        publisher.send(Publish("dev-ret/other", b"x", qos=1, retain=True, packet_id=2))
        assert getattr(publisher.receive(), "reason_code", None) == 0x87
    finally:
        publisher.close()

    later = RawClient(port, version=4)
    peek = RawClient(port, version=5)
    try:
        assert later.connect(_connect("dev-ret", f"dev-ret?{NAMED}", 4)).reason_code == 0
        # A wildcard filter gets no retained message on subscribe (IoT: only the exact
        # topic does, https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-retain).
        later.send(Subscribe(3, (("dev-ret/#", 1),)))
        assert later.receive() == Suback(3, (1,))
        assert later.receive(timeout=0.5) is None
        later.send(Subscribe(1, (("dev-ret/state", 1),)))
        got = [later.receive(), later.receive()]
        assert Suback(1, (1,)) in got
        retained = [p for p in got if isinstance(p, Publish)]
        assert [(p.topic, p.payload, p.retain) for p in retained] == [
            ("dev-ret/state", b"on", True)
        ]
        # Subscribe allowed, Receive not: the retained message is not delivered.
        assert peek.connect(_connect("peek", f"peek?{NAMED}", 5)).reason_code == 0
        peek.send(Subscribe(2, (("dev-ret/state", 1),)))
        assert peek.receive() == Suback(2, (1,))
        assert peek.receive(timeout=0.5) is None and not peek.closed
    finally:
        later.close()
        peek.close()


def test_a_burst_of_connects_all_reach_the_engine(without_domain: Running) -> None:
    """300 CONNECTs at once with a fast authorizer: every one is accepted. (Past mosquitto's
    listen backlog, unbounded engine handshakes were reset: 33 of 300 in a probe.)"""

    async def one(index: int) -> int:
        user = f"dev-burst{index}"
        reader, writer = await asyncio.open_connection("127.0.0.1", without_domain.ports.tcp)
        try:
            writer.write(encode_packet(_connect(user, f"{user}?{NAMED}", 5), 5))
            await writer.drain()
            packets = PacketReader()
            while True:
                data = await reader.read(4096)
                if not data:
                    return -1
                packets.feed(data)
                for first, body in packets.packets():
                    answer = decode_packet(first, body, 5)
                    return getattr(answer, "reason_code", -2)
        finally:
            writer.close()

    async def burst() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(300))), 60)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        codes = pool.submit(asyncio.run, burst()).result(90)
    assert codes == [0] * 300
