"""The disabled-user record and the client role's deny list (pure: no AWS)."""

from __future__ import annotations

import json

import pytest

from iotauth.access.names import InvalidName
from iotauth.access.policy import PolicySet
from iotauth.identities.web_users import (
    DENY_POLICY_BUDGET,
    RETAIN_SECONDS,
    DenyList,
    DenyListFull,
    DisabledUser,
    capacity,
    webuser_key,
)

ACCOUNT = "123456789012"


def test_the_record_is_keyed_by_the_signers_own_username() -> None:
    user = DisabledUser.for_subject("auth0|123", 1_800_000_000, "arn:aws:iam::1:user/op", "x")
    assert user.username.startswith("web-") and len(user.username) == 44  # a digest name
    assert user.client_ids == (user.username,)
    item = user.to_item()
    assert item["pk"] == {"S": f"webuser#{user.username}"}
    assert DisabledUser.from_item(item) == user
    with pytest.raises(InvalidName):
        webuser_key("alice")  # not a web username: never a device's name
    with pytest.raises(InvalidName):
        webuser_key("web-a/b")


def test_the_policy_denies_connect_on_exactly_those_client_ids() -> None:
    deny = DenyList().with_entry("web-bob", 2).with_entry("web-alice", 1)
    policies = PolicySet([deny.policy("aws", ACCOUNT) or ""])
    arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:client/"
    assert policies.evaluate("iot:Connect", arn + "web-alice").value == "explicit-deny"
    assert policies.evaluate("iot:Connect", arn + "web-alice2").value == "implicit-deny"
    # Only Connect: a topic Deny on the role would bind every user's session (shared rooms).
    topic = f"arn:aws:iot:us-east-1:{ACCOUNT}:topic/chat/lobby/web-alice"
    assert policies.evaluate("iot:Receive", topic).value == "implicit-deny"
    assert not DenyList().policy("aws", ACCOUNT)  # empty: no policy at all
    with pytest.raises(InvalidName):
        deny.with_entry("web-*", 3)  # a wildcard would deny others


def test_compaction_and_the_budget() -> None:
    now = 1_800_000_000
    deny = DenyList({"web-old": now - RETAIN_SECONDS - 1, "web-new": now - 10}, version=7)
    assert deny.compacted(now) == DenyList({"web-new": now - 10}, version=7)
    fits = capacity(40)
    full = DenyList({f"web-{i:036d}": now for i in range(fits)})
    assert len(full.policy("aws", ACCOUNT) or "") <= DENY_POLICY_BUDGET
    with pytest.raises(DenyListFull):
        full.with_entry(f"web-{fits:036d}", now).policy("aws", ACCOUNT)
    stored = full.to_item(version=3)
    assert DenyList.from_item(stored) == DenyList(dict(full.entries), 3)
    assert json.loads(stored["entries"]["S"])  # one JSON string attribute
