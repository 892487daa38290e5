"""paho-mqtt 2.2 (MQTT 3.1.1 and MQTT 5) over TCP, TLS (ALPN ``mqtt``) and WebSocket.

Options exactly as paho documents them (``Client(CallbackAPIVersion.VERSION2, …)``,
``username_pw_set``, ``tls_set_context`` with ``set_alpn_protocols(["mqtt"])``,
``ws_set_options(path="/mqtt")``); the username names the authorizer, as on IoT Core.
"""

from __future__ import annotations

import queue
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from iotauth.local.stack import StackInfo
from tests.interop.conftest import WAIT, Device, iot_port, mqtt_port, username_for

TRANSPORTS = ("tcp", "tls", "ws")
VERSIONS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}


class Paho:
    """One paho client with blocking, bounded waits on what the broker answers."""

    def __init__(self, client_id: str, transport: str, version: str) -> None:
        self.v5 = version == "5"
        self.transport = transport
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            transport="websockets" if transport == "ws" else "tcp",
            protocol=VERSIONS[version],
            reconnect_on_failure=False,
        )
        self.connack: ReasonCode | None = None
        self.disconnect_reason: ReasonCode | None = None
        self.answered = threading.Event()
        self.closed = threading.Event()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._ack = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack = rc
        self.answered.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.disconnect_reason = rc
        self.closed.set()
        self.answered.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._ack:
            self._acks[mid] = list(codes)
            self._ack.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._ack:
            self._acks[mid] = rc
            self._ack.notify_all()

    def connect(self, info: StackInfo, username: str, password: str) -> ReasonCode | None:
        self.client.username_pw_set(username, password)
        port = mqtt_port(info)
        if self.transport == "ws":
            port = info.ws_port
            self.client.ws_set_options(path="/mqtt")
        elif self.transport == "tls":
            port = iot_port(info)
            context = ssl.create_default_context(cafile=str(info.ca_cert_path))
            context.set_alpn_protocols(["mqtt"])
            self.client.tls_set_context(context)
        # Over TLS a host name, so that paho sends SNI (IoT Core requires it).
        host = "localhost" if self.transport == "tls" else "127.0.0.1"
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self.answered.wait(WAIT), "no CONNACK and no close"
        return self.connack

    def _wait_ack(self, mid: int, timeout: float = WAIT) -> Any:
        with self._ack:
            if not self._ack.wait_for(lambda: mid in self._acks or self.closed.is_set(), timeout):
                raise AssertionError("neither an acknowledgement nor a close")
            return self._acks.pop(mid, None)

    def subscribe(self, topic: str) -> ReasonCode:
        result, mid = self.client.subscribe(topic, 1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        codes = self._wait_ack(mid)
        assert codes is not None, "connection closed instead of a SUBACK"
        return codes[0]  # type: ignore[no-any-return]

    def publish(self, topic: str, payload: bytes) -> Any:
        """QoS 1: the PUBACK's reason (MQTT 5) / success (3.1.1), or None when closed first."""
        info = self.client.publish(topic, payload, qos=1)
        return self._wait_ack(info.mid)

    def close(self) -> None:
        if not self.closed.is_set():
            self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def paho_client() -> Iterator[Callable[[str, str, str], Paho]]:
    made: list[Paho] = []

    def make(client_id: str, transport: str, version: str) -> Paho:
        made.append(Paho(client_id, transport, version))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_round_trip_in_its_namespace_and_refusal_outside(
    stack: StackInfo,
    new_device: Callable[[], Device],
    paho_client: Callable[[str, str, str], Paho],
    transport: str,
    version: str,
) -> None:
    device = new_device()
    client = paho_client(device.name, transport, version)
    connack = client.connect(stack, username_for(stack, device.name), device.secret)
    assert connack is not None and not connack.is_failure, connack

    granted = client.subscribe(device.own_topic)
    assert not granted.is_failure and granted.value == 1
    assert client.publish(device.own_topic, b"21.5") is not None
    assert client.messages.get(timeout=WAIT) == (device.own_topic, b"21.5")

    refused = client.subscribe(device.foreign_topic)
    if client.v5:
        assert str(refused) == "Not authorized"  # SUBACK reason 0x87
    else:
        assert refused.value == 0x80  # SUBACK failure, the only one MQTT 3.1.1 has
    ack = client.publish(device.foreign_topic, b"x")
    if client.v5:
        # IoT Core answers a refused QoS 1 PUBLISH with PUBACK 0x87, never success.
        assert ack is not None and str(ack) == "Not authorized"
    else:
        # MQTT 3.1.1 has no negative PUBACK: IoT Core closes the connection instead.
        assert ack is None
        assert client.closed.wait(WAIT)
    assert client.messages.empty()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_wrong_password_gets_a_refusing_connack(
    stack: StackInfo,
    new_device: Callable[[], Device],
    paho_client: Callable[[str, str, str], Paho],
    version: str,
) -> None:
    device = new_device()
    client = paho_client(device.name, "tls", version)
    connack = client.connect(stack, username_for(stack, device.name), device.secret + "x")
    assert connack is not None and str(connack) == "Not authorized"  # 5 (3.1.1) / 0x87 (5)
