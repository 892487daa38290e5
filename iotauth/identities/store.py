"""Where identities and lockout counters live: a small interface, DynamoDB and in-memory.

The authorizer needs three things (:class:`CredentialStore`): read an identity and its
lockout counter in one round trip, write a counter and delete it, both optimistically (by
version; ``devices enable`` deletes unconditionally). The CLI additionally creates, lists,
updates and removes identities (:class:`IdentityAdmin`).

Client ids are unique across identities (two identities on one client id could kick each
other off): every client id of a record has an item ``clientid#<id>`` whose ``owner`` is
the identity, written in one ``TransactWriteItems`` with the identity, each conditional
(``attribute_not_exists(pk) OR owner = :me``), so two concurrent writers cannot both take
an id. Updates move them (the identity's own write is conditional on the client ids it
was read with), removal releases them. The authorizer reads one only in ``lookup(username,
client_id)`` (a third key of the same BatchGetItem), for an Aliyun device signing a client
id other than its default.

The authorizer's three calls (BatchGetItem, conditional PutItem and DeleteItem) go through
:mod:`iotauth.wire.aws_json`, a standard-library client (botocore's client costs ~175 ms of cold
start, REFERENCE §13); :meth:`DynamoDBStore.for_lambda` builds it from Lambda's environment
at init. Given a boto3 client, or for administration, the store uses botocore as before
(imported only then).

Either way a slow, throttled or unreachable table makes the authorizer deny well inside
IoT's 5-second budget: connect 0.5 s, read 0.7 s (per socket read), each attempt within
1.2 s however slowly the answer is trickled, two attempts in all, full-jitter backoff of at
most 25 ms (throttling: 1 s) before the second, and the whole call within 1.5 s
(``CALL_TIMEOUT``, :mod:`iotauth.wire.aws_json`'s ``total_timeout``; DNS resolution aside), so
one failing call ends in ≤ 1.5 s. Expired or invalid credentials, a failed condition and a
missing table are not retried. The authorizer stops at the first store error, and starts
no store call later than 2.5 s into a decision (:mod:`iotauth.connect.authenticate`), so several
slow calls cannot add up either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.records import (
    IDENTITY_PREFIX,
    IdentityRecord,
    InvalidRecord,
    client_id_key,
    identity_key,
    lockout_key,
)
from iotauth.wire.aws_json import DYNAMODB, AwsError, AwsJsonClient
from iotauth.wire.frozen import Frozen

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "ClientIdTaken",
    "CredentialStore",
    "DynamoDBStore",
    "IdentityAdmin",
    "IdentityExists",
    "IdentityNotFound",
    "Lookup",
    "MemoryStore",
    "StoreError",
    "TableMissing",
]

CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 0.7
MAX_ATTEMPTS = 2  # in all (botocore's "max_attempts" would count retries only)
CALL_TIMEOUT = 1.5  # every attempt and backoff of one call (module notes)
ADMIN_CONNECT_TIMEOUT = 5.0
ADMIN_READ_TIMEOUT = 20.0
ADMIN_MAX_ATTEMPTS = 3
_SNAKE = {"BatchGetItem": "batch_get_item", "PutItem": "put_item", "DeleteItem": "delete_item"}


class StoreError(Exception):
    """The store could not answer (error, throttle, timeout). The message is safe to log."""


class TableMissing(StoreError):
    pass


class IdentityExists(StoreError):
    pass


class IdentityNotFound(StoreError):
    pass


class ClientIdTaken(StoreError):
    """A client id of the record is already bound to another identity."""


_TRANSACT_ATTEMPTS = 3


def _changed(expected: IdentityRecord, current: IdentityRecord) -> bool:
    """Whether the identity read as ``expected`` has been written since (replace_identity)."""
    return expected.updated_at != current.updated_at or expected != current


def _topics_changed(old: IdentityRecord, new: IdentityRecord) -> bool:
    """Whether a replacement changes anything the write-time topic rules judge."""
    return (old.username, old.publish, old.subscribe, old.rooms, old.allow_broad) != (
        new.username,
        new.publish,
        new.subscribe,
        new.rooms,
        new.allow_broad,
    )


class Lookup(Frozen):
    """An identity (None when unknown), whether its item was unreadable, and its counter;
    with ``lookup(…, client_id=…)`` also who owns that client id (None: nobody)."""

    __slots__ = ("client_id_owner", "invalid_record", "lockout", "record")
    record: IdentityRecord | None
    lockout: LockoutState | None
    invalid_record: bool
    client_id_owner: str | None

    def __init__(
        self,
        record: IdentityRecord | None,
        lockout: LockoutState | None,
        invalid_record: bool = False,
        client_id_owner: str | None = None,
    ) -> None:
        self._init(
            record=record,
            lockout=lockout,
            invalid_record=invalid_record,
            client_id_owner=client_id_owner,
        )


class CredentialStore(Protocol):
    def lookup(self, username: str, client_id: str | None = None) -> Lookup:
        """One read: the identity, its lockout counter and (when ``client_id`` is given,
        in the same round trip) the owner of that client id in the registry."""
        ...

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        """Write ``state`` if the stored version is still ``previous_version`` (0: none)."""
        ...

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        """Delete the counter; with ``expected_version``, only if the stored version is still
        that one (False, nothing deleted, when it is not or there is none)."""
        ...


class IdentityAdmin(CredentialStore, Protocol):
    def create_table(self) -> None: ...

    def ensure_table(self) -> None: ...

    def get_identity(self, username: str) -> IdentityRecord | None: ...

    def add_identity(self, record: IdentityRecord) -> None: ...

    def replace_identity(
        self, record: IdentityRecord, *, expected: IdentityRecord | None = None
    ) -> None: ...

    def remove_identity(self, username: str) -> None: ...

    def list_identities(self) -> list[IdentityRecord]: ...

    def client_id_owner(self, client_id: str) -> str | None: ...


def _lockout_from_item(item: dict[str, Any]) -> LockoutState:
    try:
        locked = item.get("lockedUntil")
        return LockoutState(
            failures=int(item["failures"]["N"]),
            window_start=int(item["windowStart"]["N"]),
            locked_until=int(locked["N"]) if locked else None,
            version=int(item["version"]["N"]),
        )
    except (KeyError, TypeError, ValueError):
        # An unreadable counter must not unlock anyone: treat it as a current lock.
        return LockoutState(failures=0, window_start=0, locked_until=2**62, version=-1)


def _lockout_item(username: str, state: LockoutState, policy: LockoutPolicy) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": lockout_key(username)},
        "failures": {"N": str(state.failures)},
        "windowStart": {"N": str(state.window_start)},
        "version": {"N": str(state.version)},
        "expiresAt": {"N": str(state.expires_at(policy))},
    }
    if state.locked_until is not None:
        item["lockedUntil"] = {"N": str(state.locked_until)}
    return item


class DynamoDBStore:
    """The table named by ``IOTAUTH_TABLE``.

    Without ``client``, the authorizer's calls use the standard-library client ``api``
    (from the environment when not given, on first use) and administration a botocore
    client created on first use (with longer timeouts: no device waits on it); with a boto3
    ``client``, everything goes through it.
    """

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        api: AwsJsonClient | None = None,
    ) -> None:
        self.table = table
        self._client = client
        self._use_client = client is not None
        self._api = api
        self._lock = threading.Lock()

    @classmethod
    def for_lambda(cls, table: str) -> DynamoDBStore:
        """The authorizer's store, its client built now (Lambda's init): region, endpoint
        and credentials from the environment. Raises ValueError when they are missing."""
        return cls(table, api=cls._new_api())

    @staticmethod
    def _new_api() -> AwsJsonClient:
        return AwsJsonClient.from_env(
            DYNAMODB,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_attempts=MAX_ATTEMPTS,
            total_timeout=CALL_TIMEOUT,
        )

    @property
    def api(self) -> AwsJsonClient:
        if self._api is None:
            with self._lock:
                if self._api is None:
                    self._api = self._new_api()
        return self._api

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._new_client()
        return self._client

    @staticmethod
    def _new_client() -> DynamoDBClient:
        # botocore rather than boto3: the same client and configuration chain (AWS_REGION,
        # AWS_ENDPOINT_URL, profiles …) without importing boto3's resource layer.
        import botocore.session  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        # Administration only (the authorizer's calls go through `api`): nobody is waiting
        # inside IoT's 5-second budget here, so botocore's usual patience.
        config = Config(
            connect_timeout=ADMIN_CONNECT_TIMEOUT,
            read_timeout=ADMIN_READ_TIMEOUT,
            retries={"total_max_attempts": ADMIN_MAX_ATTEMPTS, "mode": "standard"},
        )
        client = botocore.session.get_session().create_client("dynamodb", config=config)
        return cast("DynamoDBClient", client)

    def _data(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One of the authorizer's calls (``operation`` in wire spelling)."""
        if self._use_client:
            result: dict[str, Any] = self._call(_SNAKE[operation], **params)
            return result
        try:
            api = self.api
        except ValueError as exc:  # ConfigError: no region / credentials; names no secret
            raise StoreError(f"DynamoDB {operation} failed: {exc}") from None
        try:
            return api.call(operation, params)
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                raise TableMissing(f"table {self.table!r} does not exist") from None
            if exc.code == "ConditionalCheckFailedException":
                raise _Conflict from None
            raise StoreError(f"DynamoDB {exc}") from None

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise TableMissing(f"table {self.table!r} does not exist") from None
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise _Conflict from None
            raise StoreError(f"DynamoDB {operation} failed: {code or 'error'}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB {operation} failed: {type(exc).__name__}") from None

    # -- what the authorizer uses -------------------------------------------------------
    def lookup(self, username: str, client_id: str | None = None) -> Lookup:
        keys = [{"pk": {"S": identity_key(username)}}, {"pk": {"S": lockout_key(username)}}]
        if client_id is not None:
            keys.append({"pk": {"S": client_id_key(client_id)}})
        response = self._data(
            "BatchGetItem", {"RequestItems": {self.table: {"Keys": keys, "ConsistentRead": True}}}
        )
        if response.get("UnprocessedKeys"):
            raise StoreError("DynamoDB BatchGetItem left keys unprocessed")
        record: IdentityRecord | None = None
        lockout: LockoutState | None = None
        invalid = False
        owner: str | None = None
        for item in response.get("Responses", {}).get(self.table, []):
            key = item.get("pk", {}).get("S", "")
            if key == identity_key(username):
                try:
                    record = IdentityRecord.from_item(item)
                except InvalidRecord:
                    invalid = True
            elif key == lockout_key(username):
                lockout = _lockout_from_item(item)
            elif client_id is not None and key == client_id_key(client_id):
                found = item.get("owner", {}).get("S")
                owner = found if isinstance(found, str) else "?"  # unreadable: taken
        return Lookup(record=record, lockout=lockout, invalid_record=invalid, client_id_owner=owner)

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        if previous_version:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(previous_version)}},
            }
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        try:
            self._data(
                "PutItem",
                {
                    "TableName": self.table,
                    "Item": _lockout_item(username, state, policy),
                    **condition,
                },
            )
        except _Conflict:
            return False
        return True

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        params: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": lockout_key(username)}},
        }
        if expected_version is not None:
            params["ConditionExpression"] = "#v = :v"
            params["ExpressionAttributeNames"] = {"#v": "version"}
            params["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        try:
            self._data("DeleteItem", params)
        except _Conflict:
            return False
        return True

    # -- administration (CLI) -----------------------------------------------------------
    def create_table(self) -> None:
        """The same schema as the template: ``pk`` (S), on-demand, TTL on ``expiresAt``."""
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

    def ensure_table(self) -> None:
        self._call("describe_table", TableName=self.table)

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
        self._transact(record, [identity, *claims], new=True)

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
        if expected is not None and _changed(expected, old):
            raise StoreError(f"identity {record.username!r} changed meanwhile; try again")
        record.validate(check_topics=_topics_changed(old, record))
        item = record.to_item()
        item["updatedAt"] = {"N": str(max(record.updated_at, old.updated_at + 1))}
        identity = {
            "Put": {
                "TableName": self.table,
                "Item": item,
                **self._unchanged(old),
            }
        }
        kept = record.allowed_client_ids()
        # Every current id is (re)claimed, which also registers ids of records written
        # before the registry existed; ids no longer used are released.
        claims = [self._claim(record.username, c) for c in kept]
        releases = [
            self._release(record.username, c) for c in old.allowed_client_ids() if c not in kept
        ]
        self._transact(record, [identity, *claims, *releases], new=False)

    def remove_identity(self, username: str) -> None:
        try:
            old = self.get_identity(username)
        except InvalidRecord:  # an unreadable item can still be removed
            old = None
            condition: dict[str, Any] = {"ConditionExpression": "attribute_exists(pk)"}
        else:
            if old is None:
                raise IdentityNotFound(f"no identity {username!r}")
            condition = self._unchanged(old)
        identity = {
            "Delete": {
                "TableName": self.table,
                "Key": {"pk": {"S": identity_key(username)}},
                **condition,
            }
        }
        releases = [self._release(username, c) for c in old.allowed_client_ids()] if old else []
        try:
            self._call("transact_write_items", TransactItems=[identity, *releases])
        except _Conflict:
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

    def _unchanged(self, old: IdentityRecord) -> dict[str, Any]:
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
        for _ in range(_TRANSACT_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=items)
                return
            except _Conflict:
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


class _Conflict(Exception):
    """A conditional write lost (internal)."""


class MemoryStore:
    """An in-memory store with the same behaviour, for unit tests and benchmarks."""

    def __init__(self) -> None:
        self.identities: dict[str, IdentityRecord] = {}
        self.lockouts: dict[str, LockoutState] = {}
        self.client_ids: dict[str, str] = {}  # client id → owner (the registry)
        self._write_lock = threading.Lock()
        self.fail_with: StoreError | None = None  # set to simulate an outage
        self.calls = 0

    def _touch(self) -> None:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with

    def lookup(self, username: str, client_id: str | None = None) -> Lookup:
        self._touch()
        owner = self.client_ids.get(client_id) if client_id is not None else None
        return Lookup(
            self.identities.get(username), self.lockouts.get(username), client_id_owner=owner
        )

    def save_lockout(
        self, username: str, state: LockoutState, policy: LockoutPolicy, previous_version: int
    ) -> bool:
        self._touch()
        current = self.lockouts.get(username)
        if (current.version if current else 0) != previous_version:
            return False
        self.lockouts[username] = state
        return True

    def clear_lockout(self, username: str, expected_version: int | None = None) -> bool:
        self._touch()
        current = self.lockouts.get(username)
        if expected_version is not None and (
            current is None or current.version != expected_version
        ):
            return False
        self.lockouts.pop(username, None)
        return True

    def create_table(self) -> None:
        self._touch()

    def ensure_table(self) -> None:
        self._touch()

    def get_identity(self, username: str) -> IdentityRecord | None:
        self._touch()
        return self.identities.get(username)

    def add_identity(self, record: IdentityRecord) -> None:
        self._touch()
        record.validate()
        with self._write_lock:
            if record.username in self.identities:
                raise IdentityExists(f"identity {record.username!r} already exists")
            self._check_free(record)
            self.identities[record.username] = record
            for client_id in record.allowed_client_ids():
                self.client_ids[client_id] = record.username

    def replace_identity(
        self, record: IdentityRecord, *, expected: IdentityRecord | None = None
    ) -> None:
        self._touch()
        with self._write_lock:
            old = self.identities.get(record.username)
            if old is None:
                raise IdentityNotFound(f"no identity {record.username!r}")
            if expected is not None and old is not expected and old != expected:
                raise StoreError(f"identity {record.username!r} changed meanwhile; try again")
            record.validate(check_topics=_topics_changed(old, record))
            self._check_free(record)
            for client_id in old.allowed_client_ids():
                if self.client_ids.get(client_id) == record.username:
                    del self.client_ids[client_id]
            self.identities[record.username] = record
            for client_id in record.allowed_client_ids():
                self.client_ids[client_id] = record.username

    def remove_identity(self, username: str) -> None:
        self._touch()
        with self._write_lock:
            old = self.identities.pop(username, None)
            if old is None:
                raise IdentityNotFound(f"no identity {username!r}")
            for client_id in old.allowed_client_ids():
                if self.client_ids.get(client_id) == username:
                    del self.client_ids[client_id]
            self.lockouts.pop(username, None)

    def client_id_owner(self, client_id: str) -> str | None:
        self._touch()
        return self.client_ids.get(client_id)

    def _check_free(self, record: IdentityRecord) -> None:
        for client_id in record.allowed_client_ids():
            owner = self.client_ids.get(client_id)
            if owner is not None and owner != record.username:
                raise ClientIdTaken(
                    f"client id {client_id!r} is already bound to identity {owner!r}"
                )

    def list_identities(self) -> list[IdentityRecord]:
        self._touch()
        return sorted(self.identities.values(), key=lambda r: r.username)
