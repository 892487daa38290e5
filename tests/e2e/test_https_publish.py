"""HTTPS publish on the IoT port: ``POST /topics/<topic>?qos=1`` with a browser user's JWT,
checked by the real authorizer, delivered to MQTT subscribers (custom-auth.html "HTTPS").

A real HTTP client (``http.client`` over TLS, the stack's CA, SNI ``localhost``) posts; a
device in the room, connected over MQTT with its password, is the subscriber. The token is
passed as IoT documents it: the authorizer's TokenKeyName header (or query parameter) and
``x-amz-customauthorizer-name``.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator

import pytest

from iotauth.local.stack import LocalStack, StackInfo
from tests.e2e.conftest import WAIT, Mqtt, username_for
from tests.e2e.token_support import (
    AUTHORIZER,
    JWT_USERNAME,
    AuthorizerSpy,
    https_publish,
    token_for,
)


@pytest.fixture(scope="module")
def spy(local_stack: LocalStack) -> Iterator[AuthorizerSpy]:
    recorder = AuthorizerSpy(local_stack)
    yield recorder
    recorder.restore()


@pytest.fixture
def room_listener(stack: StackInfo, clients: Callable[..., Mqtt]) -> Mqtt:
    """A demo device in the room, subscribed to every sender's topic there."""
    device, secret = next(iter(stack.devices.items()))
    listener = clients(device, "tcp")
    assert listener.connect(stack.mqtt_port, username=username_for(stack, device), password=secret)
    assert listener.subscribe(f"{stack.chat_room}/+")
    return listener


@pytest.fixture
def alice_inbox(stack: StackInfo, clients: Callable[..., Mqtt]) -> Mqtt:
    """alice herself over MQTT (her JWT as the password of ``$jwt``), on her own topics."""
    listener = clients("web-alice", "tcp")
    username = username_for(stack, JWT_USERNAME)
    assert listener.connect(stack.mqtt_port, username=username, password=token_for(stack, "alice"))
    assert listener.subscribe("web-alice/#")
    return listener


def headers_for(stack: StackInfo, token: str) -> dict[str, str]:
    return {AUTHORIZER: stack.authorizer_name, stack.token_key_name: token}


def test_a_user_publishes_to_its_own_topic_and_its_subscription_gets_it(
    stack: StackInfo, alice_inbox: Mqtt
) -> None:
    token = token_for(stack, "alice", alg="ES256")
    status, body = https_publish(
        stack, "web-alice/inbox", b"note", headers=headers_for(stack, token)
    )
    assert (status, body["message"]) == (200, "OK"), body
    message = alice_inbox.next_message(WAIT)
    assert (message.topic, message.payload) == ("web-alice/inbox", b"note")


def test_a_user_publishes_to_its_room_topic_and_a_device_receives_it(
    stack: StackInfo, spy: AuthorizerSpy, room_listener: Mqtt
) -> None:
    token = token_for(stack, "alice")
    spy.take()
    topic = f"{stack.chat_room}/web-alice"
    status, body = https_publish(
        stack, topic, b'{"text":"hi over https"}', headers=headers_for(stack, token)
    )
    assert status == 200, body
    assert body["message"] == "OK" and body["traceId"]
    message = room_listener.next_message(WAIT)
    assert (message.topic, message.payload) == (topic, b'{"text":"hi over https"}')

    (event,) = spy.take()
    # IoT's HTTPS event (custom-auth-lambda.html): TLS and HTTP, no MQTT part, no client id.
    assert event["protocols"] == ["tls", "http"]
    assert event["protocolData"]["tls"] == {"serverName": "localhost"}
    assert set(event["protocolData"]) == {"tls", "http"}
    http = event["protocolData"]["http"]
    assert http["queryString"] == "?qos=1"
    assert {k.lower(): v for k, v in http["headers"].items()}[stack.token_key_name] == token
    assert event["signatureVerified"] is False and "token" not in event  # signing disabled
    assert event["connectionMetadata"]["id"] == body["traceId"]


def test_the_token_in_the_query_string_works_too(stack: StackInfo, room_listener: Mqtt) -> None:
    token = token_for(stack, "bob", alg="ES256")
    topic = f"{stack.chat_room}/web-bob"
    query = {AUTHORIZER: stack.authorizer_name, stack.token_key_name: token}
    status, body = https_publish(stack, topic, b"from bob", query=query)
    assert status == 200, body
    assert room_listener.next_message(WAIT).topic == topic


def test_a_topic_its_policy_does_not_allow_is_forbidden(
    stack: StackInfo, room_listener: Mqtt
) -> None:
    token = token_for(stack, "alice")
    # alice may not post as bob in the room, nor anywhere outside its own topics.
    for topic in (f"{stack.chat_room}/web-bob", "sensor-1/telemetry"):
        status, body = https_publish(stack, topic, b"spoof", headers=headers_for(stack, token))
        assert (status, body["message"]) == (403, "Forbidden"), topic
    with pytest.raises(queue.Empty):
        room_listener.next_message(1.0)


def test_without_a_valid_token_it_is_unauthorized(
    stack: StackInfo, spy: AuthorizerSpy, room_listener: Mqtt
) -> None:
    topic = f"{stack.chat_room}/web-alice"
    token = token_for(stack, "alice")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for headers in (
        {AUTHORIZER: stack.authorizer_name},  # no token at all
        headers_for(stack, forged),  # a signature that does not verify
        {AUTHORIZER: stack.authorizer_name, stack.token_key_name: "not-a-jwt"},
    ):
        status, body = https_publish(stack, topic, b"x", headers=headers)
        assert (status, body["message"]) == (401, "Unauthorized")
    # No authorizer named: iot:Data-ATS has no default one; the authorizer is never asked.
    spy.take()
    status, _ = https_publish(stack, topic, b"x", headers={stack.token_key_name: token})
    assert status == 401
    assert spy.take() == []
    with pytest.raises(queue.Empty):
        room_listener.next_message(1.0)


def test_bad_requests_are_refused_before_the_authorizer(
    stack: StackInfo, spy: AuthorizerSpy
) -> None:
    token = token_for(stack, "alice")
    topic = f"{stack.chat_room}/web-alice"
    spy.take()
    status, _ = https_publish(
        stack, topic, b"x", headers=headers_for(stack, token), query={"qos": "2"}
    )
    assert status == 400  # IoT's HTTPS publish takes QoS 0 or 1
    status, _ = https_publish(
        stack, topic, b"x" * (128 * 1024 + 1), headers=headers_for(stack, token)
    )
    assert status == 413  # the 128 KB payload quota
    assert spy.take() == []


def test_a_wildcard_topic_is_a_bad_request(stack: StackInfo) -> None:
    token = token_for(stack, "alice")
    status, _ = https_publish(
        stack, f"{stack.chat_room}/+", b"x", headers=headers_for(stack, token)
    )
    assert status == 400
