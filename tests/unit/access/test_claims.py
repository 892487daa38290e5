"""iotauth.access.claims: one rule for a web user's scope, from the signer and from a token."""

from __future__ import annotations

import json

import pytest

from iotauth.access.claims import (
    MAX_GROUPS_IN_TOKEN,
    GroupGrants,
    WebScopeRules,
    groups_of,
    scope_for_claims,
    web_user_scope,
)
from iotauth.access.names import InvalidName, web_username
from iotauth.browser.web_signing import SignerSettings, WebSigner

ROOTS = ("chat",)


class _Unused:
    def assume_role(self, **kwargs: object) -> object:
        raise AssertionError

    def data_endpoint(self) -> str:
        raise AssertionError


@pytest.mark.parametrize("flags", [False, True])
@pytest.mark.parametrize("sub", ["alice", "auth0|123", "0" * 40, "x" * 300])
def test_the_token_path_and_the_signer_build_the_same_scope(sub: str, flags: bool) -> None:
    settings = SignerSettings.from_env(
        {
            "IOTAUTH_CLIENT_ROLE_ARN": "arn:aws:iam::123456789012:role/iot-clients",
            "IOTAUTH_WEB_PUBLISH": "telemetry/in",
            "IOTAUTH_WEB_SUBSCRIBE": "news/#",
            "IOTAUTH_WEB_ROOMS": "chat/lobby,chat/help",
            "IOTAUTH_WEB_ALLOW_RETAIN": str(flags).lower(),
            "IOTAUTH_WEB_ALLOW_SHARED_SUBSCRIPTIONS": str(flags).lower(),
        }
    )
    signer = WebSigner(settings, _Unused(), _Unused())  # type: ignore[arg-type]
    rules = WebScopeRules(
        shared_roots=ROOTS,
        publish=settings.publish,
        subscribe=settings.subscribe,
        rooms=settings.rooms,
        retain=flags,
        shared=flags,
    )
    from_token = scope_for_claims({"sub": sub}, rules)
    assert from_token == signer.scope_for(web_username(sub))
    assert from_token == web_user_scope(
        web_username(sub),
        publish=settings.publish,
        subscribe=settings.subscribe,
        rooms=settings.rooms,
        retain=flags,
        shared=flags,
    )


def test_groups_add_their_grants_in_table_order() -> None:
    grants = GroupGrants.from_json(
        json.dumps(
            {
                "ops": {"rooms": ["chat/ops"], "subscribe": ["alerts/#"]},
                "readers": {"subscribe": ["news/#"]},
                "writers": {"publish": ["inbox/x"]},
            }
        ),
        ROOTS,
    )
    rules = WebScopeRules(shared_roots=ROOTS, rooms=("chat/lobby",), group_grants=grants)
    scope = scope_for_claims({"sub": "a", "cognito:groups": ["writers", "ops", "nobody"]}, rules)
    assert scope.rooms == ("chat/lobby", "chat/ops")
    assert scope.subscribe == ("alerts/#",)
    assert scope.publish == ("inbox/x",)
    plain = scope_for_claims({"sub": "a"}, rules)
    assert plain.rooms == ("chat/lobby",) and not plain.subscribe and not plain.publish


def test_the_groups_claim_is_a_setting() -> None:
    grants = GroupGrants.from_json('{"admins": {"rooms": ["chat/ops"]}}', ROOTS)
    rules = WebScopeRules(shared_roots=ROOTS, groups_claim="roles", group_grants=grants)
    assert scope_for_claims({"sub": "a", "roles": "admins"}, rules).rooms == ("chat/ops",)
    assert scope_for_claims({"sub": "a", "cognito:groups": ["admins"]}, rules).rooms == ()


def test_odd_group_claims_are_no_groups() -> None:
    assert groups_of({"g": {"admins": True}}, "g") == frozenset()
    assert groups_of({"g": [1, None, "a"]}, "g") == {"a"}
    assert groups_of({"g": ["a"] * (MAX_GROUPS_IN_TOKEN + 1)}, "g") == frozenset()


@pytest.mark.parametrize(
    "table",
    [
        {"g": {"publish": ["#"]}},
        {"g": {"publish": ["+/x"]}},
        {"g": {"subscribe": ["$aws/things/#"]}},
        {"g": {"subscribe": ["chat/#"]}},  # a shared root: rooms are the way in
        {"g": {"publish": ["web-alice/x"]}},  # another browser user's namespace
        {"g": {"subscribe": ["/sys/#"]}},
        {"g": {"rooms": ["other/room"]}},
        {"g": {"rooms": ["chat"]}},
        {"g": {"publish": ["a/${iot:ClientId}"]}},
        {"g": {"topics": ["a"]}},
        {"g": {"rooms": "chat/x"}},
        {"g": ["chat/x"]},
        {str(i): {} for i in range(51)},
    ],
)
def test_group_grants_follow_the_device_grant_rules(table: object) -> None:
    with pytest.raises(InvalidName):
        GroupGrants.from_json(json.dumps(table), ROOTS)


def test_a_publish_grant_may_not_reach_into_a_room() -> None:
    grants = GroupGrants.from_json('{"g": {"rooms": ["chat/ops"]}}', ROOTS)
    with pytest.raises(InvalidName, match="room"):
        WebScopeRules(shared_roots=ROOTS, publish=("chat/ops/x",), group_grants=grants)


def test_an_unusable_subject_is_refused() -> None:
    rules = WebScopeRules(shared_roots=ROOTS)
    for claims in ({}, {"sub": 7}, {"sub": ""}):
        with pytest.raises(InvalidName):
            scope_for_claims(claims, rules)
