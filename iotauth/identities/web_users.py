"""Disabled browser users: the ``webuser#`` record the signer reads, and the client role's
deny list that makes URLs issued before unusable.

Contract (pure: no AWS here): :class:`DisabledUser` is the item ``webuser#<web username>``
the signer reads strongly consistently before it signs; :class:`DenyList` is the versioned
item :data:`DENY_LIST_KEY` whose entries become the client role's inline policy
:data:`DENY_POLICY_NAME` (:func:`deny_policy`: ``Deny iot:Connect`` on each disabled client
ARN, within :data:`DENY_POLICY_BUDGET`; :func:`capacity` says how many fit), entries older
than :data:`RETAIN_SECONDS` dropped by :meth:`DenyList.compacted`.

The one reason: a browser user has no identity record, so only these two writes (made by
``iotauth users disable``) stop new URLs and the URLs issued before.

Design: docs/design/web-revocation.md
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from iotauth.access.names import WEB_PREFIX, InvalidName, is_safe_client_id, web_username
from iotauth.wire.frozen import Frozen

__all__ = [
    "DENY_LIST_KEY",
    "DENY_POLICY_BUDGET",
    "DENY_POLICY_NAME",
    "MAX_CREDENTIAL_SECONDS",
    "RETAIN_SECONDS",
    "ROLE_INLINE_LIMIT",
    "WEBUSER_PREFIX",
    "DenyList",
    "DenyListFull",
    "DisabledUser",
    "capacity",
    "deny_policy",
    "disabled_in",
    "status_read",
    "webuser_key",
]

WEBUSER_PREFIX = "webuser#"
#: The deny list's own item: its key does not start with ``webuser#``, so the signer (which
#: may read only ``webuser#`` keys) cannot read it.
DENY_LIST_KEY = "webusers#deny-list"
#: The client role's inline policy that ``iotauth users`` owns (the template's is web-clients).
DENY_POLICY_NAME = "iotauth-disabled-web-users"
#: IAM: a role's inline policies together ≤ 10,240 characters (no whitespace). The template's
#: own (web-clients, ~850) is held to the rest by tests/unit/deploy/test_template_signer.py.
ROLE_INLINE_LIMIT = 10_240
DENY_POLICY_BUDGET = 8_192
#: The client role's MaxSessionDuration: no credential, so no URL, issued from it lives longer.
MAX_CREDENTIAL_SECONDS = 3600
#: How long an entry stays: a URL issued before the disable dies with its credentials; the
#: margin covers a signer call in flight during the disable (10 s timeout) and clock skew.
RETAIN_SECONDS = MAX_CREDENTIAL_SECONDS + 300
_SID = "DisabledWebUsers"


class DenyListFull(Exception):
    """The deny policy would exceed :data:`DENY_POLICY_BUDGET` (message safe to print)."""


def webuser_key(username: str) -> str:
    """The table key of a web user's record; ``username`` is a web username (``web-…``)."""
    if not username.startswith(WEB_PREFIX) or not is_safe_client_id(username):
        raise InvalidName(f"not a web username: {username!r}")
    return WEBUSER_PREFIX + username


def status_read(table: str, username: str) -> dict[str, Any]:
    """The ``GetItem`` of a web user's status, as the signer and the token path both make it:
    strongly consistent (a disable applies to the next request), ``status`` only (1 RRU)."""
    return {
        "TableName": table,
        "Key": {"pk": {"S": webuser_key(username)}},
        "ConsistentRead": True,
        "ProjectionExpression": "#s",
        "ExpressionAttributeNames": {"#s": "status"},
    }


def disabled_in(answer: object) -> bool:
    """Whether a :func:`status_read` answer says disabled: anything but a readable
    ``active`` on an existing item is (an operator wrote it); no item is not."""
    item = answer.get("Item") if isinstance(answer, dict) else None
    if not item:
        return False
    status = item.get("status", {})
    return not (isinstance(status, dict) and status.get("S") == "active")


def _s(item: Mapping[str, Any], name: str, default: str = "") -> str:
    value = item.get(name, {})
    return str(value.get("S", default)) if isinstance(value, Mapping) else default


class DisabledUser(Frozen):
    """A disabled browser user: who (web username and JWT subject), since when, by whom."""

    __slots__ = ("by", "reason", "since", "subject", "username")
    username: str  # web_username(subject): the client id and topic namespace
    subject: str
    since: int  # epoch seconds
    by: str  # the operator's principal ARN
    reason: str

    def __init__(
        self, username: str, subject: str, since: int, by: str = "", reason: str = ""
    ) -> None:
        self._init(username=username, subject=subject, since=since, by=by, reason=reason)

    @classmethod
    def for_subject(cls, subject: str, since: int, by: str = "", reason: str = "") -> DisabledUser:
        return cls(web_username(subject), subject, since, by, reason)

    @property
    def client_ids(self) -> tuple[str, ...]:
        """The client ids its sessions can have: the signer pins exactly this one."""
        return (self.username,)

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": webuser_key(self.username)},
            "status": {"S": "disabled"},
            "subject": {"S": self.subject},
            "since": {"N": str(self.since)},
        }
        if self.by:
            item["by"] = {"S": self.by}
        if self.reason:
            item["reason"] = {"S": self.reason}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DisabledUser:
        key = _s(item, "pk")
        if not key.startswith(WEBUSER_PREFIX) or _s(item, "status") != "disabled":
            raise ValueError("not a disabled web user item")
        return cls(
            username=key[len(WEBUSER_PREFIX) :],
            subject=_s(item, "subject"),
            since=int(item.get("since", {}).get("N", "0")),
            by=_s(item, "by"),
            reason=_s(item, "reason"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "username": self.username,
            "clientIds": list(self.client_ids),
            "status": "disabled",
            "since": self.since,
            "by": self.by,
            "reason": self.reason,
        }


def deny_policy(client_ids: Mapping[str, int] | list[str], partition: str, account: str) -> str:
    """The inline policy denying ``iot:Connect`` to ``client_ids`` (compact JSON, sorted)."""
    resources = [f"arn:{partition}:iot:*:{account}:client/{c}" for c in sorted(client_ids)]
    statement = {"Sid": _SID, "Effect": "Deny", "Action": "iot:Connect", "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def capacity(username_length: int, partition: str = "aws", account: str = "123456789012") -> int:
    """How many client ids of ``username_length`` characters fit in the budget."""
    one = len(deny_policy(["w" * username_length], partition, account))
    two = len(deny_policy(["w" * username_length, "v" * username_length], partition, account))
    return 1 + (DENY_POLICY_BUDGET - one) // (two - one)


class DenyList(Frozen):
    """Client id → the time it was disabled (epoch s), at ``version`` (0: never written)."""

    __slots__ = ("entries", "version")
    entries: Mapping[str, int]
    version: int

    def __init__(self, entries: Mapping[str, int] | None = None, version: int = 0) -> None:
        self._init(entries={} if entries is None else entries, version=version)

    def with_entry(self, client_id: str, since: int) -> DenyList:
        if not is_safe_client_id(client_id):
            raise InvalidName(f"invalid client id {client_id!r}")
        return DenyList({**self.entries, client_id: since}, self.version)

    def without(self, client_ids: tuple[str, ...]) -> DenyList:
        kept = {c: s for c, s in self.entries.items() if c not in client_ids}
        return DenyList(kept, self.version)

    def compacted(self, now: float) -> DenyList:
        """Without the entries older than :data:`RETAIN_SECONDS`: no URL from before them
        can still be valid (the table item keeps refusing new ones)."""
        kept = {c: s for c, s in self.entries.items() if s > now - RETAIN_SECONDS}
        return DenyList(kept, self.version)

    def policy(self, partition: str, account: str) -> str | None:
        """The inline policy text, None when the list is empty (the policy is deleted);
        raises :class:`DenyListFull` past :data:`DENY_POLICY_BUDGET`."""
        if not self.entries:
            return None
        text = deny_policy(dict(self.entries), partition, account)
        if len(text) > DENY_POLICY_BUDGET:
            raise DenyListFull(
                f"the deny list would take {len(text)} characters, over its "
                f"{DENY_POLICY_BUDGET} ({len(self.entries)} client ids disabled within "
                f"{RETAIN_SECONDS // 60} min)"
            )
        return text

    def to_item(self, version: int) -> dict[str, Any]:
        return {
            "pk": {"S": DENY_LIST_KEY},
            "version": {"N": str(version)},
            "entries": {"S": json.dumps(dict(sorted(self.entries.items())))},
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> DenyList:
        if not item:
            return cls()
        raw = json.loads(_s(item, "entries", "{}"))
        if not isinstance(raw, dict):
            raise ValueError("the deny list item is not a mapping")
        entries = {str(c): int(s) for c, s in raw.items()}
        return cls(entries, int(item.get("version", {}).get("N", "0")))
