"""End-to-end fixtures: the local stack on free ports, and a small paho-mqtt client wrapper.

One :class:`~iotauth.local.stack.LocalStack` per test module (moto, the real authorizer and
signer handlers, the gateway). Everything listens on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import itertools
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.stack_support import stack_store

WAIT = 5.0  # seconds: the longest any single step may take
_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{time.monotonic_ns() % 100000}"


@dataclass
class Message:
    topic: str
    payload: bytes


class Mqtt:
    """A paho-mqtt 2.x client (MQTT 3.1.1, or 5 with ``version=5``) with bounded helpers.

    Transports: ``tcp``, ``tls`` (ALPN ``mqtt``), ``ws``, and on the IoT port ``iot`` (TLS,
    ALPN ``mqtt``) and ``wss`` (TLS, WebSocket at ``/mqtt``).
    """

    def __init__(self, client_id: str, transport: str = "tcp", version: int = 4) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            transport="websockets" if transport in ("ws", "wss") else "tcp",
            protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        self.version = version
        self.disconnect_reason: ReasonCode | None = None
        self.last_suback: list[ReasonCode] = []
        self.transport = transport
        self.connack: ReasonCode | None = None
        self.answered = threading.Event()
        self.disconnected = threading.Event()
        self.messages: queue.Queue[Message] = queue.Queue()
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.acks: dict[int, ReasonCode] = {}  # mid → the PUBACK's reason code
        self._ack_event = threading.Condition()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack = rc
        self.answered.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.disconnect_reason = rc
        self.disconnected.set()
        self.answered.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages.put(Message(message.topic, bytes(message.payload)))

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._ack_event:
            self.acks[mid] = rc
            self._ack_event.notify_all()

    def wait_ack(self, mid: int, timeout: float = WAIT) -> ReasonCode | None:
        """The reason code of ``mid``'s PUBACK, or None if none came within ``timeout``."""
        with self._ack_event:
            self._ack_event.wait_for(lambda: mid in self.acks, timeout)
            return self.acks.get(mid)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._suback_event:
            self._subacks[mid] = list(codes)
            self._suback_event.notify_all()

    def connect(
        self,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ws_path: str = "/mqtt",
        ca_cert: Path | None = None,
        alpn: bool = True,
        keepalive: int = 30,
    ) -> bool:
        """True when the gateway accepted the CONNECT."""
        if username is not None:
            self.client.username_pw_set(username, password)
        if self.transport in ("ws", "wss"):
            self.client.ws_set_options(path=ws_path)
        if self.transport in ("tls", "iot", "wss"):
            context = ssl.create_default_context(cafile=str(ca_cert))
            if alpn and self.transport != "wss":
                context.set_alpn_protocols(["mqtt"])
            self.client.tls_set_context(context)
        # Over TLS a host name, so that the client sends SNI (IoT Core requires it).
        host = "localhost" if self.transport in ("tls", "iot", "wss") else "127.0.0.1"
        self.client.connect(host, port, keepalive=keepalive)
        self.client.loop_start()
        assert self.answered.wait(WAIT), "no CONNACK"
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str, qos: int = 1) -> bool:
        """True when the SUBACK granted the subscription."""
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        with self._suback_event:
            assert self._suback_event.wait_for(lambda: mid in self._subacks, WAIT), "no SUBACK"
            codes = self._subacks.pop(mid)
        self.last_suback = codes
        return not codes[0].is_failure

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **kwargs: Any
    ) -> int:
        """The message id (for :meth:`wait_ack`)."""
        return self.client.publish(topic, payload, qos=qos, retain=retain, **kwargs).mid

    def next_message(self, timeout: float = WAIT) -> Message:
        return self.messages.get(timeout=timeout)

    def received(self) -> list[Message]:
        found = []
        while not self.messages.empty():
            found.append(self.messages.get_nowait())
        return found

    def close(self) -> None:
        if not self.disconnected.is_set():
            self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Mqtt]]:
    """``clients(client_id, transport)`` → a client closed at the end of the test."""
    made: list[Mqtt] = []

    def make(client_id: str, transport: str = "tcp", version: int = 4) -> Mqtt:
        client = Mqtt(client_id, transport, version)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack(LocalPorts.any_free()) as running:
        yield running


@pytest.fixture(scope="module")
def stack(local_stack: LocalStack) -> StackInfo:
    return local_stack.info


def port_of(info: StackInfo, transport: str) -> int:
    ports = {"tcp": info.mqtt_port, "tls": info.mqtts_port, "ws": info.ws_port}
    return ports.get(transport) or info.iot_port  # "iot" (ALPN mqtt) and "wss"


def username_for(info: StackInfo, name: str) -> str:
    return f"{name}?x-amz-customauthorizer-name={info.authorizer_name}"


@pytest.fixture(scope="module")
def add_device(stack: StackInfo) -> Callable[..., str]:
    """``add_device(name, publish=(), subscribe=())`` → its generated secret."""
    from iotauth.identities.credentials import issue_secret
    from iotauth.identities.records import IdentityRecord

    store = stack_store(stack)

    def add(
        name: str,
        publish: tuple[str, ...] = (),
        subscribe: tuple[str, ...] = (),
        *,
        allow_broad: bool = False,
    ) -> str:
        secret, verifier = issue_secret()
        now = int(time.time())
        store.add_identity(
            IdentityRecord(
                username=name,
                kind="secret",
                verifier=verifier,
                publish=publish,
                subscribe=subscribe,
                allow_broad=allow_broad,
                created_at=now,
                updated_at=now,
            )
        )
        return secret

    return add


def ws_path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
