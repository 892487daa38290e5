"""The gateway's IoT Core behaviour with a scripted authorizer and a controllable clock.

What the authorizer receives per transport (the event IoT Core would send), how invalid
answers are treated, the 5-second budget, ``refreshAfterInSeconds`` and
``disconnectAfterInSeconds``.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext, Scope, policy_documents
from iotauth.local.certs import generate_certificates
from iotauth.local.gateway import GatewayConfig, GatewayPorts, LocalGateway
from tests.e2e.conftest import Mqtt

pytestmark = pytest.mark.e2e

ARN = ArnContext("aws", "us-east-1", "123456789012")
NAME = "test-authorizer"


@dataclass
class Script:
    """The authorizer's behaviour, changed by the tests."""

    events: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], Any] | None = None
    now: float = 1000.0

    def clock(self) -> float:
        return self.now

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if self.answer is not None:
            return self.answer(event)
        return allow(event)


def allow(event: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    mqtt = event["protocolData"]["mqtt"]
    user = mqtt["username"].split("?", 1)[0]
    if base64.b64decode(mqtt["password"]) != f"pw-{user}".encode():
        return {"isAuthenticated": False}
    return {
        "isAuthenticated": True,
        "principalId": "p" + user.replace("-", ""),
        "policyDocuments": policy_documents(Scope.for_identity(user), ARN),
        "disconnectAfterInSeconds": 3600,
        "refreshAfterInSeconds": 300,
        **overrides,
    }


@dataclass
class Running:
    script: Script
    ports: GatewayPorts
    ca_cert: Path


@pytest.fixture(scope="module")
def gateway() -> Iterator[Running]:
    script = Script()
    certs = generate_certificates(Path(tempfile.mkdtemp(prefix="iotauth-test-")))
    gw = LocalGateway(
        GatewayConfig(
            authorizer=script,
            authorizer_name=NAME,
            arn=ARN,
            certificates=certs,
            authorizer_timeout=0.5,
            clock=script.clock,
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ports = asyncio.run_coroutine_threadsafe(gw.start(), loop).result(10)
    yield Running(script, ports, certs.ca_cert)
    asyncio.run_coroutine_threadsafe(gw.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def script(gateway: Running) -> Iterator[Script]:
    gateway.script.events.clear()
    gateway.script.answer = None
    gateway.script.now = 1000.0
    yield gateway.script
    gateway.script.answer = None


@pytest.fixture
def client(gateway: Running) -> Iterator[Callable[..., Mqtt]]:
    made: list[Mqtt] = []

    def make(user: str, transport: str = "tcp", password: str | None = None) -> Mqtt:
        c = Mqtt(user, transport)
        made.append(c)
        port = {"tcp": gateway.ports.tcp, "tls": gateway.ports.tls, "ws": gateway.ports.ws}
        c.connect(
            port[transport],
            username=f"{user}?x-amz-customauthorizer-name={NAME}&SDK=test&Version=1",
            password=password if password is not None else f"pw-{user}",
            ca_cert=gateway.ca_cert,
        )
        return c

    yield make
    for c in made:
        c.close()


# --- the event ---------------------------------------------------------------------------


def test_tcp_event(script: Script, client: Callable[..., Mqtt]) -> None:
    assert client("dev-a").connack is not None
    event = script.events[-1]
    assert event["protocols"] == ["mqtt"]
    assert set(event["protocolData"]) == {"mqtt"}
    mqtt = event["protocolData"]["mqtt"]
    assert mqtt["username"] == f"dev-a?x-amz-customauthorizer-name={NAME}&SDK=test&Version=1"
    assert base64.b64decode(mqtt["password"]) == b"pw-dev-a"
    assert mqtt["clientId"] == "dev-a"
    assert uuid.UUID(event["connectionMetadata"]["id"]).version == 4
    assert event["signatureVerified"] is False
    assert "token" not in event


def test_websocket_event_carries_headers_and_query(
    gateway: Running, script: Script, client: Callable[..., Mqtt]
) -> None:
    c = Mqtt("dev-w", "ws")
    try:
        assert c.connect(
            gateway.ports.ws,
            username="dev-w",  # the authorizer is named in the URL instead
            password="pw-dev-w",
            ws_path=f"/mqtt?x-amz-customauthorizer-name={NAME}",
        )
    finally:
        c.close()
    event = script.events[-1]
    assert event["protocols"] == ["http", "mqtt"]
    http = event["protocolData"]["http"]
    assert http["queryString"] == f"?x-amz-customauthorizer-name={NAME}"
    headers = {k.lower(): v for k, v in http["headers"].items()}
    assert headers["host"] == f"127.0.0.1:{gateway.ports.ws}"
    assert headers["sec-websocket-protocol"] == "mqtt"
    assert event["protocolData"]["mqtt"]["username"] == "dev-w"


def _raw_connect(client_id: str, username: str, password: bytes) -> bytes:
    def text(value: bytes) -> bytes:
        return struct.pack("!H", len(value)) + value

    variable = text(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
    payload = text(client_id.encode()) + text(username.encode()) + text(password)
    body = variable + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def test_tls_event_has_the_server_name(gateway: Running, script: Script) -> None:
    context = ssl.create_default_context(cafile=str(gateway.ca_cert))
    context.set_alpn_protocols(["mqtt"])
    with (
        socket.create_connection(("127.0.0.1", gateway.ports.tls), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(_raw_connect("dev-t", f"dev-t?x-amz-customauthorizer-name={NAME}", b"pw-dev-t"))
        assert tls.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
    event = script.events[-1]
    assert event["protocols"] == ["tls", "mqtt"]
    assert event["protocolData"]["tls"] == {"serverName": "localhost"}


def test_password_is_passed_as_base64_of_its_bytes(gateway: Running, script: Script) -> None:
    # Over the wire the password is bytes; the event carries base64 of exactly those bytes.
    seen: list[bytes] = []

    def answer(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(base64.b64decode(event["protocolData"]["mqtt"]["password"]))
        return {"isAuthenticated": False}

    script.answer = answer
    c = Mqtt("dev-b")
    try:
        assert not c.connect(
            gateway.ports.tcp,
            username=f"dev-b?x-amz-customauthorizer-name={NAME}",
            password="pässwörd",
        )
    finally:
        c.close()
    assert seen == ["pässwörd".encode()]


# --- the answer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"principalId": "has-dash"},
        {"principalId": ""},
        {"principalId": "x" * 129},
        {"policyDocuments": []},
        {"policyDocuments": ["{}"] * 11},
        {"policyDocuments": ['{"Statement": []}' + " " * 2048]},
        {"policyDocuments": [{"Version": "2012-10-17", "Statement": []}]},
        {"policyDocuments": ["not json"]},
        {"disconnectAfterInSeconds": 299},
        {"refreshAfterInSeconds": 86401},
        {"refreshAfterInSeconds": None},
        {"disconnectAfterInSeconds": True},
        {"isAuthenticated": "true"},
    ],
)
def test_invalid_answers_refuse_the_connection(
    script: Script, client: Callable[..., Mqtt], overrides: dict[str, Any]
) -> None:
    script.answer = lambda event: allow(event, **overrides)
    assert str(client("dev-y").connack) == "Not authorized"


def test_valid_answer_is_accepted(script: Script, client: Callable[..., Mqtt]) -> None:
    assert not client("dev-ok").connack.is_failure  # type: ignore[union-attr]


def test_authorizer_errors_and_timeouts_refuse(script: Script, client: Callable[..., Mqtt]) -> None:
    def boom(event: dict[str, Any]) -> Any:
        raise RuntimeError("store down")

    script.answer = boom
    assert str(client("dev-e").connack) == "Not authorized"

    def slow(event: dict[str, Any]) -> Any:
        time.sleep(1.0)  # over the gateway's 0.5 s budget in this module
        return allow(event)

    script.answer = slow
    assert str(client("dev-s").connack) == "Not authorized"


def test_policy_without_connect_for_the_client_id_refuses(
    script: Script, client: Callable[..., Mqtt]
) -> None:
    script.answer = lambda event: allow(
        event, policyDocuments=policy_documents(Scope.for_identity("someone-else"), ARN)
    )
    assert str(client("dev-c").connack) == "Not authorized"


def test_explicit_deny_wins(script: Script, client: Callable[..., Mqtt]) -> None:
    deny = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iot:Subscribe",'
        '"Resource":"arn:aws:iot:us-east-1:123456789012:topicfilter/dev-d/secret/*"}]}'
    )
    script.answer = lambda event: allow(
        event, policyDocuments=[*policy_documents(Scope.for_identity("dev-d"), ARN), deny]
    )
    c = client("dev-d")
    assert c.subscribe("dev-d/public/#")
    assert not c.subscribe("dev-d/secret/#")


# --- refresh and disconnect ---------------------------------------------------------------


def test_refresh_calls_the_authorizer_again_and_keeps_an_allowed_client(
    script: Script, client: Callable[..., Mqtt]
) -> None:
    c = client("dev-r")
    assert c.subscribe("dev-r/#")
    calls = len(script.events)
    script.now += 301  # past refreshAfterInSeconds
    c.publish("dev-r/x", b"1", qos=1)
    assert c.next_message().payload == b"1"
    assert len(script.events) == calls + 1
    again = script.events[-1]
    assert again["protocolData"]["mqtt"]["clientId"] == "dev-r"


def test_refresh_refused_disconnects(script: Script, client: Callable[..., Mqtt]) -> None:
    c = client("dev-q")
    assert c.subscribe("dev-q/#")
    script.answer = lambda event: {"isAuthenticated": False}  # e.g. the device was disabled
    script.now += 301
    c.publish("dev-q/x", b"1", qos=1)
    assert c.disconnected.wait(5)
    assert c.received() == []


def test_disconnect_after_ends_the_connection(script: Script, client: Callable[..., Mqtt]) -> None:
    script.answer = lambda event: allow(
        event, disconnectAfterInSeconds=300, refreshAfterInSeconds=86400
    )
    c = client("dev-z")
    assert c.subscribe("dev-z/#")
    script.now += 301
    c.publish("dev-z/x", b"1", qos=1)
    assert c.disconnected.wait(5)


def test_wss_event_on_the_iot_port(gateway: Running, script: Script) -> None:
    """Custom authentication over wss on IoT's port: TLS, HTTP and MQTT parts, as IoT sends."""
    c = Mqtt("dev-s5", "wss", version=5)
    try:
        assert c.connect(
            gateway.ports.iot,
            username="dev-s5",
            password="pw-dev-s5",
            ws_path=f"/mqtt?x-amz-customauthorizer-name={NAME}",
            ca_cert=gateway.ca_cert,
        )
    finally:
        c.close()
    event = script.events[-1]
    assert event["protocols"] == ["tls", "http", "mqtt"]
    assert event["protocolData"]["tls"] == {"serverName": "localhost"}
    headers = {k.lower(): v for k, v in event["protocolData"]["http"]["headers"].items()}
    assert headers["host"] == f"localhost:{gateway.ports.iot}"
    assert event["protocolData"]["http"]["queryString"] == f"?x-amz-customauthorizer-name={NAME}"
    assert event["protocolData"]["mqtt"]["clientId"] == "dev-s5"
