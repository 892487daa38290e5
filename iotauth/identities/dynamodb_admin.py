"""The CLI's side of the DynamoDB store: create the table, add, replace, list, remove.

Contract: every write of an identity is one ``TransactWriteItems`` with its ``clientid#``
and ``reach#`` items, each conditional or additive and conditional on the ``updatedAt`` it
read, so a client id is never bound twice, the registries never disagree with the records,
and two operators cannot silently undo each other; a refused write is explained by reading
what refused it. :meth:`DynamoDBAdmin.pairing_candidates` reads in two ``BatchGetItem``
rounds whatever the table's size (a table without ``meta#schema`` must be reindexed first).

The one reason: nobody waits inside IoT's 5-second budget here, so these calls use botocore
with its usual patience, imported only when administration runs.

Design: docs/design/identity-store.md
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from iotauth.identities.records import (
    IDENTITY_PREFIX,
    IdentityRecord,
    InvalidRecord,
    client_id_key,
    identity_key,
)
from iotauth.identities.store import (
    ClientIdTaken,
    IdentityExists,
    IdentityNotFound,
    StoreError,
    TableMissing,
    changed_since_read,
    topics_changed,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from iotauth.identities.dynamodb_store import DynamoDBStore
    from iotauth.identities.reach import Candidates

__all__ = ["MAX_TRANSACT_ITEMS", "Conflict", "DynamoDBAdmin", "GroupContended", "GroupRefused"]

_TRANSACT_ATTEMPTS = 3
MAX_TRANSACT_ITEMS = 100  # DynamoDB: items per TransactWriteItems (one action per item)
_MAX_TRANSACT_BYTES = 3_500_000  # DynamoDB: 4 MB per transaction (JSON size as an estimate)
# Cancellation reasons that say nothing about the items: the same group may pass later.
_CONTENTION = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_THROTTLING = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
# Answers after which a transaction may or may not have been applied (DynamoDB's docs).
_AMBIGUOUS = frozenset({"InternalServerError", "ServiceUnavailable", "RequestTimeout"})


class Conflict(Exception):
    """A conditional write lost (internal to the DynamoDB store)."""


class GroupRefused(StoreError):
    """A group of identities was not written (not sent, or refused as a whole): nothing of
    it is in the table; written one at a time, each gets its own answer."""


class GroupContended(StoreError):
    """A group was cancelled only by contention or throttling: nothing was written, and the
    same group may pass when sent again."""


# Over 200 lines: one DynamoDBStore mixin; every write shares its client, _call and transactions.
class DynamoDBAdmin:
    """Administration of the table, mixed into
    :class:`~iotauth.identities.dynamodb_store.DynamoDBStore`, which provides the table's
    name, the botocore ``client``, ``_call`` (raising :class:`Conflict` on a failed
    condition) and ``clear_lockout``."""

    table: str

    @property
    def client(self) -> DynamoDBClient:
        raise NotImplementedError

    def _call(self, operation: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        raise NotImplementedError

    def create_table(self) -> None:
        """The same schema as the template: ``pk`` (S), on-demand, TTL on ``expiresAt``;
        and the ``meta#schema`` marker (an empty table's registries are complete)."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.client.create_table(
                TableName=self.table,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
                SSESpecification={"Enabled": True},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceInUseException":
                raise StoreError(f"table {self.table!r} already exists") from None
            raise StoreError(f"could not create table {self.table!r}: {exc}") from None
        except BotoCoreError as exc:  # no credentials, unreachable endpoint …
            raise StoreError(f"could not create table {self.table!r}: {exc}") from None
        try:
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        except BotoCoreError as exc:
            raise StoreError(f"table {self.table!r} did not become active: {exc}") from None
        self._call(
            "update_time_to_live",
            TableName=self.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"},
        )
        self._put_marker()

    def ensure_table(self) -> None:
        self._call("describe_table", TableName=self.table)

    def approximate_item_count(self) -> int:
        """DynamoDB's item count (refreshed about every six hours): for progress only."""
        table = self._call("describe_table", TableName=self.table).get("Table", {})
        return int(table.get("ItemCount", 0))

    def get_identity(self, username: str) -> IdentityRecord | None:
        response = self._call(
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": identity_key(username)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return IdentityRecord.from_item(item) if item else None

    def add_identity(self, record: IdentityRecord) -> None:
        self._transact(record, self._adding(record), new=True)

    def _adding(self, record: IdentityRecord, *, reach: bool = True) -> list[dict[str, Any]]:
        """The actions that add ``record``: its item (if absent), its client-id claims and
        (``reach``) its reach entries; validated first."""
        record.validate()
        identity = {
            "Put": {
                "TableName": self.table,
                "Item": record.to_item(),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        claims = [self._claim(record.username, c) for c in record.allowed_client_ids()]
        entries = self.reach_updates(record.username, None, record) if reach else []
        return [identity, *claims, *entries]

    def _joining(self, joining: dict[str, list[str]]) -> list[dict[str, Any]]:
        """One action per exact reach bucket that new identities join (bucket → their names,
        in order): what :meth:`reach_updates` gives each, added up — ``n`` grows by how many
        join, and ``owners`` names them while it names fewer than its cap (the item read
        once, as each of them would read it)."""
        if not joining:
            return []
        from iotauth.identities.bulk import batch_get  # noqa: PLC0415
        from iotauth.identities.reach import SAMPLE_CAP, reach_key  # noqa: PLC0415

        store = cast("DynamoDBStore", self)  # the mixin's only class
        current = batch_get(store, [reach_key(b) for b in joining], workers=1)
        actions: list[dict[str, Any]] = []
        for bucket in sorted(joining):
            key = reach_key(bucket)
            joiners = joining[bucket]
            sample = current.get(key, {}).get("owners", {}).get("SS", [])
            named = joiners[: max(0, SAMPLE_CAP - len(sample))]
            update: dict[str, Any] = {"Key": {"pk": {"S": key}}}
            count = {":d": {"N": str(len(joiners))}}
            if named:
                update["UpdateExpression"] = "ADD #n :d, #s :me"
                update["ExpressionAttributeNames"] = {"#n": "n", "#s": "owners"}
                update["ExpressionAttributeValues"] = {**count, ":me": {"SS": named}}
            else:
                update["UpdateExpression"] = "ADD #n :d"
                update["ExpressionAttributeNames"] = {"#n": "n"}
                update["ExpressionAttributeValues"] = count
            update["TableName"] = self.table
            actions.append({"Update": update})
        return actions

    def add_identities(self, records: Sequence[IdentityRecord]) -> None:
        """Add several new identities in one ``TransactWriteItems``: all of them or none.

        Each is what :meth:`add_identity` writes (the same conditions), so the table holds
        the same items either way; identities joining one exact reach bucket share one
        action on it (DynamoDB refuses a transaction naming an item twice), and the caller
        groups records that share no other item (:func:`iotauth.identities.bulk.groups_of`)
        within :data:`MAX_TRANSACT_ITEMS` actions.
        Raises :class:`GroupRefused` when the group could not be sent or the table refused
        it (nothing was written: write them one at a time to learn which and why),
        :class:`GroupContended` when only contention or throttling cancelled it (nothing
        was written: send it again later), TableMissing, or StoreError when there was no
        clear answer (it may have been written)."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        from iotauth.identities.reach import is_exact, record_buckets  # noqa: PLC0415

        items: list[dict[str, Any]] = []
        joining: dict[str, list[str]] = {}  # exact reach bucket → who joins it, in order
        try:
            for record in records:
                buckets = record_buckets(record)
                if all(is_exact(b) for b in buckets):
                    record.validate()
                    items += self._adding(record, reach=False)
                    for bucket in buckets:
                        joining.setdefault(bucket, []).append(record.username)
                else:  # a wildcard bucket lists each owner's grants: as add_identity does
                    items += self._adding(record)
            items += self._joining(joining)
        except (InvalidRecord, StoreError) as exc:  # one at a time says whose and why
            raise GroupRefused(f"not sent as a group: {type(exc).__name__}") from None
        keys = [_item_key(i) for i in items]
        if len(items) > MAX_TRANSACT_ITEMS or len(set(keys)) < len(keys):
            raise GroupRefused("not sent as a group: too many items, or one item twice")
        if len(json.dumps(items)) > _MAX_TRANSACT_BYTES:
            raise GroupRefused("not sent as a group: too large")
        try:
            self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "")) or "error"
            if code == "ResourceNotFoundException":
                raise TableMissing(f"table {self.table!r} does not exist") from None
            if code == "TransactionCanceledException":
                reasons: list[Any] = list(exc.response.get("CancellationReasons", []))
                codes = {str(r.get("Code")) for r in reasons} - {"None"}
                if codes and codes <= _CONTENTION:
                    raise GroupContended(
                        f"DynamoDB transact_write_items: {sorted(codes)}"
                    ) from None
                raise GroupRefused(
                    f"DynamoDB transact_write_items cancelled: {sorted(codes)}"
                ) from None
            if code in _THROTTLING:
                raise GroupContended(f"DynamoDB transact_write_items failed: {code}") from None
            if code in _AMBIGUOUS:
                raise StoreError(f"DynamoDB transact_write_items failed: {code}") from None
            # Any other answer of the table (a validation error …) wrote nothing.
            raise GroupRefused(f"DynamoDB transact_write_items failed: {code}") from None
        except BotoCoreError as exc:  # no answer: it may have been written
            raise StoreError(
                f"DynamoDB transact_write_items failed: {type(exc).__name__}"
            ) from None

    def replace_identity(
        self, record: IdentityRecord, *, expected: IdentityRecord | None = None
    ) -> None:
        """Write ``record`` over its identity, unless another write came first.

        ``expected`` is the record as the caller read it (a read-modify-write such as
        ``devices disable``/``rotate``): if the identity changed since, nothing is written
        and StoreError "changed meanwhile; try again" is raised, so two operators' writes
        cannot silently undo each other. The stored ``updatedAt`` is the version: every
        write makes it larger than the one it replaces (by a second if need be) and is
        conditional on the one it read.
        """
        old = self.get_identity(record.username)
        if old is None:
            raise IdentityNotFound(f"no identity {record.username!r}")
        if expected is not None and changed_since_read(expected, old):
            raise StoreError(f"identity {record.username!r} changed meanwhile; try again")
        record.validate(check_topics=topics_changed(old, record))
        item = record.to_item()
        item["updatedAt"] = {"N": str(max(record.updated_at, old.updated_at + 1))}
        identity = {
            "Put": {
                "TableName": self.table,
                "Item": item,
                **_unchanged(old),
            }
        }
        kept = record.allowed_client_ids()
        # Every current id is (re)claimed, which also registers ids of records written
        # before the registry existed; ids no longer used are released.
        claims = [self._claim(record.username, c) for c in kept]
        releases = [
            self._release(record.username, c) for c in old.allowed_client_ids() if c not in kept
        ]
        reach = self.reach_updates(record.username, old, record)
        self._transact(record, [identity, *claims, *releases, *reach], new=False)

    def remove_identity(self, username: str) -> None:
        try:
            old = self.get_identity(username)
        except InvalidRecord:  # an unreadable item can still be removed
            old = None
            condition: dict[str, Any] = {"ConditionExpression": "attribute_exists(pk)"}
        else:
            if old is None:
                raise IdentityNotFound(f"no identity {username!r}")
            condition = _unchanged(old)
        identity = {
            "Delete": {
                "TableName": self.table,
                "Key": {"pk": {"S": identity_key(username)}},
                **condition,
            }
        }
        releases = [self._release(username, c) for c in old.allowed_client_ids()] if old else []
        # An unreadable item's reach entries stay (conservative) until `devices reindex`.
        reach = self.reach_updates(username, old, None) if old else []
        items = _within_limit([identity, *releases, *reach], username)
        try:
            self._call("transact_write_items", TransactItems=items)
        except Conflict:
            raise StoreError(
                f"identity {username!r} changed or vanished meanwhile; try again"
            ) from None
        self.clear_lockout(username)

    def client_id_owner(self, client_id: str) -> str | None:
        response = self._call(
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": client_id_key(client_id)}},
            ConsistentRead=True,
        )
        owner = response.get("Item", {}).get("owner", {}).get("S")
        return owner if isinstance(owner, str) else None

    def _claim(self, username: str, client_id: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {"pk": {"S": client_id_key(client_id)}, "owner": {"S": username}},
                "ConditionExpression": "attribute_not_exists(pk) OR #o = :me",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":me": {"S": username}},
            }
        }

    def _release(self, username: str, client_id: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": {"pk": {"S": client_id_key(client_id)}},
                "ConditionExpression": "attribute_not_exists(pk) OR #o = :me",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":me": {"S": username}},
            }
        }

    def _transact(self, record: IdentityRecord, items: list[dict[str, Any]], *, new: bool) -> None:
        """Write ``items`` at once; a refusal is explained by reading what refused it."""
        items = _within_limit(items, record.username)
        for _ in range(_TRANSACT_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=items)
                return
            except Conflict:
                pass
            for client_id in record.allowed_client_ids():
                owner = self.client_id_owner(client_id)
                if owner is not None and owner != record.username:
                    raise ClientIdTaken(
                        f"client id {client_id!r} is already bound to identity {owner!r}"
                    )
            current = self.get_identity(record.username)
            if new and current is not None:
                raise IdentityExists(f"identity {record.username!r} already exists")
            if not new and current is None:
                raise IdentityNotFound(f"no identity {record.username!r}")
            if not new:
                raise StoreError(f"identity {record.username!r} changed meanwhile; try again")
            # Nothing explains it: a concurrent transaction on the same items; try again.
        raise StoreError("the table kept refusing the write; try again")

    # -- the reach registry and the schema marker: iotauth.identities.registry ----------
    def reach_updates(
        self, username: str, old: IdentityRecord | None, new: IdentityRecord | None
    ) -> list[dict[str, Any]]:
        """The transaction actions moving ``username``'s reach entries from ``old`` to
        ``new`` (None: absent): :func:`iotauth.identities.registry.reach_updates`."""
        from iotauth.identities import registry  # noqa: PLC0415 — admin only

        return registry.reach_updates(self, username, old, new)

    def pairing_candidates(self, records: Sequence[IdentityRecord]) -> Candidates:
        """What ``records`` could clash or pair with, read by key:
        :func:`iotauth.identities.registry.pairing_candidates`."""
        from iotauth.identities import registry  # noqa: PLC0415 — admin only

        return registry.pairing_candidates(self, records)

    def reindex(self, on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Build the registries of a table that predates them:
        :func:`iotauth.identities.registry.reindex`."""
        from iotauth.identities import registry  # noqa: PLC0415 — admin only

        return registry.reindex(self, on_progress)

    def _put_marker(self) -> None:
        from iotauth.identities import registry  # noqa: PLC0415 — admin only

        registry.put_marker(self)

    def list_identities(self) -> list[IdentityRecord]:
        return list(self._scan())

    def _scan(self) -> Iterator[IdentityRecord]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": IDENTITY_PREFIX}},
        }
        records = []
        while True:
            page = self._call("scan", **kwargs)
            for item in page.get("Items", []):
                try:
                    records.append(IdentityRecord.from_item(item))
                except InvalidRecord:
                    continue
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        yield from sorted(records, key=lambda r: r.username)


def _unchanged(old: IdentityRecord) -> dict[str, Any]:
    """Condition: the identity is still the version (``updatedAt``) it was read as, with
    the client ids it was read with."""
    version = "#u = :u"
    if old.updated_at == 0:  # maybe an item written without one
        version = "(attribute_not_exists(#u) OR #u = :u)"
    return {
        "ConditionExpression": f"attribute_exists(pk) AND clientIds = :ids AND {version}",
        "ExpressionAttributeNames": {"#u": "updatedAt"},
        "ExpressionAttributeValues": {
            ":ids": {"L": [{"S": c} for c in old.client_ids]},
            ":u": {"N": str(old.updated_at)},
        },
    }


def _item_key(action: dict[str, Any]) -> str:
    """The ``pk`` one transaction action names."""
    ((kind, body),) = action.items()
    key = body["Item"] if kind == "Put" else body["Key"]
    return str(key["pk"]["S"])


def _within_limit(items: list[dict[str, Any]], username: str) -> list[dict[str, Any]]:
    if len(items) > MAX_TRANSACT_ITEMS:
        raise StoreError(
            f"writing identity {username!r} touches {len(items)} table items (its record, "
            f"client ids and reach entries); DynamoDB's transactions take "
            f"{MAX_TRANSACT_ITEMS}: use fewer client ids or grants"
        )
    return items
