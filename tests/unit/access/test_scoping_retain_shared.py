"""Retained messages and shared subscriptions, granted on an identity's own topics only.

One rule (``Scope(retain=…, shared=…)`` → :func:`policy_statements`) for the authorizer's
policy documents and the signer's session policy; evaluated here with IoT's semantics
(``iot:RetainPublish`` on ``topic/<topic>``, ``iot:Subscribe`` on
``topicfilter/$share/<group>/<filter>``, ``iot:Receive`` on each delivery's topic).
"""

from __future__ import annotations

import json

import pytest

from iotauth.access.policy import Decision, PolicySet
from iotauth.access.scoping import (
    MAX_POLICY_CHARS,
    MAX_POLICY_DOCUMENTS,
    ArnContext,
    PolicyTooLarge,
    Scope,
    policy_documents,
    session_policy,
)
from iotauth.browser.web_signing import SignerSettings, WebSigner
from iotauth.identities.records import IdentityRecord, InvalidRecord
from iotauth.identities.store import MemoryStore
from iotauth.local.gateway.grants import AllOf
from iotauth.local.stack import TEMPLATE_PATH
from iotauth.local.template import Template
from tests.authorizer_support import (
    ARN,
    add_aliyun_identity,
    add_secret_identity,
    aliyun_event,
    connect_event,
    decide,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/iot-client"


def topic(name: str) -> str:
    return ARN.resource("topic", name)


def topicfilter(name: str) -> str:
    return ARN.resource("topicfilter", name)


def _authorizer_policy(**fields: object) -> PolicySet:
    store = MemoryStore()
    secret = add_secret_identity(store, "alice", **fields)
    add_secret_identity(store, "bob")
    decision = decide(store, connect_event("alice", secret, "alice"))
    assert decision.allowed
    for document in decision.policy_documents:
        assert len(document) <= MAX_POLICY_CHARS
    return PolicySet(decision.policy_documents)


@pytest.fixture(scope="module")
def granted() -> PolicySet:
    return _authorizer_policy(
        retain=True, shared=True, publish=("news/alice",), subscribe=("news/#",)
    )


@pytest.fixture(scope="module")
def plain() -> PolicySet:
    return _authorizer_policy(publish=("news/alice",), subscribe=("news/#",))


@pytest.mark.parametrize("name", ["alice/state", "alice/a/b/c"])
def test_retain_publish_on_own_topics(granted: PolicySet, plain: PolicySet, name: str) -> None:
    assert granted.allows("iot:RetainPublish", topic(name))
    assert granted.allows("iot:Publish", topic(name))
    assert plain.evaluate("iot:RetainPublish", topic(name)) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize("name", ["bob/state", "news/alice", "alice", "aliceX/state", "*"])
def test_retain_publish_nowhere_else(granted: PolicySet, name: str) -> None:
    # Not another namespace, not an extra publish grant, not a look-alike.
    assert not granted.allows("iot:RetainPublish", topic(name))


@pytest.mark.parametrize(
    "shared_filter",
    ["$share/g/alice/#", "$share/workers/alice/jobs/+", "$share/g/alice/state", "$share/g/alice/*"],
)
def test_shared_subscribe_within_own_topics(
    granted: PolicySet, plain: PolicySet, shared_filter: str
) -> None:
    assert granted.allows("iot:Subscribe", topicfilter(shared_filter))
    assert plain.evaluate("iot:Subscribe", topicfilter(shared_filter)) is Decision.IMPLICIT_DENY
    # Deliveries are checked on their topic, which the namespace grant covers.
    assert granted.allows("iot:Receive", topic("alice/jobs/1"))


@pytest.mark.parametrize(
    ("shared_filter", "decision"),
    [
        ("$share/g/bob/#", Decision.IMPLICIT_DENY),
        ("$share/g/news/#", Decision.IMPLICIT_DENY),  # an extra grant is not its own
        ("$share/g/#", Decision.IMPLICIT_DENY),
        ("$share/alice/#", Decision.IMPLICIT_DENY),  # group "alice", filter "#"
        # The group's '*' could span levels: "bob/alice/x" is bob's topic, and joining
        # bob's group there would take bob's deliveries. Explicitly refused.
        ("$share/g/bob/alice/x", Decision.EXPLICIT_DENY),
        ("$share/g/bob/+/alice/#", Decision.EXPLICIT_DENY),
    ],
)
def test_shared_subscribe_nowhere_else(
    granted: PolicySet, shared_filter: str, decision: Decision
) -> None:
    assert granted.evaluate("iot:Subscribe", topicfilter(shared_filter)) is decision


def test_flags_add_nothing_else(granted: PolicySet, plain: PolicySet) -> None:
    for action, resource in (
        ("iot:Subscribe", topicfilter("alice/#")),
        ("iot:Subscribe", topicfilter("news/#")),
        ("iot:Publish", topic("news/alice")),
        ("iot:Receive", topic("alice/x")),
    ):
        assert granted.allows(action, resource) and plain.allows(action, resource)
    for action, resource in (
        ("iot:Publish", topic("bob/x")),
        ("iot:Receive", topic("bob/x")),
        ("iot:Subscribe", topicfilter("bob/#")),
    ):
        assert not granted.allows(action, resource)


def test_aliyun_device_gets_both_on_its_two_namespaces() -> None:
    store = MemoryStore()
    add_aliyun_identity(store, "sensor1", "pk1", "s1", retain=True, shared=True)
    decision = decide(store, aliyun_event("sensor1", "pk1", "s1"))
    assert decision.allowed
    policy = PolicySet(decision.policy_documents)
    for ns in ("/pk1/sensor1", "/sys/pk1/sensor1"):
        assert policy.allows("iot:RetainPublish", topic(f"{ns}/prop"))
        assert policy.allows("iot:Subscribe", topicfilter(f"$share/g/{ns}/#"))
    assert not policy.allows("iot:RetainPublish", topic("/pk1/sensor2/prop"))
    assert not policy.allows("iot:Subscribe", topicfilter("$share/g//pk1/sensor2/#"))
    assert not policy.allows("iot:Subscribe", topicfilter("$share/g/pk1/sensor1/#"))
    # "x//pk1/sensor1/#" is not its topic, though it ends like one.
    assert not policy.allows("iot:Subscribe", topicfilter("$share/g/x//pk1/sensor1/#"))


def test_the_record_keeps_both_flags() -> None:
    record = IdentityRecord("alice", "secret", verifier="x", retain=True, shared=True)
    item = record.to_item()
    assert item["retain"] == {"BOOL": True} and item["shared"] == {"BOOL": True}
    again = IdentityRecord.from_item(item)
    assert (again.retain, again.shared) == (True, True)
    assert again.public_view()["retain"] is True and again.public_view()["shared"] is True
    off = IdentityRecord.from_item(IdentityRecord("bob", "secret", verifier="x").to_item())
    assert (off.retain, off.shared) == (False, False)
    assert "retain" not in off.to_item() and "shared" not in off.to_item()


def test_documents_stay_within_iot_limits_or_refuse() -> None:
    """At the largest a record may be, the flags either fit in 10 x 2,048 characters or
    the record is refused when written (never a policy IoT would reject)."""
    worst = ArnContext("aws-iso-b", "ap-southeast-99", "0" * 12)
    many = tuple(f"news/grant-{i:03d}/" + "x" * 120 for i in range(40))
    for count in (1, 10, 20, 40):
        scope = Scope(
            ("x" * 128,),
            ("alice",),
            publish=many[:count],
            subscribe=many[:count],
            retain=True,
            shared=True,
        )
        try:
            documents = policy_documents(scope, worst)
        except PolicyTooLarge:
            record = IdentityRecord(
                "alice",
                "secret",
                verifier="x",
                publish=many[:count],
                subscribe=many[:count],
                retain=True,
                shared=True,
            )
            with pytest.raises(InvalidRecord):
                record.validate(("chat",))
            continue
        assert len(documents) <= MAX_POLICY_DOCUMENTS
        assert all(len(d) <= MAX_POLICY_CHARS for d in documents)
        policy = PolicySet(documents)
        assert policy.allows("iot:RetainPublish", worst.resource("topic", "alice/x"))
        assert not policy.allows("iot:RetainPublish", worst.resource("topic", many[0]))


# -- browser users: the signer's session policy, intersected with the client role's ------


def _session(env: dict[str, str]) -> PolicySet:
    settings = SignerSettings.from_env({"IOTAUTH_CLIENT_ROLE_ARN": ROLE_ARN, **env})
    # The signer's own scope for a user (no AWS call: scope_for touches neither port).
    signer = WebSigner(settings, issuer=None, endpoints=None)  # type: ignore[arg-type]
    document = session_policy(signer.scope_for("web-alice"), ARN)
    assert len(document) <= MAX_POLICY_CHARS
    return PolicySet([document])


@pytest.fixture(scope="module")
def role() -> PolicySet:
    policies = Template.load(TEMPLATE_PATH, ARN).role_policies("IotClientRole")
    for document in policies.values():
        assert len(json.dumps(document, separators=(",", ":"))) <= MAX_POLICY_CHARS
    return PolicySet(list(policies.values()))


def test_web_users_get_neither_by_default(role: PolicySet) -> None:
    url = AllOf([_session({}), role])
    assert not url.allows("iot:RetainPublish", topic("web-alice/state"), {})
    assert not url.allows("iot:Subscribe", topicfilter("$share/g/web-alice/#"), {})
    assert url.allows("iot:Publish", topic("web-alice/state"), {})


def test_web_users_get_both_with_the_template_parameters(role: PolicySet) -> None:
    env = {"IOTAUTH_WEB_ALLOW_RETAIN": "true", "IOTAUTH_WEB_ALLOW_SHARED_SUBSCRIPTIONS": "true"}
    url = AllOf([_session(env), role])
    assert url.allows("iot:RetainPublish", topic("web-alice/state"), {})
    assert url.allows("iot:Subscribe", topicfilter("$share/g/web-alice/#"), {})
    assert url.allows("iot:Receive", topic("web-alice/state"), {})
    for action, resource in (
        ("iot:RetainPublish", topic("web-bob/state")),
        ("iot:RetainPublish", topic("chat/lobby/web-alice")),  # a room is not its own
        ("iot:Subscribe", topicfilter("$share/g/web-bob/#")),
        ("iot:Subscribe", topicfilter("$share/g/chat/lobby/+")),
        ("iot:Subscribe", topicfilter("$share/g/web-bob/web-alice/x")),
    ):
        assert not url.allows(action, resource, {}), (action, resource)


def test_the_template_defaults_are_off_and_reach_the_signer() -> None:
    template = Template.load(TEMPLATE_PATH, ARN)
    assert template.text_parameter("WebAllowRetain") == "false"
    assert template.text_parameter("WebAllowSharedSubscriptions") == "false"
    env = template.function_environment(
        "SignerFunction",
        {"IotClientRole.Arn": ROLE_ARN, "CredentialsTable": "t", "SignerRole.Arn": ROLE_ARN},
    )
    assert env["IOTAUTH_WEB_ALLOW_RETAIN"] == "false"
    assert env["IOTAUTH_WEB_ALLOW_SHARED_SUBSCRIPTIONS"] == "false"
    on = Template.load(TEMPLATE_PATH, ARN, {"WebAllowRetain": "true"})
    assert (
        on.function_environment(
            "SignerFunction",
            {"IotClientRole.Arn": ROLE_ARN, "CredentialsTable": "t", "SignerRole.Arn": ROLE_ARN},
        )["IOTAUTH_WEB_ALLOW_RETAIN"]
        == "true"
    )


@pytest.mark.parametrize("value", ["yes", "1", "TRUE!"])
def test_a_bad_flag_stops_the_signer(value: str) -> None:
    with pytest.raises(ValueError, match="IOTAUTH_WEB_ALLOW_RETAIN"):
        SignerSettings.from_env(
            {"IOTAUTH_CLIENT_ROLE_ARN": ROLE_ARN, "IOTAUTH_WEB_ALLOW_RETAIN": value}
        )
