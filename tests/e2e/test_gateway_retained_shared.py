"""Retained messages and shared subscriptions through the stand-in, with real paho clients.

- IoT Core sends a retained message on subscribe only to a filter that is exactly its topic
  (https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-retain); a wildcard
  subscriber gets later messages on the topic, not the retained one.
- ``devices add --retain`` grants ``iot:RetainPublish`` on the identity's own topics; without
  it a retained PUBLISH is refused (MQTT 5 QoS 1: PUBACK 0x87; otherwise the connection ends).
- ``--shared`` grants ``$share/<group>/<filter>`` within its own topics; without it the
  SUBSCRIBE is refused (SUBACK 0x87 / 0x80).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.records import IdentityRecord
from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.e2e.conftest import WAIT, Message, Mqtt, unique, username_for
from tests.e2e.test_gateway_presigned import connect_ws, signed_url
from tests.stack_support import stack_store

pytestmark = pytest.mark.e2e

QUIET = 1.0  # seconds a client must stay without a message to count as "got nothing"


class RetainAware(Mqtt):
    """An :class:`Mqtt` that also records each message's RETAIN flag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: list[tuple[str, bool]] = []
        super().__init__(*args, **kwargs)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.flags.append((message.topic, bool(message.retain)))
        self.messages.put(Message(message.topic, bytes(message.payload)))


Make = Callable[..., RetainAware]


@pytest.fixture
def clients() -> Iterator[Make]:
    made: list[RetainAware] = []

    def make(client_id: str, version: int = 4) -> RetainAware:
        client = RetainAware(client_id, "tcp", version)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def add_identity(stack: StackInfo) -> Callable[..., str]:
    """``add_identity(name, client_ids=(), retain=False, shared=False)`` → its secret."""
    store = stack_store(stack)

    def add(
        name: str, client_ids: tuple[str, ...] = (), *, retain: bool = False, shared: bool = False
    ) -> str:
        secret = generate_secret()
        now = int(time.time())
        store.add_identity(
            IdentityRecord(
                username=name,
                kind="secret",
                verifier=hash_generated_secret(secret),
                client_ids=client_ids,
                created_at=now,
                updated_at=now,
                retain=retain,
                shared=shared,
            )
        )
        return secret

    return add


def _connect(client: Mqtt, info: StackInfo, name: str, secret: str) -> None:
    assert client.connect(info.tcp_port, username=username_for(info, name), password=secret)


def _quiet(client: RetainAware) -> list[Message]:
    time.sleep(QUIET)
    return client.received()


@pytest.mark.parametrize("version", [4, 5])
def test_retained_message_reaches_only_an_exact_subscription(
    stack: StackInfo, add_identity: Callable[..., str], clients: Make, version: int
) -> None:
    name = unique("cfg")
    ids = (name, f"{name}-exact", f"{name}-wild")
    secret = add_identity(name, client_ids=ids, retain=True)
    publisher = clients(name, version)
    _connect(publisher, stack, name, secret)
    mid = publisher.publish(f"{name}/cfg", b"v1", qos=1, retain=True)
    ack = publisher.wait_ack(mid)
    assert ack is not None and not ack.is_failure and not publisher.disconnected.is_set()

    wild = clients(f"{name}-wild", version)
    _connect(wild, stack, name, secret)
    assert wild.subscribe(f"{name}/#")
    assert _quiet(wild) == []  # IoT: no retained message for a wildcard filter

    exact = clients(f"{name}-exact", version)
    _connect(exact, stack, name, secret)
    assert exact.subscribe(f"{name}/cfg")
    message = exact.next_message()
    assert (message.topic, message.payload) == (f"{name}/cfg", b"v1")
    assert exact.flags == [(f"{name}/cfg", True)]  # sent because of the subscription

    # A live message on the topic reaches both, RETAIN clear (no Retain As Published).
    publisher.publish(f"{name}/cfg", b"v2", qos=1, retain=True)
    assert exact.next_message().payload == b"v2"
    message = wild.next_message()
    assert (message.topic, message.payload) == (f"{name}/cfg", b"v2")
    assert wild.flags == [(f"{name}/cfg", False)]

    # After UNSUBSCRIBE the exact filter is gone: a wildcard re-subscribe gets nothing old.
    exact.client.unsubscribe(f"{name}/cfg")
    time.sleep(0.3)
    assert exact.subscribe(f"{name}/#")
    assert _quiet(exact) == []


def test_wildcard_subscription_to_a_granted_topic_gets_no_retained_message_v5_options(
    stack: StackInfo, add_identity: Callable[..., str], clients: Make
) -> None:
    """An MQTT 5 client asking explicitly for retained messages (Retain Handling 0) on a
    wildcard filter still gets none; on the exact topic with Retain Handling 2 it gets none
    either (the client's own choice is kept)."""
    from paho.mqtt.subscribeoptions import SubscribeOptions

    name = unique("opts")
    secret = add_identity(name, client_ids=(name, f"{name}-s"), retain=True)
    publisher = clients(name, 5)
    _connect(publisher, stack, name, secret)
    publisher.wait_ack(publisher.publish(f"{name}/cfg", b"x", qos=1, retain=True))
    subscriber = clients(f"{name}-s", 5)
    _connect(subscriber, stack, name, secret)
    result, _ = subscriber.client.subscribe(
        f"{name}/#", options=SubscribeOptions(qos=1, retainHandling=0)
    )
    assert result == 0
    result, _ = subscriber.client.subscribe(
        f"{name}/cfg", options=SubscribeOptions(qos=1, retainHandling=2)
    )
    assert result == 0
    assert _quiet(subscriber) == []


@pytest.mark.parametrize("version", [4, 5])
def test_retained_publish_without_retain_is_refused(
    stack: StackInfo, add_identity: Callable[..., str], clients: Make, version: int
) -> None:
    name = unique("noret")
    secret = add_identity(name, client_ids=(name, f"{name}-s"))
    publisher = clients(name, version)
    _connect(publisher, stack, name, secret)
    mid = publisher.publish(f"{name}/cfg", b"x", qos=1, retain=True)
    if version == 5:
        ack = publisher.wait_ack(mid)
        assert ack is not None and ack.value == 0x87  # Not authorized
        assert not publisher.disconnected.is_set()
        publisher.wait_ack(publisher.publish(f"{name}/plain", b"ok", qos=1))  # still usable
    else:
        assert publisher.disconnected.wait(WAIT)  # MQTT 3.1.1 can only close
    subscriber = clients(f"{name}-s", version)
    _connect(subscriber, stack, name, secret)
    assert subscriber.subscribe(f"{name}/cfg")
    assert _quiet(subscriber) == []  # nothing was retained


def test_shared_subscribers_share_the_deliveries(
    stack: StackInfo, add_identity: Callable[..., str], clients: Make
) -> None:
    name = unique("jobs")
    ids = (name, f"{name}-w1", f"{name}-w2")
    secret = add_identity(name, client_ids=ids, shared=True)
    workers = [clients(f"{name}-w{i}", 5) for i in (1, 2)]
    for worker in workers:
        _connect(worker, stack, name, secret)
        assert worker.subscribe(f"$share/g/{name}/jobs/+")
    publisher = clients(name, 5)
    _connect(publisher, stack, name, secret)
    sent = [f"job-{i}".encode() for i in range(8)]
    for payload in sent:
        publisher.wait_ack(publisher.publish(f"{name}/jobs/a", payload, qos=1))
    time.sleep(QUIET)
    got = [[m.payload for m in worker.received()] for worker in workers]
    assert sorted(got[0] + got[1]) == sorted(sent)  # each job once, to one worker
    assert got[0] and got[1]  # and both workers had some


@pytest.mark.parametrize("version", [4, 5])
def test_shared_subscription_needs_shared(
    stack: StackInfo, add_identity: Callable[..., str], clients: Make, version: int
) -> None:
    plain = unique("plain")
    client = clients(plain, version)
    _connect(client, stack, plain, add_identity(plain))
    assert not client.subscribe(f"$share/g/{plain}/#")
    assert client.last_suback[0].value == (0x87 if version == 5 else 0x80)
    assert client.subscribe(f"{plain}/#")  # the plain filter is still its own

    sharer, other = unique("sharer"), unique("other")
    add_identity(other, shared=True)
    client = clients(sharer, version)
    _connect(client, stack, sharer, add_identity(sharer, shared=True))
    for foreign in (f"$share/g/{other}/#", f"$share/g/{other}/{sharer}/x", "$share/g/#"):
        assert not client.subscribe(foreign), foreign
    assert client.subscribe(f"$share/g/{sharer}/#")


# -- browser users, with the template parameters on ---------------------------------------


def test_web_user_with_the_template_parameters(clients: Make) -> None:
    parameters = {"WebAllowRetain": "true", "WebAllowSharedSubscriptions": "true"}
    with LocalStack(LocalPorts.any_free(), parameters=parameters) as running:
        info = running.info
        answer = signed_url(info, "alice")
        me = answer["clientId"]
        browser = RetainAware(me, "ws", 4)
        try:
            assert connect_ws(browser, info, answer["url"])
            mid = browser.publish(f"{me}/cfg", b"theme=dark", qos=1, retain=True)
            assert browser.wait_ack(mid) is not None and not browser.disconnected.is_set()
            assert browser.subscribe(f"$share/tabs/{me}/#")
            assert not browser.subscribe("$share/tabs/chat/lobby/+")  # rooms are not its own
            assert browser.subscribe(f"{me}/#")
            assert _quiet(browser) == []  # no retained message for the wildcard filters
            assert browser.subscribe(f"{me}/cfg")
            assert browser.next_message().payload == b"theme=dark"
        finally:
            browser.close()
