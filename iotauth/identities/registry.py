"""The table's registries beyond client ids: reach entries, the schema marker, reindex.

Contract: :func:`reach_updates` gives the ``TransactWriteItems`` actions that keep a
record's ``reach#<bucket>`` entries right (in the identity's own transaction);
:func:`pairing_candidates` reads what records could clash or pair with in two
``BatchGetItem`` rounds (≤ 100 keys a call, unprocessed keys retried with backoff) whose
size depends on the records, never on the table; :func:`reindex` builds the registries of a
table that predates them from one paged scan and writes the ``meta#schema`` marker.

The one reason: ``devices add`` used to scan the whole table (issue 14). Admin only: the
authorizer never imports it (:mod:`iotauth.identities.dynamodb_admin` loads it on use).
Design: docs/design/identity-store.md ("The reach registry")
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from iotauth.access.scoping import grant_reaches
from iotauth.identities.dynamodb_admin import Conflict
from iotauth.identities.reach import (
    REACH_PREFIX,
    SAMPLE_CAP,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    Candidates,
    cross_grants,
    grant_bucket,
    is_exact,
    namespace_buckets,
    reach_key,
    reached_name,
    record_buckets,
)
from iotauth.identities.records import (
    CLIENT_ID_PREFIX,
    IDENTITY_PREFIX,
    IdentityRecord,
    InvalidRecord,
    client_id_key,
    identity_key,
)
from iotauth.identities.store import SchemaOutdated, StoreError

if TYPE_CHECKING:
    from iotauth.identities.dynamodb_admin import DynamoDBAdmin

__all__ = [
    "MAX_REACH_ITEM_BYTES",
    "pairing_candidates",
    "put_marker",
    "reach_updates",
    "reindex",
    "require_schema",
]

#: A wildcard reach item lists its owners' grants; refused beyond this (DynamoDB: 400 KB).
MAX_REACH_ITEM_BYTES = 350_000
_BATCH_GET = 100  # keys per BatchGetItem
_BATCH_WRITE = 25  # requests per BatchWriteItem
_BATCH_ATTEMPTS = 8  # per call, while keys come back unprocessed
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
_OWNER_ATTR = "o:"  # a wildcard reach item's attribute per owner: o:<username> = [grants]


def reach_updates(
    store: DynamoDBAdmin, username: str, old: IdentityRecord | None, new: IdentityRecord | None
) -> list[dict[str, Any]]:
    """The transaction actions that move ``username``'s reach entries from ``old`` to
    ``new`` (None: absent), for the same ``TransactWriteItems`` as the identity's write.

    An exact bucket counts its owners (``n``, ``ADD`` ±1) and names up to
    :data:`~iotauth.identities.reach.SAMPLE_CAP` of them (``owners``); a wildcard bucket
    lists each owner's grants (``o:<username>``). Raises StoreError when a wildcard
    bucket would outgrow :data:`MAX_REACH_ITEM_BYTES`."""
    before = record_buckets(old) if old is not None else {}
    after = record_buckets(new) if new is not None else {}
    changed = [b for b in sorted({*before, *after}) if before.get(b) != after.get(b)]
    joining = [b for b in changed if b in after and (b not in before or not is_exact(b))]
    current = _batch_get(store, [reach_key(b) for b in joining]) if joining else {}
    actions: list[dict[str, Any]] = []
    for bucket in changed:
        key = reach_key(bucket)
        item = current.get(key, {})
        if is_exact(bucket):
            if (bucket in before) == (bucket in after):
                continue  # still one owner: only which of its grants changed
            if bucket in after:
                sample = item.get("owners", {}).get("SS", [])
                if len(sample) < SAMPLE_CAP:
                    update = _update(key, "ADD #n :d, #s :me", {"#n": "n", "#s": "owners"})
                    update["ExpressionAttributeValues"] = {
                        ":d": {"N": "1"},
                        ":me": {"SS": [username]},
                    }
                else:
                    update = _update(key, "ADD #n :d", {"#n": "n"})
                    update["ExpressionAttributeValues"] = {":d": {"N": "1"}}
            else:
                update = _update(key, "ADD #n :d DELETE #s :me", {"#n": "n", "#s": "owners"})
                update["ExpressionAttributeValues"] = {
                    ":d": {"N": "-1"},
                    ":me": {"SS": [username]},
                }
        elif bucket in after:
            grants = {"L": [{"S": g} for g in after[bucket]]}
            attribute = _OWNER_ATTR + username
            size = _item_size(item) - _value_size(item.get(attribute))
            if size + len(attribute) + _value_size(grants) > MAX_REACH_ITEM_BYTES:
                raise StoreError(
                    f"too many identities hold grants under {bucket!r} (the reach "
                    f"registry item {key!r} would exceed {MAX_REACH_ITEM_BYTES} bytes; "
                    "DynamoDB's limit is 400 KB): narrow some of those grants"
                )
            update = _update(key, "SET #o = :g", {"#o": attribute})
            update["ExpressionAttributeValues"] = {":g": grants}
        else:
            update = _update(key, "REMOVE #o", {"#o": _OWNER_ATTR + username})
        update["TableName"] = store.table
        actions.append({"Update": update})
    return actions


def pairing_candidates(store: DynamoDBAdmin, records: Sequence[IdentityRecord]) -> Candidates:
    """The stored identities ``records`` could clash or pair with (client ids, grants
    in either order), for :func:`~iotauth.cli.devices.provision.judge_record`.

    Two ``BatchGetItem`` rounds (≤ 100 keys a call) whose size depends on ``records``
    only, never on the table's. Raises :class:`~iotauth.identities.store.SchemaOutdated`
    on a table that predates the registries (an empty one is marked instead)."""
    keys = [SCHEMA_KEY]
    for record in records:
        keys.append(identity_key(record.username))
        keys += [client_id_key(c) for c in record.allowed_client_ids()]
        for grant in cross_grants(record):
            bucket = grant_bucket(grant)
            name = reached_name(bucket) if bucket is not None else None
            if name is not None:
                keys.append(identity_key(name))
        for namespace in record.namespaces():
            keys += [reach_key(b) for b in namespace_buckets(namespace)]
    first = _batch_get(store, keys)
    require_schema(store, first.get(SCHEMA_KEY))
    found = _records(first.values())
    wanted: set[str] = set()
    exact: list[tuple[IdentityRecord, str, str, int, list[str]]] = []
    unnamed: dict[str, list[str]] = {}
    for record in records:
        me = record.username
        for client_id in record.allowed_client_ids():
            owner = first.get(client_id_key(client_id), {}).get("owner", {}).get("S")
            if isinstance(owner, str) and owner != me:
                wanted.add(owner)
        stored = found.get(me)
        mine = record_buckets(stored) if stored is not None else {}
        for namespace in record.namespaces():
            for bucket in namespace_buckets(namespace):
                item = first.get(reach_key(bucket))
                if item is None:
                    continue
                if is_exact(bucket):
                    count = _int(item.get("n")) - (1 if bucket in mine else 0)
                    sample = [o for o in item.get("owners", {}).get("SS", []) if o != me]
                    if count > 0:
                        wanted.update(sample)
                        exact.append((record, namespace, bucket, count, sample))
                    continue
                reaching = sorted(
                    attr[len(_OWNER_ATTR) :]
                    for attr, value in item.items()
                    if attr.startswith(_OWNER_ATTR)
                    and attr[len(_OWNER_ATTR) :] != me
                    and any(grant_reaches(g, namespace) for g in _strings(value))
                )
                wanted.update(reaching[:SAMPLE_CAP])
                if len(reaching) > SAMPLE_CAP:
                    unnamed.setdefault(me, []).append(
                        _unnamed(len(reaching) - SAMPLE_CAP, record, namespace)
                    )
    found.update(_records(_batch_get(store, [identity_key(u) for u in sorted(wanted)]).values()))
    for record, namespace, bucket, count, sample in exact:
        named = sum(1 for o in sample if o in found and bucket in record_buckets(found[o]))
        if count > named:
            unnamed.setdefault(record.username, []).append(
                _unnamed(count - named, record, namespace)
            )
    return Candidates(sorted(found.values(), key=lambda r: r.username), unnamed)


def reindex(
    store: DynamoDBAdmin, on_progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Rebuild the reach registry and complete the client-id registry from one paged
    scan, then write the ``meta#schema`` marker; idempotent (run it again to repair).

    Run it while nothing else writes identities (add, update and import refuse until
    it has run; a removal meanwhile can leave a stale count, which only refuses more).
    ``on_progress(n)`` after each page with its item count. Raises StoreError, writing
    no marker, when a wildcard bucket cannot fit in one item."""
    ids: list[tuple[str, tuple[str, ...]]] = []  # (username, client ids): memory stays small
    unreadable = 0
    stale: set[str] = set()
    registry: dict[str, str] = {}
    exact: dict[str, list[str]] = {}
    wild: dict[str, dict[str, Any]] = {}
    for page in _pages(store):
        for item in page:
            key = item.get("pk", {}).get("S", "")
            if key.startswith(IDENTITY_PREFIX):
                try:
                    record = IdentityRecord.from_item(item)
                except InvalidRecord:
                    unreadable += 1
                    continue
                ids.append((record.username, record.allowed_client_ids()))
                for bucket, grants in record_buckets(record).items():
                    if is_exact(bucket):
                        exact.setdefault(bucket, []).append(record.username)
                    else:
                        wild.setdefault(bucket, {})[_OWNER_ATTR + record.username] = {
                            "L": [{"S": g} for g in grants]
                        }
            elif key.startswith(REACH_PREFIX):
                stale.add(key)
            elif key.startswith(CLIENT_ID_PREFIX):
                owner = item.get("owner", {}).get("S")
                registry[key[len(CLIENT_ID_PREFIX) :]] = owner if isinstance(owner, str) else ""
        if on_progress is not None:
            on_progress(len(page))
    items: list[dict[str, Any]] = []
    for bucket, owners in exact.items():
        items.append(
            {
                "pk": {"S": reach_key(bucket)},
                "n": {"N": str(len(owners))},
                "owners": {"SS": sorted(owners)[:SAMPLE_CAP]},
            }
        )
    for bucket, attributes in wild.items():
        item = {"pk": {"S": reach_key(bucket)}, **attributes}
        if _item_size(item) > MAX_REACH_ITEM_BYTES:
            raise StoreError(
                f"too many identities hold grants under {bucket!r} for one reach registry "
                f"item ({len(attributes)} identities; DynamoDB's limit is 400 KB): narrow "
                "some of those grants and run `iotauth devices reindex` again"
            )
        items.append(item)
    stale -= {item["pk"]["S"] for item in items}
    requests: list[dict[str, Any]] = [{"PutRequest": {"Item": i}} for i in items]
    requests += [{"DeleteRequest": {"Key": {"pk": {"S": k}}}} for k in sorted(stale)]
    _batch_write(store, requests)
    claimed, conflicts = 0, []
    for username, client_ids in ids:
        for client_id in client_ids:
            owner = registry.get(client_id)
            if owner is None:
                try:
                    claim = _claim_item(username, client_id)
                    store._call("put_item", TableName=store.table, **claim)
                    claimed += 1
                    registry[client_id] = username
                    continue
                except Conflict:
                    owner = store.client_id_owner(client_id) or "?"
            if owner != username:
                conflicts.append(
                    f"client id {client_id!r} is listed by {username!r} but registered to {owner!r}"
                )
    put_marker(store)
    return {
        "table": store.table,
        "identities": len(ids),
        "unreadable": unreadable,
        "reachItems": len(items),
        "staleReachItemsRemoved": len(stale),
        "clientIdsRegistered": claimed,
        "clientIdConflicts": conflicts,
        "schemaVersion": SCHEMA_VERSION,
    }


def put_marker(store: DynamoDBAdmin) -> None:
    store._call(
        "put_item",
        TableName=store.table,
        Item={
            "pk": {"S": SCHEMA_KEY},
            "version": {"N": str(SCHEMA_VERSION)},
            "writtenAt": {"N": str(int(time.time()))},
        },
    )


def require_schema(store: DynamoDBAdmin, marker: dict[str, Any] | None) -> None:
    if marker is not None and _int(marker.get("version")) >= SCHEMA_VERSION:
        return
    if marker is None:
        # A table with nothing in it (as the template creates it) is complete as is.
        page = store._call("scan", TableName=store.table, Limit=1, ConsistentRead=True)
        if not page.get("Items") and "LastEvaluatedKey" not in page:
            put_marker(store)
            return
    raise SchemaOutdated(
        f"table {store.table!r} predates the reach registry (iotauth before issue 14): "
        "run `iotauth devices reindex` once, then try again"
    )


def _batch_get(store: DynamoDBAdmin, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """pk → item for those of ``keys`` that exist: consistent, 100 keys a call,
    unprocessed keys retried with capped, jittered backoff."""
    unique = list(dict.fromkeys(keys))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(unique), _BATCH_GET):
        chunk = unique[start : start + _BATCH_GET]
        request: dict[str, Any] = {
            store.table: {"Keys": [{"pk": {"S": k}} for k in chunk], "ConsistentRead": True}
        }
        for attempt in range(_BATCH_ATTEMPTS):
            response = store._call("batch_get_item", RequestItems=request)
            for item in response.get("Responses", {}).get(store.table, []):
                found[item["pk"]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            _backoff(attempt)
        else:
            raise StoreError("DynamoDB batch_get_item left keys unprocessed; try again")
    return found


def _batch_write(store: DynamoDBAdmin, requests: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(requests), _BATCH_WRITE):
        pending: dict[str, Any] = {store.table: list(requests[start : start + _BATCH_WRITE])}
        for attempt in range(_BATCH_ATTEMPTS):
            response = store._call("batch_write_item", RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                break
            _backoff(attempt)
        else:
            raise StoreError("DynamoDB batch_write_item left items unprocessed; try again")


def _pages(store: DynamoDBAdmin) -> Iterator[list[dict[str, Any]]]:
    kwargs: dict[str, Any] = {"TableName": store.table, "ConsistentRead": True}
    while True:
        page = store._call("scan", **kwargs)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _claim_item(username: str, client_id: str) -> dict[str, Any]:
    return {
        "Item": {"pk": {"S": client_id_key(client_id)}, "owner": {"S": username}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }


def _update(key: str, expression: str, names: dict[str, str]) -> dict[str, Any]:
    return {
        "Key": {"pk": {"S": key}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
    }


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))  # noqa: S311


def _int(value: Any) -> int:
    try:
        return int(value["N"])
    except (KeyError, TypeError, ValueError):
        return 0


def _strings(value: Any) -> list[str]:
    try:
        return [v["S"] for v in value["L"]]
    except (KeyError, TypeError):
        return []


def _records(items: Any) -> dict[str, IdentityRecord]:
    found: dict[str, IdentityRecord] = {}
    for item in items:
        if item.get("pk", {}).get("S", "").startswith(IDENTITY_PREFIX):
            try:
                record = IdentityRecord.from_item(item)
            except InvalidRecord:
                continue
            found[record.username] = record
    return found


def _unnamed(count: int, record: IdentityRecord, namespace: str) -> str:
    who = "1 other identity has a grant" if count == 1 else f"{count} other identities have grants"
    return f"{who} that can match the topics of {record.username!r} ({namespace}/…)"


def _value_size(value: Any) -> int:
    """About what DynamoDB counts for an attribute value (strings by length, plus a little
    per element): enough to refuse before its 400 KB limit does."""
    if not isinstance(value, dict):
        return 0
    size = 0
    for kind, inner in value.items():
        if kind in ("S", "N", "B"):
            size += len(str(inner).encode())
        elif kind in ("SS", "NS", "BS"):
            size += sum(len(str(v).encode()) + 1 for v in inner)
        elif kind == "L":
            size += 3 + sum(_value_size(v) + 1 for v in inner)
        elif kind == "M":
            size += 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
        else:
            size += 1
    return size


def _item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())
