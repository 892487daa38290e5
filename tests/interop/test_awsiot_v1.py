"""AWS IoT Device SDK for Python v1 (AWSIoTPythonSDK 1.6.2), as its fleets still run it.

Its public API for MQTT over TLS (``configureCredentials(CAFilePath, KeyPath,
CertificatePath)``) loads a client key pair even when the broker authenticates the
username and password: any pair will do, and the stand-in asks for no client certificate.
It sends no ALPN unless the port is 443 (then ``x-amzn-mqtt-ca``, IoT's X.509 protocol):
custom authentication without ALPN, which the stack's device endpoint allows (the
template's domain configuration, ``CUSTOM_AUTH`` over ``SECURE_MQTT``; locally 8883).
With metrics on (the default) it appends ``?SDK=Python&Version=1.6.2`` to the username: after
``?x-amz-customauthorizer-name=…`` that is a second ``?``, which IoT Core cannot read as
the authorizer's name: such clients need the endpoint's default authorizer (REFERENCE §9,
§11), and so do they here.
A browser user's JWT goes as the password with the username ``$jwt`` (issue 17): the
metrics suffix after it is harmless, the default authorizer takes it.
(Its WebSocket mode accepts only hosts of the form ``*.iot.<region>.amazonaws.com``, so it
cannot be pointed at a loopback stand-in unmodified: not covered.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from AWSIoTPythonSDK.exception.AWSIoTExceptions import (
    publishTimeoutException,
    subackError,
)
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

from iotauth.local.stack import StackInfo
from tests.e2e.token_support import JWT_USERNAME, token_for
from tests.interop.conftest import WAIT, Device, mqtts_port, username_for


@pytest.fixture(scope="module")
def throwaway_key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed client certificate nobody checks: the v1 TLS path insists on one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("v1-client")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "throwaway")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "key.pem", folder / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class V1:
    def __init__(self, info: StackInfo, client_id: str, keys: tuple[Path, Path], port: int) -> None:
        self.client = AWSIoTMQTTClient(client_id)
        self.client.configureEndpoint("localhost", port)  # a host name: the SDK sends SNI
        self.client.configureCredentials(str(info.ca_cert_path), str(keys[0]), str(keys[1]))
        self.client.configureConnectDisconnectTimeout(WAIT)
        self.client.configureMQTTOperationTimeout(WAIT / 2)
        self.client.configureAutoReconnectBackoffTime(30, 60, 40)  # no reconnect within a test
        self.offline = threading.Event()
        self.client.onOffline = self.offline.set
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected = False

    def connect(self, username: str, password: str) -> bool:
        self.client.configureUsernamePassword(username, password)
        self.connected = bool(self.client.connect(keepAliveIntervalSecond=30))
        return self.connected

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages.put((message.topic, bytes(message.payload)))

    def close(self) -> None:
        if not self.connected:
            return
        with contextlib.suppress(Exception):
            self.client.disconnect()


@pytest.fixture
def v1_client(throwaway_key_pair: tuple[Path, Path]) -> Iterator[Callable[..., V1]]:
    made: list[V1] = []

    def make(info: StackInfo, client_id: str) -> V1:
        made.append(V1(info, client_id, throwaway_key_pair, mqtts_port(info)))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("name_the_authorizer", [True, False])
def test_v1_through_the_default_authorizer(
    stack: StackInfo,
    new_device: Callable[[], Device],
    v1_client: Callable[..., V1],
    name_the_authorizer: bool,
) -> None:
    device = new_device()
    v1 = v1_client(stack, device.name)
    username = username_for(stack, device.name) if name_the_authorizer else device.name
    assert v1.connect(username, device.secret)

    assert v1.client.subscribe(device.own_topic, 1, v1.on_message)
    assert v1.client.publish(device.own_topic, b"21.5", 1)  # PUBACK
    assert v1.messages.get(timeout=WAIT) == (device.own_topic, b"21.5")

    with pytest.raises(subackError):  # SUBACK 0x80
        v1.client.subscribe(device.foreign_topic, 1, v1.on_message)
    with pytest.raises(publishTimeoutException):  # never acknowledged
        v1.client.publish(device.foreign_topic, b"x", 1)
    assert v1.offline.wait(WAIT)  # the broker closed the connection
    assert v1.messages.empty()


def test_v1_wrong_password_goes_offline_at_once(
    stack: StackInfo, new_device: Callable[[], Device], v1_client: Callable[..., V1]
) -> None:
    device = new_device()
    refused = v1_client(stack, device.name)
    # v1 takes any CONNACK for success (its connect() never reads the return code), so a
    # refusing CONNACK (return code 5) shows as connect() == True, then going offline at
    # once when the broker closes the connection.
    assert refused.connect(device.name, device.secret + "x")
    assert refused.offline.wait(WAIT)
    refused.connected = False
    accepted = v1_client(stack, device.name)
    assert accepted.connect(device.name, device.secret)
    assert accepted.client.subscribe(device.own_topic, 1, accepted.on_message)  # SUBACK
    assert not accepted.offline.is_set()


def test_v1_with_a_jwt_as_the_password(stack: StackInfo, v1_client: Callable[..., V1]) -> None:
    v1 = v1_client(stack, "web-alice")
    assert v1.connect(JWT_USERNAME, token_for(stack, "alice"))  # SDK metrics appended
    assert v1.client.subscribe("web-alice/inbox", 1, v1.on_message)
    assert v1.client.publish("web-alice/inbox", b"hi", 1)
    assert v1.messages.get(timeout=WAIT) == ("web-alice/inbox", b"hi")
    with pytest.raises(subackError):  # another user's namespace
        v1.client.subscribe("web-bob/inbox", 1, v1.on_message)


def test_v1_with_another_users_jwt_goes_offline(
    stack: StackInfo, v1_client: Callable[..., V1]
) -> None:
    v1 = v1_client(stack, "web-alice")
    assert v1.connect(JWT_USERNAME, token_for(stack, "bob"))  # v1 ignores the return code
    assert v1.offline.wait(WAIT)
    v1.connected = False
