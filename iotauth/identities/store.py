"""Where identities and lockout counters live: the interface, its errors, an in-memory store.

Contract: :class:`CredentialStore` is what the authorizer needs — one read of an identity
and its lockout counter (and, when asked, a client id's owner in the registry) in one round
trip, and a counter written and deleted optimistically, by version. :class:`IdentityAdmin`
adds what the CLI does: create, list, update and remove identities, each client id unique
across identities, and ``pairing_candidates`` (what the write rules judge a record against,
read by key: :mod:`iotauth.identities.reach`). Every failure is a :class:`StoreError`
whose message is safe to log.
:class:`MemoryStore` behaves the same, for tests and benchmarks; the table's store is
:class:`~iotauth.identities.dynamodb_store.DynamoDBStore` (also importable from here).

The one reason that matters: the authorizer decides from one read, so a store call is a
bounded, fail-closed step of a decision (docs/design/order-of-checks.md).

Design: docs/design/identity-store.md
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.records import IdentityRecord
from iotauth.wire.frozen import Frozen

if TYPE_CHECKING:
    from iotauth.identities.dynamodb_store import (
        ADMIN_CONNECT_TIMEOUT,
        ADMIN_MAX_ATTEMPTS,
        ADMIN_READ_TIMEOUT,
        CALL_TIMEOUT,
        CONNECT_TIMEOUT,
        MAX_ATTEMPTS,
        READ_TIMEOUT,
        DynamoDBStore,
    )

__all__ = [
    "ADMIN_CONNECT_TIMEOUT",
    "ADMIN_MAX_ATTEMPTS",
    "ADMIN_READ_TIMEOUT",
    "CALL_TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT",
    "ClientIdTaken",
    "CredentialStore",
    "DynamoDBStore",
    "IdentityAdmin",
    "IdentityExists",
    "IdentityNotFound",
    "Lookup",
    "MemoryStore",
    "SchemaOutdated",
    "StoreError",
    "TableMissing",
]

# Defined in iotauth.identities.dynamodb_store (which imports this module), still importable
# from here: loaded on first use, so this module never imports the DynamoDB client.
_FROM_DYNAMODB_STORE = frozenset(
    {
        "ADMIN_CONNECT_TIMEOUT",
        "ADMIN_MAX_ATTEMPTS",
        "ADMIN_READ_TIMEOUT",
        "CALL_TIMEOUT",
        "CONNECT_TIMEOUT",
        "DynamoDBStore",
        "MAX_ATTEMPTS",
        "READ_TIMEOUT",
    }
)


def __getattr__(name: str) -> Any:
    if name in _FROM_DYNAMODB_STORE:
        from iotauth.identities import dynamodb_store  # noqa: PLC0415

        return getattr(dynamodb_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StoreError(Exception):
    """The store could not answer (error, throttle, timeout). The message is safe to log."""


class TableMissing(StoreError):
    pass


class SchemaOutdated(TableMissing):
    """The table predates the registries that keyed checks read (no ``meta#schema``
    marker): ``iotauth devices reindex`` once. A TableMissing: unusable as it is."""


class IdentityExists(StoreError):
    pass


class IdentityNotFound(StoreError):
    pass


class ClientIdTaken(StoreError):
    """A client id of the record is already bound to another identity."""


def changed_since_read(expected: IdentityRecord, current: IdentityRecord) -> bool:
    """Whether the identity read as ``expected`` has been written since (replace_identity)."""
    return expected.updated_at != current.updated_at or expected != current


def topics_changed(old: IdentityRecord, new: IdentityRecord) -> bool:
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

    def pairing_candidates(self, records: Sequence[IdentityRecord]) -> list[IdentityRecord]:
        """The stored identities ``records`` could clash or pair with, read by key
        (:class:`iotauth.identities.reach.Candidates`)."""
        ...


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
            record.validate(check_topics=topics_changed(old, record))
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

    def pairing_candidates(self, records: Sequence[IdentityRecord]) -> list[IdentityRecord]:
        """The same key rules as the table's (:mod:`iotauth.identities.reach`), over every
        record: nothing is counted without a name here."""
        from iotauth.identities.reach import Candidates, candidates_among  # noqa: PLC0415

        self._touch()
        return Candidates(candidates_among(records, list(self.identities.values())))
