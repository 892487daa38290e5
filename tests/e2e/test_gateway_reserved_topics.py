"""IoT Core's reserved ``$aws/…`` topics need an explicit grant, and then work; other ``$``
topics are refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.conftest import Mqtt, unique, username_for

pytestmark = pytest.mark.e2e


def _connect(client: Mqtt, info: StackInfo, name: str, secret: str) -> None:
    assert client.connect(info.tcp_port, username=username_for(info, name), password=secret)


def test_granted_reserved_topic_round_trips(
    stack: StackInfo, add_device: Callable[..., str], clients: Callable[..., Mqtt]
) -> None:
    name = unique("thing")
    shadow = f"$aws/things/{name}/shadow/update"
    secret = add_device(name, publish=(shadow,), subscribe=(shadow,), allow_broad=True)
    device = clients(name)
    _connect(device, stack, name, secret)
    assert device.subscribe(shadow)
    device.publish(shadow, b'{"state":{}}', qos=1)
    message = device.next_message()
    assert (message.topic, message.payload) == (shadow, b'{"state":{}}')
    assert not device.disconnected.is_set()
    # Its own namespace's wildcard does not reach into '$' topics.
    assert device.subscribe(f"{name}/#")
    device.publish(shadow, b"again", qos=1)
    device.publish(f"{name}/end", b"", qos=1)
    assert [device.next_message().topic for _ in range(2)] == [shadow, f"{name}/end"]


@pytest.mark.parametrize(
    "topic",
    ["$aws/things/{other}/shadow/update", "$SYS/broker/clients", "$aws/events/presence/x"],
)
def test_ungranted_dollar_topics_are_refused(
    stack: StackInfo, add_device: Callable[..., str], clients: Callable[..., Mqtt], topic: str
) -> None:
    name, other = unique("thing"), unique("other")
    topic = topic.format(other=other)
    secret = add_device(name, publish=(f"$aws/things/{name}/shadow/update",), allow_broad=True)
    watcher_name = unique("watch")
    reserved = topic.startswith("$aws/")  # grantable; '$SYS/…' is not even that
    watcher = clients(watcher_name)
    grants = (topic,) if reserved else ()
    _connect(
        watcher, stack, watcher_name, add_device(watcher_name, subscribe=grants, allow_broad=True)
    )
    assert watcher.subscribe(topic) is reserved
    device = clients(name)
    _connect(device, stack, name, secret)
    assert not device.subscribe(topic)  # SUBACK 0x80
    device.publish(topic, b"x", qos=1)
    assert device.disconnected.wait(5)  # a denied PUBLISH ends the connection
    assert watcher.received() == []
