"""Reading the table a page at a time: identities by paged Scan, counts, lockout items by key.

Contract: :func:`identity_pages` yields the identity items of a ``Scan`` one page
(``Limit``, ``ExclusiveStartKey``) at a time, in the table's order, filtered in the table by
username prefix and stored status; :func:`count_identities` counts them (``Select=COUNT``);
:func:`lockout_pages` pages through the few ``lockout#`` items alone. By key
(``BatchGetItem``, 100 keys a call): :func:`lockout_states`, :func:`identities_by_name`,
:func:`registry_owners` (``clientid#`` items). :func:`encode_token`/:func:`decode_token`
turn a position (a ``LastEvaluatedKey``, or the key of the last item shown) into an opaque
token and back, refusing anything that is not one.

The one reason that matters: at 100,000 identities a full Scan held in memory is minutes
and megabytes before the first line; a page answers at once and memory stays one page.
Administration only (the store's botocore ``client``); the authorizer never imports this.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from iotauth.identities.bulk import batch_get
from iotauth.identities.dynamodb_store import DynamoDBStore, _lockout_from_item
from iotauth.identities.lockout import LockoutState
from iotauth.identities.records import (
    CLIENT_ID_PREFIX,
    LOCKOUT_PREFIX,
    IdentityRecord,
    InvalidRecord,
    identity_key,
    lockout_key,
)

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "IdentityPage",
    "InvalidToken",
    "LockoutPage",
    "count_identities",
    "decode_token",
    "encode_token",
    "identities_by_name",
    "identity_pages",
    "lockout_pages",
    "lockout_states",
    "position_after",
    "registry_owners",
]

DEFAULT_PAGE = 1000  # items evaluated per Scan call (DynamoDB also stops at 1 MB)
MAX_PAGE = 10000
_MAX_TOKEN = 4096
# Every item's key is "<kind>#…" (identity#, lockout#, clientid#, the registries'): a Scan
# may stop at any of them.
_ITEM_KEY = re.compile(r"[a-z]{1,16}#.{0,2040}", re.DOTALL)


class InvalidToken(ValueError):
    """A ``--next`` token that this module did not make (or that was cut short)."""


class IdentityPage:
    """One Scan page: its identity ``records`` in the table's order, the keys of identity
    items that could not be read (``unreadable``), and where the next page starts
    (``last_key``; None: this was the last page)."""

    __slots__ = ("last_key", "records", "unreadable")

    def __init__(
        self,
        records: list[IdentityRecord],
        last_key: dict[str, Any] | None,
        unreadable: list[str],
    ) -> None:
        self.records = records
        self.last_key = last_key
        self.unreadable = unreadable


def position_after(record: IdentityRecord) -> dict[str, Any]:
    """The ``ExclusiveStartKey`` that resumes a Scan right after ``record``'s item."""
    return {"pk": {"S": identity_key(record.username)}}


def encode_token(key: dict[str, Any]) -> str:
    """An opaque, URL-safe token for a Scan position (no padding)."""
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """The Scan position of a token :func:`encode_token` made; InvalidToken otherwise."""
    text = token.strip()
    if not text or len(text) > _MAX_TOKEN:
        raise InvalidToken("not a token that `devices list` printed (empty or too long)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError too
        raise InvalidToken("not a token that `devices list` printed") from None
    pk = key.get("pk", {}).get("S") if isinstance(key, dict) and len(key) == 1 else None
    if (
        not isinstance(pk, str)
        or len(key["pk"]) != 1
        or not _ITEM_KEY.fullmatch(pk)
        or not pk.isprintable()
    ):
        raise InvalidToken("not a token that `devices list` printed")
    return {"pk": {"S": pk}}


def _filter(prefix: str, status: str | None) -> dict[str, Any]:
    expression = "begins_with(pk, :p)"
    names: dict[str, str] = {}
    values: dict[str, Any] = {":p": {"S": identity_key(prefix)}}
    if status is not None:
        expression += " AND #s = :s"
        names["#s"] = "status"  # a reserved word in DynamoDB expressions
        values[":s"] = {"S": status}
    params: dict[str, Any] = {"FilterExpression": expression, "ExpressionAttributeValues": values}
    if names:
        params["ExpressionAttributeNames"] = names
    return params


def identity_pages(
    store: DynamoDBStore,
    *,
    prefix: str = "",
    status: str | None = None,
    start: dict[str, Any] | None = None,
    page_size: int = DEFAULT_PAGE,
    page_sizes: Callable[[int], int] | None = None,
) -> Iterator[IdentityPage]:
    """Identity pages from ``start`` (None: the beginning) to the end of the table.

    ``prefix``: usernames starting with it; ``status``: the stored status (``active``,
    ``disabled``). Both are FilterExpressions: the table still reads every item, but only
    matches cross the wire. ``page_size`` items are evaluated per call; ``page_sizes``,
    when given, is asked before each call with the number of records yielded so far (a
    caller that needs only a few asks for small pages)."""
    params: dict[str, Any] = {"TableName": store.table, **_filter(prefix, status)}
    if start is not None:
        params["ExclusiveStartKey"] = start
    yielded = 0
    while True:
        size = page_sizes(yielded) if page_sizes is not None else page_size
        params["Limit"] = max(1, min(MAX_PAGE, size))
        page = store._call("scan", **params)
        records: list[IdentityRecord] = []
        unreadable: list[str] = []
        for item in page.get("Items", []):
            try:
                records.append(IdentityRecord.from_item(item))
            except InvalidRecord:
                unreadable.append(str(item.get("pk", {}).get("S", "?")))
        last = page.get("LastEvaluatedKey")
        yielded += len(records)
        yield IdentityPage(records, last, unreadable)
        if not last:
            return
        params["ExclusiveStartKey"] = last


def count_identities(
    store: DynamoDBStore,
    *,
    prefix: str = "",
    status: str | None = None,
    on_page: Callable[[int], None] | None = None,
) -> int:
    """How many identity items match (``Select=COUNT``, paged: nothing but counts cross the
    wire); ``on_page(n)`` after each page with its count."""
    params: dict[str, Any] = {
        "TableName": store.table,
        "Select": "COUNT",
        **_filter(prefix, status),
    }
    total = 0
    while True:
        page = store._call("scan", **params)
        count = int(page.get("Count", 0))
        total += count
        if on_page is not None:
            on_page(count)
        last = page.get("LastEvaluatedKey")
        if not last:
            return total
        params["ExclusiveStartKey"] = last


def lockout_states(store: DynamoDBStore, usernames: Iterable[str]) -> dict[str, LockoutState]:
    """The lockout counters of ``usernames`` that have one (consistent, by key; an
    unreadable counter reads as a current lock, as the authorizer treats it)."""
    names = list(dict.fromkeys(usernames))
    if not names:
        return {}
    items = batch_get(store, (lockout_key(n) for n in names))
    states: dict[str, LockoutState] = {}
    for name in names:
        item = items.get(lockout_key(name))
        if item is not None:
            states[name] = _lockout_from_item(item)
    return states


class LockoutPage:
    """One Scan page of ``lockout#`` items: ``(username, state, key)`` of each, in the
    table's order (``key``: the item's, a position to resume after), and ``last_key``."""

    __slots__ = ("last_key", "states")

    def __init__(
        self,
        states: list[tuple[str, LockoutState, dict[str, Any]]],
        last_key: dict[str, Any] | None,
    ) -> None:
        self.states = states
        self.last_key = last_key


def lockout_pages(
    store: DynamoDBStore,
    *,
    prefix: str = "",
    start: dict[str, Any] | None = None,
    page_size: int | None = None,
) -> Iterator[LockoutPage]:
    """The lockout counters of usernames starting with ``prefix``, a page at a time (few
    items: a counter exists only after a failure and expires with its window or lock, so
    by default a page is DynamoDB's own, 1 MB of items read)."""
    params: dict[str, Any] = {
        "TableName": store.table,
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": lockout_key(prefix)}},
    }
    if page_size is not None:
        params["Limit"] = max(1, min(MAX_PAGE, page_size))
    if start is not None:
        params["ExclusiveStartKey"] = start
    while True:
        page = store._call("scan", **params)
        states = []
        for item in page.get("Items", []):
            key = item.get("pk", {}).get("S")
            if isinstance(key, str) and key.startswith(LOCKOUT_PREFIX):
                states.append(
                    (key[len(LOCKOUT_PREFIX) :], _lockout_from_item(item), {"pk": {"S": key}})
                )
        last = page.get("LastEvaluatedKey")
        yield LockoutPage(states, last)
        if not last:
            return
        params["ExclusiveStartKey"] = last


def identities_by_name(store: DynamoDBStore, usernames: Iterable[str]) -> dict[str, IdentityRecord]:
    """The readable identity records of ``usernames`` that exist (consistent, by key)."""
    names = list(dict.fromkeys(usernames))
    items = batch_get(store, (identity_key(n) for n in names)) if names else {}
    found: dict[str, IdentityRecord] = {}
    for name in names:
        item = items.get(identity_key(name))
        if item is None:
            continue
        try:
            found[name] = IdentityRecord.from_item(item)
        except InvalidRecord:
            continue
    return found


def registry_owners(store: DynamoDBStore, client_ids: Iterable[str]) -> dict[str, str | None]:
    """Who the ``clientid#`` registry says owns each of ``client_ids`` (None: no item)."""
    ids = list(dict.fromkeys(client_ids))
    items = batch_get(store, (CLIENT_ID_PREFIX + c for c in ids)) if ids else {}
    owners: dict[str, str | None] = {}
    for client_id in ids:
        item = items.get(CLIENT_ID_PREFIX + client_id)
        if item is None:
            owners[client_id] = None
            continue
        owner = item.get("owner", {}).get("S")
        owners[client_id] = owner if isinstance(owner, str) else "?"  # unreadable
    return owners
