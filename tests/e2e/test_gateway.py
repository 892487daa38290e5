"""Devices through the local gateway, as they would reach AWS IoT Core.

The real authorizer handler decides (against moto's DynamoDB); the gateway enforces its
answer with IoT policy semantics over plain TCP, TLS (ALPN ``mqtt``) and WebSocket.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.conftest import Mqtt, port_of, unique, username_for

pytestmark = pytest.mark.e2e

TRANSPORTS = ("tcp", "tls", "ws")
MakeClient = Callable[..., Mqtt]


def connect(client: Mqtt, info: StackInfo, name: str, secret: str, *, alpn: bool = True) -> bool:
    return client.connect(
        port_of(info, client.transport),
        username=username_for(info, name),
        password=secret,
        ca_cert=info.ca_cert_path,
        alpn=alpn,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_device_connects_and_round_trips_on_its_own_topic(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    name = unique("dev")
    secret = add_device(name)
    client = clients(name, transport)
    assert connect(client, stack, name, secret)
    assert client.subscribe(f"{name}/#")
    client.publish(f"{name}/hello", b"hi", qos=1)
    message = client.next_message()
    assert (message.topic, message.payload) == (f"{name}/hello", b"hi")


def test_demo_devices_are_provisioned(stack: StackInfo, clients: MakeClient) -> None:
    assert len(stack.devices) >= 2
    for name, secret in stack.devices.items():
        assert connect(clients(name), stack, name, secret)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_password_is_refused(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    name = unique("dev")
    secret = add_device(name)
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    client = clients(name, transport)
    assert not connect(client, stack, name, wrong)
    assert str(client.connack) == "Not authorized"  # CONNACK return code 5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_user_is_refused(stack: StackInfo, clients: MakeClient, transport: str) -> None:
    name = unique("nobody")
    assert not connect(clients(name, transport), stack, name, "iotsk_" + "A" * 43)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("client_id", ["victim", "+", "*", "#", "victim/x", "vic*"])
def test_foreign_or_wildcard_client_id_is_refused(
    stack: StackInfo,
    add_device: Callable[..., str],
    clients: MakeClient,
    transport: str,
    client_id: str,
) -> None:
    name = unique("dev")
    secret = add_device(name)
    if client_id == "victim":
        client_id = unique("victim")
        add_device(client_id)
    assert not connect(clients(client_id, transport), stack, name, secret)


def test_foreign_client_id_cannot_kick_the_owner(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    owner, intruder = unique("owner"), unique("intruder")
    owner_secret, intruder_secret = add_device(owner), add_device(intruder)
    victim = clients(owner)
    assert connect(victim, stack, owner, owner_secret)
    assert victim.subscribe(f"{owner}/#")
    assert not connect(clients(owner, "ws"), stack, intruder, intruder_secret)
    # The owner's connection and subscription are untouched.
    victim.publish(f"{owner}/still-here", b"yes", qos=1)
    assert victim.next_message().payload == b"yes"
    assert not victim.disconnected.is_set()


def test_username_without_authorizer_name_uses_the_default_authorizer(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    # template.yaml's IotDomainConfiguration names the authorizer as the endpoint's default
    # (AllowAuthorizerOverride: true), so devices need not name it. The same endpoint
    # without a domain configuration refuses: tests/e2e/test_gateway_endpoint.py.
    assert stack.domain.default_authorizer == stack.authorizer_name
    name = unique("dev")
    secret = add_device(name)
    assert clients(name).connect(stack.tcp_port, username=name, password=secret)
    assert not clients(name).connect(stack.tcp_port, username=name, password=secret[:-3] + "xyz")


@pytest.mark.parametrize("transport", ["iot", "ws"])
def test_data_ats_listeners_need_the_authorizer_name(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    # The IoT port and plain ws stand for iot:Data-ATS, whose account has no default
    # authorizer: the username (or the WebSocket URL) must name it.
    name = unique("dev")
    secret = add_device(name)
    port = stack.iot_port if transport == "iot" else stack.ws_port
    bare = clients(name, transport)
    assert not bare.connect(port, username=name, password=secret, ca_cert=stack.ca_cert_path)
    assert str(bare.connack) == "Not authorized"
    named = clients(name, transport)
    assert named.connect(
        port, username=username_for(stack, name), password=secret, ca_cert=stack.ca_cert_path
    )


def test_tls_without_alpn_as_the_domain_configuration_allows(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    # CUSTOM_AUTH over SECURE_MQTT (template.yaml): custom authentication needs no ALPN.
    # Without that domain configuration, no ALPN is refused (test_gateway_endpoint.py).
    assert stack.domain.custom_auth_without_alpn
    name = unique("dev")
    secret = add_device(name)
    client = clients(name, "tls")
    assert connect(client, stack, name, secret, alpn=False)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_subscribing_to_another_identity_is_refused(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    mallory, alice = unique("mallory"), unique("alice")
    secret = add_device(mallory)
    add_device(alice)
    client = clients(mallory, transport)
    assert connect(client, stack, mallory, secret)
    assert not client.subscribe(f"{alice}/#")
    assert not client.subscribe("#")
    assert not client.subscribe(f"{alice}/+")
    assert client.subscribe(f"{mallory}/#")  # still connected, own topics fine
    assert not client.disconnected.is_set()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_publishing_to_another_identity_disconnects(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient, transport: str
) -> None:
    mallory, alice = unique("mallory"), unique("alice")
    mallory_secret, alice_secret = add_device(mallory), add_device(alice)
    victim = clients(alice)
    assert connect(victim, stack, alice, alice_secret)
    assert victim.subscribe(f"{alice}/#")

    attacker = clients(mallory, transport)
    assert connect(attacker, stack, mallory, mallory_secret)
    attacker.publish(f"{alice}/inbox", b"forged", qos=1)
    assert attacker.disconnected.wait(5), "a denied PUBLISH must end the connection"

    victim.publish(f"{alice}/inbox", b"genuine", qos=1)
    assert victim.next_message().payload == b"genuine"
    assert victim.received() == []  # the forged message never arrived


def test_will_message_on_a_foreign_topic_is_refused(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    name, other = unique("dev"), unique("other")
    secret = add_device(name)
    add_device(other)
    client = clients(name)
    client.client.will_set(f"{other}/status", b"offline", qos=1)
    assert not connect(client, stack, name, secret)


def test_retained_publish_needs_retain_permission(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    # The authorizer grants no iot:RetainPublish: IoT Core would disconnect.
    name = unique("dev")
    secret = add_device(name)
    client = clients(name)
    assert connect(client, stack, name, secret)
    client.publish(f"{name}/state", b"on", qos=1, retain=True)
    assert client.disconnected.wait(5)


def test_second_connection_with_the_same_client_id_replaces_the_first(
    stack: StackInfo, add_device: Callable[..., str], clients: MakeClient
) -> None:
    name = unique("dev")
    secret = add_device(name)
    first = clients(name)
    assert connect(first, stack, name, secret)
    second = clients(name, "ws")
    assert connect(second, stack, name, secret)
    assert first.disconnected.wait(5)
    assert second.subscribe(f"{name}/#")
    second.publish(f"{name}/x", b"1", qos=1)
    assert second.next_message().payload == b"1"
