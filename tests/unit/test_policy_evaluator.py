"""The IoT policy evaluator itself (REFERENCE §4), independent of how policies are built."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotauth.policy import Decision, PolicySet, evaluate

ARN = "arn:aws:iot:us-east-1:123456789012"


def doc(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str]) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action: str | list[str], resource: str | list[str]) -> dict[str, object]:
    return {"Effect": "Deny", "Action": action, "Resource": resource}


def test_nothing_is_allowed_by_default() -> None:
    assert evaluate([], "iot:Connect", f"{ARN}:client/a") is Decision.IMPLICIT_DENY
    assert not evaluate([doc()], "iot:Connect", f"{ARN}:client/a")


def test_star_matches_any_run_including_slashes() -> None:
    p = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/alice/*"))])
    assert p.allows("iot:Publish", f"{ARN}:topic/alice/x")
    assert p.allows("iot:Publish", f"{ARN}:topic/alice/x/y/z")
    assert not p.allows("iot:Publish", f"{ARN}:topic/alice")
    assert not p.allows("iot:Publish", f"{ARN}:topic/alicex/y")
    assert not p.allows("iot:Publish", f"{ARN}:topic/bob/alice/x")


def test_question_mark_matches_exactly_one_character() -> None:
    p = PolicySet([doc(allow("iot:Connect", f"{ARN}:client/dev?"))])
    assert p.allows("iot:Connect", f"{ARN}:client/dev1")
    assert not p.allows("iot:Connect", f"{ARN}:client/dev")
    assert not p.allows("iot:Connect", f"{ARN}:client/dev12")


def test_mqtt_wildcards_are_literal_in_policies() -> None:
    p = PolicySet([doc(allow("iot:Subscribe", f"{ARN}:topicfilter/alice/#"))])
    assert p.allows("iot:Subscribe", f"{ARN}:topicfilter/alice/#")
    assert not p.allows("iot:Subscribe", f"{ARN}:topicfilter/alice/x")
    assert not p.allows("iot:Subscribe", f"{ARN}:topicfilter/alice/+")
    plus = PolicySet([doc(allow("iot:Subscribe", f"{ARN}:topicfilter/a/+/b"))])
    assert plus.allows("iot:Subscribe", f"{ARN}:topicfilter/a/+/b")
    assert not plus.allows("iot:Subscribe", f"{ARN}:topicfilter/a/x/b")


def test_actions_match_case_insensitively_and_with_wildcards() -> None:
    p = PolicySet([doc(allow("IOT:publish", f"{ARN}:topic/t"))])
    assert p.allows("iot:Publish", f"{ARN}:topic/t")
    star = PolicySet([doc(allow("iot:*", f"{ARN}:topic/t"))])
    assert star.allows("iot:Receive", f"{ARN}:topic/t")
    assert not star.allows("iot:Receive", f"{ARN}:topic/T")  # resources are case-sensitive


def test_explicit_deny_wins_over_any_allow() -> None:
    p = PolicySet(
        [
            doc(allow("iot:*", f"{ARN}:*")),
            doc(deny("iot:Publish", f"{ARN}:topic/secret/*")),
        ]
    )
    assert p.evaluate("iot:Publish", f"{ARN}:topic/secret/x") is Decision.EXPLICIT_DENY
    assert p.allows("iot:Publish", f"{ARN}:topic/open/x")


def test_policy_variables_are_substituted_as_literals() -> None:
    p = PolicySet([doc(allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}"))])
    assert p.allows("iot:Connect", f"{ARN}:client/dev1", {"iot:ClientId": "dev1"})
    # A client id bearing a wildcard does not become a wildcard.
    assert not p.allows("iot:Connect", f"{ARN}:client/dev1", {"iot:ClientId": "dev*"})
    assert p.allows("iot:Connect", f"{ARN}:client/dev*", {"iot:ClientId": "dev*"})
    # Without a value for the variable the statement does not match.
    assert not p.allows("iot:Connect", f"{ARN}:client/dev1")


def test_iam_escapes_for_literal_wildcards() -> None:
    p = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/a${{*}}b"))])
    assert p.allows("iot:Publish", f"{ARN}:topic/a*b")
    assert not p.allows("iot:Publish", f"{ARN}:topic/axxb")


@pytest.mark.parametrize("extra", ["Condition", "NotResource", "NotAction"])
def test_statements_it_cannot_read_never_allow(extra: str) -> None:
    statement = allow("iot:Connect", f"{ARN}:client/a") | {extra: {}}
    assert not PolicySet([doc(statement)]).allows("iot:Connect", f"{ARN}:client/a")


def test_an_unreadable_deny_is_taken_at_its_widest() -> None:
    unreadable = deny("iot:Connect", f"{ARN}:client/other") | {"Condition": {"Bool": {}}}
    p = PolicySet([doc(allow("iot:Connect", f"{ARN}:client/a"), unreadable)])
    assert p.evaluate("iot:Connect", f"{ARN}:client/a") is Decision.EXPLICIT_DENY


@pytest.mark.parametrize(
    "document",
    ["not json", "[]", "null", json.dumps({"Statement": "x"}), json.dumps({"Statement": [1]})],
)
def test_malformed_documents_grant_nothing(document: str) -> None:
    assert not PolicySet([document]).allows("iot:Connect", f"{ARN}:client/a")


def test_documents_may_be_dicts() -> None:
    assert evaluate(
        [{"Statement": [allow("iot:Connect", f"{ARN}:client/a")]}], "iot:Connect", f"{ARN}:client/a"
    )


@given(st.text(max_size=40), st.text(max_size=40))
def test_evaluation_never_raises(pattern: str, resource: str) -> None:
    result = evaluate([doc(allow("iot:Publish", pattern))], "iot:Publish", resource)
    assert isinstance(result, Decision)
