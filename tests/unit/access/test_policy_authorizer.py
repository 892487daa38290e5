"""What the authorizer's policies allow, evaluated with IoT policy semantics (REFERENCE §4).

Proves that one identity cannot connect as another or touch another's topics, whatever
client id or topic trick it tries.
"""

from __future__ import annotations

import json

import pytest

from iotauth.access.policy import Decision, PolicySet
from iotauth.identities.store import MemoryStore
from tests.authorizer_support import (
    ARN,
    add_aliyun_identity,
    add_secret_identity,
    aliyun_event,
    connect_event,
    decide,
)


@pytest.fixture(scope="module")
def policies() -> dict[str, PolicySet]:
    store = MemoryStore()
    alice = add_secret_identity(store, "alice")
    bob = add_secret_identity(store, "bob")
    add_aliyun_identity(store, "sensor1", "pk1", "s1")
    add_aliyun_identity(store, "sensor2", "pk1", "s2")
    result = {}
    for name, event in (
        ("alice", connect_event("alice", alice, "alice")),
        ("bob", connect_event("bob", bob, "bob")),
        ("sensor1", aliyun_event("sensor1", "pk1", "s1")),
    ):
        decision = decide(store, event)
        assert decision.allowed
        result[name] = PolicySet(decision.policy_documents)
    return result


def client(cid: str) -> str:
    return ARN.resource("client", cid)


def topic(name: str) -> str:
    return ARN.resource("topic", name)


def topicfilter(name: str) -> str:
    return ARN.resource("topicfilter", name)


@pytest.mark.parametrize(
    "client_id",
    ["bob", "*", "+", "#", "bob*", "alice*", "alice?", "alice/bob", "alice2", "Alice", ""],
)
def test_alice_connects_only_as_alice(policies: dict[str, PolicySet], client_id: str) -> None:
    alice = policies["alice"]
    assert alice.allows("iot:Connect", client("alice"))
    assert not alice.allows("iot:Connect", client(client_id))


@pytest.mark.parametrize(
    "name",
    [
        "bob/x",
        "bob/#",
        "bob/+",
        "alice/../bob/x",
        "alice*",
        "alic",
        "bob",
        "alicebob/x",
        "x/alice/y",
    ],
)
def test_alice_cannot_touch_other_topics(policies: dict[str, PolicySet], name: str) -> None:
    alice = policies["alice"]
    # "alice/../bob/x" is just a topic below alice/ (MQTT has no path traversal): allowed as
    # alice's own topic; bob's real topic "bob/x" stays out of reach.
    own = name.startswith("alice/")
    assert alice.allows("iot:Publish", topic(name)) is own
    assert alice.allows("iot:Receive", topic(name)) is own
    assert alice.allows("iot:Subscribe", topicfilter(name)) is own


def test_own_topics(policies: dict[str, PolicySet]) -> None:
    alice = policies["alice"]
    for action, resource in (
        ("iot:Publish", topic("alice/telemetry")),
        ("iot:Receive", topic("alice/commands/reboot")),
        ("iot:Subscribe", topicfilter("alice/#")),
        ("iot:Subscribe", topicfilter("alice/+/status")),
    ):
        assert alice.allows(action, resource)
    assert not alice.allows("iot:Subscribe", topicfilter("#"))
    assert not alice.allows("iot:Subscribe", topicfilter("+/telemetry"))
    assert not alice.allows("iot:Publish", topic("$aws/things/bob/shadow/update"))
    assert not alice.allows("iot:DeleteThingShadow", ARN.resource("thing", "alice"))
    assert not alice.allows(
        "iot:Connect", ARN.resource("client", "alice").replace("123456789012", "999999999999")
    )


def test_no_wildcard_actions_or_resources(policies: dict[str, PolicySet]) -> None:
    store = MemoryStore()
    secret = add_secret_identity(store, "alice")
    documents = decide(store, connect_event("alice", secret, "alice")).policy_documents
    for document in documents:
        parsed = json.loads(document)
        for statement in parsed["Statement"]:
            assert statement["Effect"] == "Allow"
            assert all(a != "iot:*" and "*" not in a for a in statement["Action"])
            assert all(r != "*" and not r.endswith(":*") for r in statement["Resource"])
            assert "${" not in json.dumps(statement)


def test_aliyun_devices_are_separated(policies: dict[str, PolicySet]) -> None:
    sensor1 = policies["sensor1"]
    assert sensor1.allows("iot:Publish", topic("/pk1/sensor1/user/data"))
    assert sensor1.allows("iot:Publish", topic("/sys/pk1/sensor1/thing/event/property/post"))
    for name in ("/pk1/sensor2/user/data", "/sys/pk1/sensor2/x", "/pk1/sensor1x/y", "alice/x"):
        assert not sensor1.allows("iot:Publish", topic(name))
        assert not sensor1.allows("iot:Subscribe", topicfilter(name))
    assert not sensor1.allows("iot:Connect", client("pk1&sensor2"))
    assert not sensor1.allows("iot:Connect", client("pk1&sensor1"))  # only its full client id


def test_explicit_deny_wins(policies: dict[str, PolicySet]) -> None:
    store = MemoryStore()
    secret = add_secret_identity(store, "alice")
    documents = list(decide(store, connect_event("alice", secret, "alice")).policy_documents)
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Action": "iot:Publish", "Resource": topic("alice/secret/*")}
        ],
    }
    combined = PolicySet([*documents, json.dumps(deny)])
    assert combined.evaluate("iot:Publish", topic("alice/secret/x")) is Decision.EXPLICIT_DENY
    assert combined.allows("iot:Publish", topic("alice/public/x"))
