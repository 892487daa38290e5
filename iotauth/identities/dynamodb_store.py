"""The DynamoDB table as the authorizer's store: one read per decision, bounded and fail-closed.

Contract: :class:`DynamoDBStore` implements
:class:`~iotauth.identities.store.CredentialStore` with three calls — ``BatchGetItem``
(identity, lockout counter and, when asked, a client id's owner, consistently), conditional
``PutItem`` and ``DeleteItem`` on the counter — and the CLI's administration
(:class:`~iotauth.identities.dynamodb_admin.DynamoDBAdmin`). Any failure is a
:class:`~iotauth.identities.store.StoreError`, one call ending within ``CALL_TIMEOUT``.

The one reason that matters: the authorizer's calls use :mod:`iotauth.wire.aws_json`, a
standard-library client built at init (:meth:`DynamoDBStore.for_lambda`): botocore's would
cost ~175 ms of cold start. Given a boto3 client, or for administration, botocore is used
(imported only then).

Design: docs/design/identity-store.md, docs/design/cold-start.md,
docs/design/order-of-checks.md (timeouts)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

from iotauth.identities.dynamodb_admin import Conflict, DynamoDBAdmin
from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.records import (
    IdentityRecord,
    InvalidRecord,
    client_id_key,
    identity_key,
    lockout_key,
)
from iotauth.identities.store import Lookup, StoreError, TableMissing
from iotauth.wire.aws_json import DYNAMODB, AwsError, AwsJsonClient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = [
    "ADMIN_CONNECT_TIMEOUT",
    "ADMIN_MAX_ATTEMPTS",
    "ADMIN_READ_TIMEOUT",
    "CALL_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT",
    "DynamoDBStore",
]

CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 0.7
MAX_ATTEMPTS = 2  # in all (botocore's "max_attempts" would count retries only)
CALL_TIMEOUT = 1.5  # every attempt and backoff of one call (docs/design/order-of-checks.md)
ADMIN_CONNECT_TIMEOUT = 5.0
ADMIN_READ_TIMEOUT = 20.0
ADMIN_MAX_ATTEMPTS = 3
_SNAKE = {"BatchGetItem": "batch_get_item", "PutItem": "put_item", "DeleteItem": "delete_item"}


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


class DynamoDBStore(DynamoDBAdmin):
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
                raise Conflict from None
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
                raise Conflict from None
            raise StoreError(f"DynamoDB {operation} failed: {code or 'error'}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB {operation} failed: {type(exc).__name__}") from None

    # -- what the authorizer uses (administration: DynamoDBAdmin) ------------------------
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
        except Conflict:
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
        except Conflict:
            return False
        return True
