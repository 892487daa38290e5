"""Cross-identity isolation corner cases found in review: namespaces and client ids that
two different identities could share (REFERENCE §4: a shared client id lets one kick off the
other; an overlapping namespace lets one read the other's topics)."""

from __future__ import annotations

import pytest

from iotauth.access.policy import PolicySet
from iotauth.identities.records import IdentityRecord, InvalidRecord
from iotauth.identities.store import MemoryStore
from tests.authorizer_support import (
    ARN,
    add_aliyun_identity,
    add_secret_identity,
    aliyun_event,
    connect_event,
    decide,
)


def test_aliyun_product_key_sys_cannot_cover_other_devices_sys_topics() -> None:
    # Device "dn2" of product "sys" would own "/sys/dn2/*", which is also the "/sys/{pk}/{dn}"
    # namespace of every device of a product named "dn2".
    store = MemoryStore()
    with pytest.raises(InvalidRecord, match="reserved"):
        add_aliyun_identity(store, "dn2", "sys", "s1")
    add_aliyun_identity(store, "dn2", "Sys", "s1")  # topics are case-sensitive: no overlap


def test_aliyun_product_key_sys_is_denied_at_run_time() -> None:
    store = MemoryStore()
    # A record written before the rule existed (bypassing validation) is denied.
    store.identities["victim&sys"] = IdentityRecord(
        username="victim&sys", kind="aliyun", device_secret="s1"
    )
    decision = decide(store, aliyun_event("victim", "sys", "s1"))
    assert not decision.allowed
    assert decision.reason == "invalid-record"


def test_secret_device_policy_does_not_cover_aliyun_topics() -> None:
    store = MemoryStore()
    secret = add_secret_identity(store, "sys")
    decision = decide(store, connect_event("sys", secret, "sys"))
    assert decision.allowed
    policy = PolicySet(decision.policy_documents)
    assert not policy.allows("iot:Publish", ARN.resource("topic", "/sys/pk1/dn/x"))
    assert not policy.allows("iot:Subscribe", ARN.resource("topicfilter", "/sys/pk1/dn/#"))


def test_aliyun_device_cannot_use_another_identitys_client_id() -> None:
    store = MemoryStore()
    add_secret_identity(store, "alice")
    add_aliyun_identity(store, "alice", "pk1", "s1")
    add_aliyun_identity(store, "alice", "pk2", "s2")
    # The bare device name "alice" is the default client id of the device "alice", and
    # would be shared by device "alice" of every product.
    for pk, secret in (("pk1", "s1"), ("pk2", "s2")):
        decision = decide(store, aliyun_event("alice", pk, secret, client_id="alice"))
        assert not decision.allowed
        assert decision.reason == "client-id-not-allowed"
        assert decide(store, aliyun_event("alice", pk, secret)).allowed  # "pk&alice"


def test_aliyun_device_may_list_its_device_name_explicitly() -> None:
    store = MemoryStore()
    add_aliyun_identity(store, "sensor9", "pk1", "s1", client_ids=("sensor9",))
    assert decide(store, aliyun_event("sensor9", "pk1", "s1", client_id="sensor9")).allowed


@pytest.mark.parametrize("kind", ["secret", "aliyun"])
def test_device_client_ids_may_not_take_the_web_prefix(kind: str) -> None:
    # "web-…" client ids belong to browser users (names.web_username); a device holding one
    # could disconnect that user.
    store = MemoryStore()
    with pytest.raises(InvalidRecord, match="web-"):
        if kind == "secret":
            add_secret_identity(store, "bob", client_ids=("web-victim",))
        else:
            add_aliyun_identity(store, "bob", "pk1", "s1", client_ids=("web-victim",))


def test_web_client_id_is_denied_at_run_time() -> None:
    store = MemoryStore()
    # Written before the rule existed (bypassing validation).
    secret = add_secret_identity(store, "bob")
    store.identities["bob"] = store.identities["bob"].replace(client_ids=("web-victim",))
    decision = decide(store, connect_event("bob", secret, "web-victim"))
    assert decision.reason == "client-id-not-allowed"
