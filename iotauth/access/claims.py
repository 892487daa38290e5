"""A verified token's claims → the web user's :class:`~iotauth.access.scoping.Scope`.

Contract (pure: no AWS, no network): :func:`web_user_scope` is THE scope of a browser user —
the signer's presigned URLs and the authorizer's token path both call it, so they cannot
differ: client id and namespace ``web_username(sub)``, the deployment's rooms and extra
grants for every web user. :func:`scope_for_claims` adds what the token's groups are given
in :class:`GroupGrants` (the template's ``TokenGroupGrants``: a JSON object of group →
``{"rooms": [...], "publish": [...], "subscribe": [...]}``), validated when the function
starts by the same rules as a device's grants (:func:`~iotauth.access.scoping.grant_problem`,
:func:`~iotauth.access.scoping.validate_room`): no group grant may reach another identity's
namespace, a shared root outside its rooms, ``$…`` or the browsers' ``web-…`` topics.
Claim names and the group table are settings, never code.

The one reason that matters: a token is issued by someone else; what it grants must come
from one rule the operator configured, never from a claim's spelling.

Design: docs/design/tokens.md, docs/design/scoping.md
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from iotauth.access.names import InvalidName, web_username
from iotauth.access.scoping import (
    Scope,
    grant_problem,
    grant_reaches,
    validate_room,
    validate_topic_grant,
)
from iotauth.wire.frozen import Frozen

__all__ = [
    "MAX_GROUPS_IN_TOKEN",
    "GroupGrant",
    "GroupGrants",
    "WebScopeRules",
    "groups_of",
    "scope_for_claims",
    "web_user_scope",
]

MAX_GROUPS_IN_TOKEN = 256  # more and the claim is ignored as a whole (no group grants)
_MAX_GROUP_CHARS = 256
_MAX_GRANT_TABLE_GROUPS = 50
_MAX_GRANTS_PER_GROUP = 20
_GRANT_KEYS = frozenset({"rooms", "publish", "subscribe"})


def web_user_scope(
    username: str,
    *,
    publish: Iterable[str] = (),
    subscribe: Iterable[str] = (),
    rooms: Iterable[str] = (),
    retain: bool = False,
    shared: bool = False,
) -> Scope:
    """A browser user's scope: ``username`` (a web username) as client id and namespace, plus
    the given rooms and grants (and retained / shared subscriptions on its own namespace).
    The signer and the authorizer's token path both use this."""
    return Scope.for_identity(
        username, publish=publish, subscribe=subscribe, rooms=rooms, retain=retain, shared=shared
    )


class GroupGrant(Frozen):
    __slots__ = ("publish", "rooms", "subscribe")
    rooms: tuple[str, ...]
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def __init__(
        self,
        rooms: tuple[str, ...] = (),
        publish: tuple[str, ...] = (),
        subscribe: tuple[str, ...] = (),
    ) -> None:
        self._init(rooms=rooms, publish=publish, subscribe=subscribe)


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidName(f"{what}: a list of strings")
    if len(value) > _MAX_GRANTS_PER_GROUP:
        raise InvalidName(f"{what}: at most {_MAX_GRANTS_PER_GROUP} entries")
    return tuple(dict.fromkeys(value))


class GroupGrants(Frozen):
    """Group name → what its members get; built only through :meth:`from_json` / ``__init__``
    checks, so every grant in it passed the device grant rules."""

    __slots__ = ("groups",)
    groups: Mapping[str, GroupGrant]

    def __init__(
        self, groups: Mapping[str, GroupGrant] | None = None, *, shared_roots: Sequence[str]
    ) -> None:
        groups = {} if groups is None else dict(groups)
        if len(groups) > _MAX_GRANT_TABLE_GROUPS:
            raise InvalidName(f"at most {_MAX_GRANT_TABLE_GROUPS} groups")
        for name, grant in groups.items():
            if not isinstance(name, str) or not 1 <= len(name) <= _MAX_GROUP_CHARS:
                raise InvalidName("a group name is 1-256 characters")
            for room in grant.rooms:
                validate_room(room, shared_roots)
            for topic in (*grant.publish, *grant.subscribe):
                validate_topic_grant(topic)
                problem = grant_problem(topic, shared_roots=shared_roots)
                if problem is not None:
                    raise InvalidName(f"group {name!r}: {problem}")
        self._init(groups=groups)

    @classmethod
    def from_json(cls, text: str, shared_roots: Sequence[str]) -> GroupGrants:
        """``{"admins": {"rooms": ["chat/ops"]}}`` → GroupGrants; raises InvalidName."""
        if not text.strip():
            return cls(shared_roots=shared_roots)
        try:
            raw: Any = json.loads(text)
        except ValueError:
            raise InvalidName("group grants: not JSON") from None
        if not isinstance(raw, dict):
            raise InvalidName('group grants: a JSON object {"group": {"rooms": [...]}}')
        groups: dict[str, GroupGrant] = {}
        for name, spec in raw.items():
            if not isinstance(spec, dict) or not set(spec) <= _GRANT_KEYS:
                raise InvalidName(f"group {name!r}: only rooms, publish and subscribe")
            groups[name] = GroupGrant(
                rooms=_strings(spec.get("rooms", []), f"group {name!r} rooms"),
                publish=_strings(spec.get("publish", []), f"group {name!r} publish"),
                subscribe=_strings(spec.get("subscribe", []), f"group {name!r} subscribe"),
            )
        return cls(groups, shared_roots=shared_roots)


class WebScopeRules(Frozen):
    """What every web user gets (the signer's ``WebRooms``/``WebPublishGrants``/
    ``WebSubscribeGrants``) and what groups add, with the claim that names the groups."""

    __slots__ = (
        "group_grants",
        "groups_claim",
        "publish",
        "retain",
        "rooms",
        "shared",
        "subscribe",
    )
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    rooms: tuple[str, ...]
    retain: bool  # WebAllowRetain
    shared: bool  # WebAllowSharedSubscriptions
    groups_claim: str
    group_grants: GroupGrants

    def __init__(
        self,
        *,
        shared_roots: Sequence[str],
        publish: tuple[str, ...] = (),
        subscribe: tuple[str, ...] = (),
        rooms: tuple[str, ...] = (),
        groups_claim: str = "cognito:groups",
        group_grants: GroupGrants | None = None,
        retain: bool = False,
        shared: bool = False,
    ) -> None:
        grants = GroupGrants(shared_roots=shared_roots) if group_grants is None else group_grants
        for topic in (*publish, *subscribe):
            validate_topic_grant(topic)
        all_rooms = (*rooms, *(r for g in grants.groups.values() for r in g.rooms))
        for room in rooms:
            validate_room(room, shared_roots)
        publishes = (*publish, *(t for g in grants.groups.values() for t in g.publish))
        for room in all_rooms:  # a plain grant there would let anyone post as anyone
            for topic in publishes:
                if grant_reaches(topic, room):
                    raise InvalidName(f"publish grant {topic!r} reaches into the room {room!r}")
        if not groups_claim or len(groups_claim) > 128:
            raise InvalidName("the groups claim name is 1-128 characters")
        self._init(
            publish=publish,
            subscribe=subscribe,
            rooms=rooms,
            groups_claim=groups_claim,
            group_grants=grants,
            retain=retain is True,
            shared=shared is True,
        )


def groups_of(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """The token's groups: a list of strings (a single string is one group); anything else,
    or more than MAX_GROUPS_IN_TOKEN, is no group at all."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_GROUPS_IN_TOKEN:
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str) and len(v) <= _MAX_GROUP_CHARS)


def scope_for_claims(claims: Mapping[str, Any], rules: WebScopeRules) -> Scope:
    """The verified claims' scope; raises InvalidName for an unusable ``sub``."""
    subject = claims.get("sub")
    if not isinstance(subject, str):
        raise InvalidName("a token needs a sub claim")
    username = web_username(subject)
    member_of = groups_of(claims, rules.groups_claim)
    rooms, publish, subscribe = list(rules.rooms), list(rules.publish), list(rules.subscribe)
    for name, grant in rules.group_grants.groups.items():  # the table's order: deterministic
        if name in member_of:
            rooms += grant.rooms
            publish += grant.publish
            subscribe += grant.subscribe
    return web_user_scope(
        username,
        publish=publish,
        subscribe=subscribe,
        rooms=rooms,
        retain=rules.retain,
        shared=rules.shared,
    )
