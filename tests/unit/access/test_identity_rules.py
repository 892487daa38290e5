"""Issue 9 (2, 3, 5): grants judged by what they can match, reserved names, rooms whose
sender is proven by the topic — at write time and again at run time."""

from __future__ import annotations

import pytest

from iotauth.access.policy import PolicySet
from iotauth.access.scoping import Scope, grant_problem, policy_documents, session_policy
from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.pairing import pairing_problems
from iotauth.identities.records import IdentityRecord, InvalidRecord
from iotauth.identities.store import MemoryStore
from tests.authorizer_support import (
    ARN,
    SETTINGS,
    add_secret_identity,
    aliyun_event,
    connect_event,
    decide,
)
from tests.authorizer_support import add_aliyun_identity as add_aliyun

ROOTS = ("chat",)


@pytest.mark.parametrize(
    ("grant", "why"),
    [
        ("**", "wildcard"),
        ("+/#", "wildcard"),
        ("+", "wildcard"),
        ("#/x", "wildcard"),
        ("*/telemetry", "wildcard"),
        ("sens*/x", "wildcard"),
        ("sensor-?/x", "wildcard"),
        ("/+/dn/x", "wildcard"),
        ("$aws/things/alice/shadow/update", "reserved"),
        ("$aws/#", "reserved"),
        ("chat/lobby", "shared root"),
        ("chat/#", "shared root"),
        ("chat", "shared root"),
        ("web-alice/#", "browser"),
        ("web-*", "wildcard"),
        ("/sys/+/+/thing/#", "Aliyun"),
        ("/ota/device/upgrade/pk/dn", "Aliyun"),
    ],
)
def test_broad_grants_are_named(grant: str, why: str) -> None:
    problem = grant_problem(grant, shared_roots=ROOTS, own_namespaces=("alice",))
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    "grant", ["broadcast/news", "alice/anything/#", "fleet/+/status", "alerts/*", "/bc/pk/x"]
)
def test_narrow_grants_pass(grant: str) -> None:
    assert grant_problem(grant, shared_roots=ROOTS, own_namespaces=("alice",)) is None


def test_a_grant_into_another_identity_is_broad() -> None:
    assert grant_problem("bob/#", shared_roots=ROOTS, other_namespaces=("bob",))
    assert grant_problem("bob", shared_roots=ROOTS, other_namespaces=("bob",))
    assert grant_problem("bo?/x", shared_roots=ROOTS, other_namespaces=("bob",))
    assert grant_problem("bobby/#", shared_roots=ROOTS, other_namespaces=("bob",)) is None


VERIFIER = hash_generated_secret(generate_secret())


def _secret(name: str, **fields: object) -> IdentityRecord:
    return IdentityRecord(username=name, kind="secret", verifier=VERIFIER, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("grant", ["**", "+/#", "$aws/things/x/shadow/get", "chat/lobby"])
def test_records_refuse_broad_grants_unless_allow_broad(grant: str) -> None:
    store = MemoryStore()
    with pytest.raises(InvalidRecord, match="allow-broad"):
        add_secret_identity(store, "alice", subscribe=(grant,))
    add_secret_identity(store, "alice", subscribe=(grant,), allow_broad=True)
    assert store.identities["alice"].allow_broad


def test_pairing_either_order() -> None:
    bob = _secret("bob")
    carol = _secret("carol", subscribe=("dave/#",))
    # A new grant whose first level is an existing identity's name ...
    assert pairing_problems(_secret("alice", subscribe=("bob/#",)), [bob], ROOTS)
    # ... and a new identity named like an existing grant's first level.
    problems = pairing_problems(_secret("dave"), [bob, carol], ROOTS)
    assert problems and "carol" in problems[0] and "dave/#" in problems[0]
    assert not pairing_problems(_secret("erin", subscribe=("news/#",)), [bob, carol], ROOTS)
    # Aliyun namespaces are namespaces too.
    dev = IdentityRecord(username="dn&pk1", kind="aliyun", device_secret="s")
    assert pairing_problems(_secret("x", subscribe=("/pk1/dn/#",)), [dev], ROOTS)
    assert pairing_problems(_secret("x", subscribe=("/pk1/+/#",)), [dev], ROOTS)


@pytest.mark.parametrize("name", ["chat"])
def test_a_device_cannot_be_named_like_a_shared_root(name: str) -> None:
    store = MemoryStore()
    with pytest.raises(InvalidRecord, match="shared topic root"):
        add_secret_identity(store, name)
    with pytest.raises(InvalidRecord, match="shared topic root"):
        add_secret_identity(store, name, allow_broad=True)
    with pytest.raises(InvalidRecord, match="shared topic root"):
        _secret("rooms").validate(("rooms", "chat"))


@pytest.mark.parametrize("product_key", ["sys", "ota", "shadow", "ext", "broadcast"])
def test_aliyun_system_roots_are_reserved_product_keys(product_key: str) -> None:
    with pytest.raises(InvalidRecord, match="reserved"):
        add_aliyun(MemoryStore(), "device", product_key, "s")


def test_reserved_names_and_broad_grants_are_denied_at_run_time() -> None:
    """Records written before the rules (bypassing validation) are denied by the authorizer."""
    store = MemoryStore()
    secret = add_secret_identity(store, "placeholder")
    verifier = store.identities["placeholder"].verifier
    store.identities["chat"] = IdentityRecord(username="chat", kind="secret", verifier=verifier)
    assert decide(store, connect_event("chat", secret, "chat")).reason == "invalid-record"
    store.identities["wide"] = IdentityRecord(
        username="wide", kind="secret", verifier=verifier, subscribe=("+/#",)
    )
    assert decide(store, connect_event("wide", secret, "wide")).reason == "broad-grant"
    store.identities["wide"] = IdentityRecord(
        username="wide", kind="secret", verifier=verifier, subscribe=("+/#",), allow_broad=True
    )
    assert decide(store, connect_event("wide", secret, "wide")).allowed
    # The deployment's roots come from its settings: a root added later denies a device
    # named like it.
    store.identities["rooms"] = IdentityRecord(username="rooms", kind="secret", verifier=verifier)
    assert decide(store, connect_event("rooms", secret, "rooms")).allowed
    wider = SETTINGS.__class__(table="t", shared_roots=("chat", "rooms"))
    assert decide(store, connect_event("rooms", secret, "rooms"), settings=wider).reason == (
        "invalid-record"
    )


# -- rooms: the sender is the topic's last level ---------------------------------------------


def _policy(scope: Scope) -> PolicySet:
    return PolicySet(policy_documents(scope, ARN))


def test_room_policy_publishes_only_as_itself() -> None:
    scope = Scope(client_ids=("sensor-1",), namespaces=("sensor-1",), rooms=("chat/lobby",))
    for documents in (policy_documents(scope, ARN), [session_policy(scope, ARN)]):
        policy = PolicySet(documents)
        topic = ARN.resource("topic", "chat/lobby/sensor-1")
        assert policy.allows("iot:Publish", topic)
        for forged in ("chat/lobby/sensor-2", "chat/lobby", "chat/lobby/sensor-1/x", "chat/x"):
            assert not policy.allows("iot:Publish", ARN.resource("topic", forged)), forged
        assert policy.allows("iot:Subscribe", ARN.resource("topicfilter", "chat/lobby/+"))
        assert not policy.allows("iot:Subscribe", ARN.resource("topicfilter", "chat/lobby/#"))
        assert not policy.allows("iot:Subscribe", ARN.resource("topicfilter", "chat/+/+"))
        assert policy.allows("iot:Receive", ARN.resource("topic", "chat/lobby/web-alice"))
        assert not policy.allows("iot:Receive", ARN.resource("topic", "chat/other/web-alice"))


def test_rooms_must_lie_under_a_shared_root() -> None:
    store = MemoryStore()
    for room in ("chat", "elsewhere/lobby", "chat/+", "chat/*", "/chat/x"):
        with pytest.raises(InvalidRecord):
            add_secret_identity(store, "alice", rooms=(room,))
    add_secret_identity(store, "alice", rooms=("chat/lobby",))


def test_authorizer_room_sender_is_the_connections_client_id() -> None:
    store = MemoryStore()
    secret = add_secret_identity(
        store, "sensor-1", client_ids=("sensor-1", "sensor-1b"), rooms=("chat/lobby",)
    )
    decision = decide(store, connect_event("sensor-1", secret, "sensor-1b"))
    policy = PolicySet(decision.policy_documents)
    assert policy.allows("iot:Publish", ARN.resource("topic", "chat/lobby/sensor-1b"))
    assert not policy.allows("iot:Publish", ARN.resource("topic", "chat/lobby/sensor-1"))


def test_aliyun_room_sender_is_its_registered_id_not_what_it_signed() -> None:
    store = MemoryStore()
    add_aliyun(store, "dn1", "pk1", "s1", rooms=("chat/lobby",), any_client_id=True)
    decision = decide(store, aliyun_event("dn1", "pk1", "s1", client_id="AABBCCDDEEFF"))
    assert decision.allowed
    policy = PolicySet(decision.policy_documents)
    assert policy.allows("iot:Publish", ARN.resource("topic", "chat/lobby/pk1&dn1"))
    assert not policy.allows("iot:Publish", ARN.resource("topic", "chat/lobby/AABBCCDDEEFF"))
