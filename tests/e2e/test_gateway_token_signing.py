"""Token signing at the gateway: an authorizer with ``SigningDisabled: false``.

The stand-in then does what IoT Core does before it invokes the authorizer: it verifies
``x-amz-customauthorizer-signature`` (base64 of an RSA SHA-256 signature of the token,
custom-auth.html) against the authorizer's TokenSigningPublicKeys, refuses a caller without
a valid one **without invoking the authorizer**, and passes ``token`` and
``signatureVerified: true`` in the event. The token (a JWT from the local issuer) comes in
the MQTT username's query parameters, the WebSocket URL's query string, or HTTP headers.
Real clients: paho-mqtt over TLS and wss, http.client over TLS (SNI ``localhost``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import quote, urlencode

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.e2e.conftest import Mqtt, username_for
from tests.e2e.token_support import (
    AUTHORIZER,
    SIGNATURE,
    AuthorizerSpy,
    SigningKey,
    https_publish,
    token_for,
)

KEY = SigningKey()


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack(LocalPorts.any_free(), token_signing=KEY.signing("iotauth-token")) as running:
        yield running


@pytest.fixture(scope="module")
def spy(local_stack: LocalStack) -> Iterator[AuthorizerSpy]:
    recorder = AuthorizerSpy(local_stack)
    yield recorder
    recorder.restore()


def signed_username(stack: StackInfo, base: str, token: str, signature: str | None) -> str:
    """The Device SDK's spelling: name, authorizer, the URL-encoded signature, the token."""
    username = f"{base}?{AUTHORIZER}={stack.authorizer_name}"
    if signature is not None:
        username += f"&{SIGNATURE}={quote(signature, safe='')}"
    return username + f"&{stack.token_key_name}={token}"


def test_a_signed_token_in_the_username_reaches_the_authorizer_verified(
    stack: StackInfo, spy: AuthorizerSpy, clients: Callable[..., Mqtt]
) -> None:
    assert stack.token_signing and stack.token_key_name == "iotauth-token"
    token = token_for(stack, "alice")
    spy.take()
    client = clients("web-alice", "iot")
    username = signed_username(stack, "web-alice", token, KEY.sign(token))
    assert client.connect(stack.iot_port, username=username, ca_cert=stack.ca_cert_path)
    (event,) = spy.take()
    assert event["token"] == token and event["signatureVerified"] is True
    assert event["protocols"] == ["tls", "mqtt"]
    assert event["protocolData"]["tls"] == {"serverName": "localhost"}
    assert event["protocolData"]["mqtt"]["username"] == username  # as sent, suffix and all
    assert event["protocolData"]["mqtt"]["clientId"] == "web-alice"
    assert client.subscribe("web-alice/#")


@pytest.mark.parametrize("problem", ["no signature", "another token's", "not base64", "garbled"])
def test_a_missing_or_bad_signature_is_refused_without_calling_the_authorizer(
    stack: StackInfo, spy: AuthorizerSpy, clients: Callable[..., Mqtt], problem: str
) -> None:
    token = token_for(stack, "alice")
    signature = {
        "no signature": None,
        "another token's": KEY.sign(token_for(stack, "alice")),
        "not base64": "%%%not-base64%%%",
        "garbled": KEY.sign(token)[:-8] + "AAAAAAA=",
    }[problem]
    spy.take()
    client = clients("web-alice", "iot")
    username = signed_username(stack, "web-alice", token, signature)
    assert not client.connect(stack.iot_port, username=username, ca_cert=stack.ca_cert_path)
    assert str(client.connack) == "Not authorized"
    assert spy.take() == []  # IoT never invokes the authorizer for it


def test_a_key_not_among_the_authorizers_public_keys_is_refused(
    stack: StackInfo, spy: AuthorizerSpy, clients: Callable[..., Mqtt]
) -> None:
    token = token_for(stack, "bob")
    spy.take()
    client = clients("web-bob", "iot")
    username = signed_username(stack, "web-bob", token, SigningKey().sign(token))
    assert not client.connect(stack.iot_port, username=username, ca_cert=stack.ca_cert_path)
    assert spy.take() == []


def test_a_device_password_without_a_signed_token_is_refused(
    stack: StackInfo, spy: AuthorizerSpy, clients: Callable[..., Mqtt]
) -> None:
    device, secret = next(iter(stack.devices.items()))
    spy.take()
    client = clients(device, "tcp")
    assert not client.connect(
        stack.mqtt_port, username=username_for(stack, device), password=secret
    )
    assert spy.take() == []


def test_a_signed_token_in_the_websocket_url(
    stack: StackInfo, spy: AuthorizerSpy, clients: Callable[..., Mqtt]
) -> None:
    token = token_for(stack, "bob", alg="ES256")
    query = urlencode(
        {AUTHORIZER: stack.authorizer_name, SIGNATURE: KEY.sign(token), stack.token_key_name: token}
    )
    spy.take()
    client = clients("web-bob", "wss")
    assert client.connect(stack.iot_port, ws_path=f"/mqtt?{query}", ca_cert=stack.ca_cert_path)
    (event,) = spy.take()
    assert event["token"] == token and event["signatureVerified"] is True
    assert event["protocols"] == ["tls", "http", "mqtt"]
    assert event["protocolData"]["http"]["queryString"] == f"?{query}"


def test_https_publish_needs_the_signature_too(stack: StackInfo, spy: AuthorizerSpy) -> None:
    token = token_for(stack, "alice")
    headers = {AUTHORIZER: stack.authorizer_name, stack.token_key_name: token}
    spy.take()
    status, body = https_publish(stack, "web-alice/inbox", b"unsigned", headers=headers)
    assert (status, body["message"]) == (401, "Unauthorized")
    assert spy.take() == []
    status, body = https_publish(
        stack, "web-alice/inbox", b"signed", headers={**headers, SIGNATURE: KEY.sign(token)}
    )
    assert (status, body["message"]) == (200, "OK"), body
    (event,) = spy.take()
    assert event["token"] == token and event["signatureVerified"] is True
    assert event["protocols"] == ["tls", "http"]
