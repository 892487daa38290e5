"""What a grant can match (iotauth.access.scoping.grant_reaches …), against brute force and against
the IoT policy evaluator: a grant that passes the checks cannot reach another identity."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from iotauth.access.names import InvalidName
from iotauth.access.policy import PolicySet
from iotauth.access.scoping import (
    ArnContext,
    Scope,
    grant_problem,
    grant_reaches,
    grant_reaches_prefix,
    grant_root,
    grant_within,
    policy_documents,
    validate_topic_grant,
)

ARN = ArnContext("aws", "us-east-1", "123456789012")
LITERALS = "ab/"
grants = st.text(alphabet="ab/*?+#", min_size=1, max_size=6)
roots = st.text(alphabet="ab", min_size=1, max_size=3)


def _regex(grant: str) -> re.Pattern[str]:
    """The widest reading of a grant: IAM '*'/'?' and, via Receive, MQTT '+'/'#' as '*'."""
    parts = {"*": ".*", "+": ".*", "#": ".*", "?": "."}
    return re.compile("".join(parts.get(c, re.escape(c)) for c in grant), re.DOTALL)


def _brute_force(grant: str, candidates: list[str]) -> bool:
    pattern = _regex(grant)
    return any(pattern.fullmatch(c) for c in candidates)


def _suffixes(limit: int) -> list[str]:
    # A matching topic, if one exists, needs at most one character per grant symbol.
    return ["".join(p) for n in range(limit + 1) for p in itertools.product(LITERALS, repeat=n)]


@settings(max_examples=400, deadline=None)
@given(grants, roots)
def test_grant_reaches_agrees_with_brute_force(grant: str, root: str) -> None:
    candidates = [root] + [f"{root}/{s}" for s in _suffixes(len(grant))]
    assert grant_reaches(grant, root) == _brute_force(grant, candidates)


@settings(max_examples=400, deadline=None)
@given(grants, roots)
def test_grant_reaches_prefix_agrees_with_brute_force(grant: str, prefix: str) -> None:
    candidates = [prefix + s for s in _suffixes(len(grant))]
    assert grant_reaches_prefix(grant, prefix) == _brute_force(grant, candidates)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/*?+#", min_size=1, max_size=6))
def test_a_grant_that_passes_cannot_reach_another_namespace_in_the_policy(grant: str) -> None:
    """End to end through the policy IoT would evaluate: when grant_problem finds nothing,
    the identity's policy allows no Publish, Receive or Subscribe under the other's
    namespace."""
    other = "b"
    problem = grant_problem(
        grant, shared_roots=("chat",), own_namespaces=("a",), other_namespaces=(other,)
    )
    try:
        validate_topic_grant(grant)
    except InvalidName:
        return  # refused by its spelling already ('?', '*' alone …)
    if problem is not None:
        return
    scope = Scope(client_ids=("a",), namespaces=("a",), publish=(grant,), subscribe=(grant,))
    policy = PolicySet(policy_documents(scope, ARN))
    for topic in ("b", "b/x", "b/a/b", "b/+", "b/#"):
        assert not policy.allows("iot:Publish", ARN.resource("topic", topic)), (grant, topic)
        assert not policy.allows("iot:Receive", ARN.resource("topic", topic)), (grant, topic)
        assert not policy.allows("iot:Subscribe", ARN.resource("topicfilter", topic))


def test_first_level() -> None:
    assert grant_root("chat/lobby") == "chat"
    assert grant_root("/pk/dn/x") == "/pk"
    assert grant_root("+/#") == "+"
    assert grant_root("**") == "**"


@settings(max_examples=300, deadline=None)
@given(grants)
def test_grant_within_is_sound(grant: str) -> None:
    """A grant judged to lie inside namespace "a" matches nothing outside "a/…"."""
    if not grant_within(grant, "a"):
        return
    outside = [s for s in _suffixes(len(grant) + 2) if not s.startswith("a/")]
    assert not _brute_force(grant, outside)
