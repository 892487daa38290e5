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

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

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
    changed_since_read,
    topics_changed,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from iotauth.identities.reach import Candidates

__all__ = ["MAX_TRANSACT_ITEMS", "Conflict", "DynamoDBAdmin"]

_TRANSACT_ATTEMPTS = 3
MAX_TRANSACT_ITEMS = 100  # DynamoDB: items per TransactWriteItems (one action per item)


class Conflict(Exception):
    """A conditional write lost (internal to the DynamoDB store)."""


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
        record.validate()
        identity = {
            "Put": {
                "TableName": self.table,
                "Item": record.to_item(),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        claims = [self._claim(record.username, c) for c in record.allowed_client_ids()]
        reach = self.reach_updates(record.username, None, record)
        self._transact(record, [identity, *claims, *reach], new=True)

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


def _within_limit(items: list[dict[str, Any]], username: str) -> list[dict[str, Any]]:
    if len(items) > MAX_TRANSACT_ITEMS:
        raise StoreError(
            f"writing identity {username!r} touches {len(items)} table items (its record, "
            f"client ids and reach entries); DynamoDB's transactions take "
            f"{MAX_TRANSACT_ITEMS}: use fewer client ids or grants"
        )
    return items
