"""The IoT policy evaluator itself (REFERENCE §4), independent of how policies are built."""

from __future__ import annotations

import fnmatch
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotauth.access.policy import Decision, PolicySet, evaluate

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


def test_policy_variables_are_substituted_from_the_connection() -> None:
    p = PolicySet([doc(allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}"))])
    assert p.allows("iot:Connect", f"{ARN}:client/dev1", {"iot:ClientId": "dev1"})
    assert not p.allows("iot:Connect", f"{ARN}:client/dev2", {"iot:ClientId": "dev1"})
    # Without a value for the variable the statement does not match.
    assert not p.allows("iot:Connect", f"{ARN}:client/dev1")


def test_wildcards_in_a_substituted_client_id_widen_the_grant() -> None:
    # IoT substitutes the value into the resource, then matches: a client that connects as
    # "*" (allowed by ``client/${iot:ClientId}``) reaches every client's topics
    # (REFERENCE §4). The stand-in must show that, not hide it.
    p = PolicySet(
        [
            doc(
                allow("iot:Connect", f"{ARN}:client/${{iot:ClientId}}"),
                allow("iot:Publish", f"{ARN}:topic/d/${{iot:ClientId}}/up"),
            )
        ]
    )
    star = {"iot:ClientId": "*"}
    assert p.allows("iot:Connect", f"{ARN}:client/*", star)
    assert p.allows("iot:Publish", f"{ARN}:topic/d/alice/up", star)
    assert p.allows("iot:Publish", f"{ARN}:topic/d/bob/x/up", star)
    one = {"iot:ClientId": "dev?"}
    assert p.allows("iot:Publish", f"{ARN}:topic/d/dev7/up", one)
    assert not p.allows("iot:Publish", f"{ARN}:topic/d/dev77/up", one)


def test_a_wildcard_client_id_widens_a_deny_too() -> None:
    p = PolicySet(
        [
            doc(
                allow("iot:Publish", f"{ARN}:topic/*"),
                deny("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/admin"),
            )
        ]
    )
    decision = p.evaluate("iot:Publish", f"{ARN}:topic/x/admin", {"iot:ClientId": "*"})
    assert decision is Decision.EXPLICIT_DENY


@pytest.mark.parametrize("version", [None, "2008-10-17"])
def test_variables_are_literal_text_without_version_2012_10_17(version: str | None) -> None:
    # IAM: without "Version": "2012-10-17" a policy has no variables; ${...} is plain text.
    document: dict[str, object] = {
        "Statement": [allow("iot:Publish", f"{ARN}:topic/d/${{iot:ClientId}}")]
    }
    if version is not None:
        document["Version"] = version
    p = PolicySet([json.dumps(document)])
    client = {"iot:ClientId": "dev1"}
    assert not p.allows("iot:Publish", f"{ARN}:topic/d/dev1", client)
    assert p.allows("iot:Publish", f"{ARN}:topic/d/${{iot:ClientId}}", client)
    # A Deny in such a document is literal too.
    denied = PolicySet(
        [
            doc(allow("iot:Publish", f"{ARN}:topic/*")),
            json.dumps({"Statement": [deny("iot:Publish", f"{ARN}:topic/d/${{iot:ClientId}}")]}),
        ]
    )
    assert denied.allows("iot:Publish", f"{ARN}:topic/d/dev1", client)
    assert not denied.allows("iot:Publish", f"{ARN}:topic/d/${{iot:ClientId}}", client)


def test_an_unknown_policy_version_grants_nothing() -> None:
    document = {"Version": "2012-10-18", "Statement": [allow("iot:Connect", f"{ARN}:client/a")]}
    assert not PolicySet([json.dumps(document)]).allows("iot:Connect", f"{ARN}:client/a")


def test_iam_escapes_for_literal_wildcards() -> None:
    p = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/a${{*}}b"))])
    assert p.allows("iot:Publish", f"{ARN}:topic/a*b")
    assert not p.allows("iot:Publish", f"{ARN}:topic/axxb")


@pytest.mark.parametrize(
    ("escaped", "literal", "not_matching"),
    [("$(*)", "*", "xx"), ("$(?)", "?", "x"), ("$($)", "$", "x")],
)
def test_iot_escapes_are_literal_characters(escaped: str, literal: str, not_matching: str) -> None:
    # The AWS IoT policy-variables page spells the escapes $(*), $(?), $($).
    p = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/a{escaped}b"))])
    assert p.allows("iot:Publish", f"{ARN}:topic/a{literal}b")
    assert not p.allows("iot:Publish", f"{ARN}:topic/a{not_matching}b")
    assert not p.allows("iot:Publish", f"{ARN}:topic/a$({literal})b")


def test_escapes_are_variables_too_so_need_version_2012_10_17() -> None:
    old = json.dumps({"Statement": [allow("iot:Publish", f"{ARN}:topic/a$(*)b")]})
    p = PolicySet([old])
    assert p.allows("iot:Publish", f"{ARN}:topic/a$(xyz)b")
    assert not p.allows("iot:Publish", f"{ARN}:topic/a*b")


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


_GLOB = st.text(alphabet="ab/*?", max_size=12)
_TEXT = st.text(alphabet="ab/", max_size=12)


@settings(deadline=None)  # correctness, not speed; the machine is shared
@given(_GLOB, _TEXT)
def test_wildcards_match_as_fnmatch_does(pattern: str, text: str) -> None:
    # fnmatchcase (backtracking-free reference on small inputs; no '[' in the alphabet).
    expected = fnmatch.fnmatchcase(text, pattern)
    p = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/{pattern}"))])
    assert p.allows("iot:Publish", f"{ARN}:topic/{text}") is expected


@settings(deadline=None)  # correctness, not speed; the machine is shared
@given(st.text(alphabet="aA:*?", max_size=8), st.text(alphabet="aA:", max_size=8))
def test_actions_match_as_fnmatch_does_ignoring_case(pattern: str, action: str) -> None:
    expected = fnmatch.fnmatchcase(action.lower(), pattern.lower())
    p = PolicySet([doc(allow(pattern, f"{ARN}:topic/t"))])
    assert p.allows(action, f"{ARN}:topic/t") is expected


@settings(deadline=None)  # correctness, not speed; the machine is shared
@given(st.text(alphabet="ab*?", max_size=6), _TEXT)
def test_a_substituted_client_id_matches_as_if_written_in_the_policy(
    client_id: str, text: str
) -> None:
    written = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/x/{client_id}"))])
    variable = PolicySet([doc(allow("iot:Publish", f"{ARN}:topic/x/${{iot:ClientId}}"))])
    resource = f"{ARN}:topic/x/{text}"
    assert variable.allows("iot:Publish", resource, {"iot:ClientId": client_id}) is (
        written.allows("iot:Publish", resource)
    )


def test_many_stars_are_answered_without_backtracking() -> None:
    # The shape that made the old regex matcher take minutes (timings: make bench).
    pattern = f"{ARN}:topic/" + "*a" * 25 + "*b"
    p = PolicySet([doc(allow("iot:Subscribe", pattern))])
    assert not p.allows("iot:Subscribe", f"{ARN}:topic/" + "a" * 200)
    assert p.allows("iot:Subscribe", f"{ARN}:topic/" + "a" * 200 + "b")


@given(st.text(max_size=40), st.text(max_size=40))
def test_evaluation_never_raises(pattern: str, resource: str) -> None:
    result = evaluate([doc(allow("iot:Publish", pattern))], "iot:Publish", resource)
    assert isinstance(result, Decision)
