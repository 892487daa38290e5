"""Many identities at once against the table: batched reads, parallel writes, exact undo.

Contract: :func:`batch_get` reads any number of keys with ``BatchGetItem`` (≤ 100 keys per
call, consistent, ``UnprocessedKeys`` retried with capped exponential backoff and jitter);
:func:`write_parallel` runs one write per record on a bounded thread pool, retries
throttling with backoff, stops at the first refusal or interruption and always waits for the
writes in flight, so its :class:`Ledger` says exactly which records this run wrote (or may
have written); :func:`remove_if_ours` deletes one of those only if it is still the version
this run wrote, so a rollback never removes what someone else wrote. Errors are
:class:`~iotauth.identities.store.StoreError` naming an operation and an error code only.

The one reason that matters: an import of 100,000 identities cannot afford one round trip
per id in sequence (issue 14), and a rollback that guesses leaves an operator guessing.
CLI only (botocore, via the store's client); never on the authorizer's path.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Literal

from iotauth.identities.dynamodb_admin import MAX_TRANSACT_ITEMS, GroupContended, GroupRefused
from iotauth.identities.dynamodb_store import DynamoDBStore
from iotauth.identities.records import IdentityRecord, client_id_key, identity_key
from iotauth.identities.store import (
    ClientIdTaken,
    IdentityExists,
    IdentityNotFound,
    StoreError,
    TableMissing,
)

__all__ = [
    "BATCH_GET_LIMIT",
    "DEFAULT_WORKERS",
    "GROUP_IDENTITIES",
    "MAX_GROUP_ACTIONS",
    "MAX_WORKERS",
    "Ledger",
    "batch_get",
    "groups_of",
    "remove_if_ours",
    "touched_keys",
    "write_grouped",
    "write_parallel",
]

BATCH_GET_LIMIT = 100  # keys per BatchGetItem call (DynamoDB's limit)
GROUP_IDENTITIES = 25  # identities per transaction in write_grouped (bench/import_rate.py)
MAX_GROUP_ACTIONS = MAX_TRANSACT_ITEMS
DEFAULT_WORKERS = 16
MAX_WORKERS = 64
_ATTEMPTS = 8  # per call, for throttling and unprocessed keys
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 2.0
_THROTTLED = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "kept refusing",  # a transaction cancelled again and again (throttled items included)
)
_FINAL = (ClientIdTaken, IdentityExists, IdentityNotFound, TableMissing)

Sleep = Callable[[float], None]


def _backoff(attempt: int, sleep: Sleep) -> None:
    """Full jitter: a random pause up to base·2^attempt, capped."""
    sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))  # noqa: S311


def _throttled(exc: StoreError) -> bool:
    return not isinstance(exc, _FINAL) and any(code in str(exc) for code in _THROTTLED)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__


# -- reads ---------------------------------------------------------------------------------


def _get_chunk(store: DynamoDBStore, keys: list[str], sleep: Sleep) -> list[dict[str, Any]]:
    table = store.table
    request: dict[str, Any] = {
        table: {"Keys": [{"pk": {"S": k}} for k in keys], "ConsistentRead": True}
    }
    found: list[dict[str, Any]] = []
    for attempt in range(_ATTEMPTS):
        try:
            # The store's call: its client (botocore, or the standard-library one of
            # paging.wire_store) and its errors (TableMissing; "… failed: <code>").
            response = store._call("batch_get_item", RequestItems=request)
        except TableMissing:
            raise
        except StoreError as exc:
            if _throttled(exc) and attempt + 1 < _ATTEMPTS:
                _backoff(attempt, sleep)
                continue
            raise
        found.extend(response.get("Responses", {}).get(table, []))
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return found
        _backoff(attempt, sleep)
    raise StoreError("DynamoDB batch_get_item left keys unprocessed; try again")


def batch_get(
    store: DynamoDBStore,
    keys: Iterable[str],
    *,
    workers: int = 4,
    on_progress: Callable[[int], None] | None = None,
    sleep: Sleep = time.sleep,
) -> dict[str, dict[str, Any]]:
    """``pk → item`` for those of ``keys`` that exist (consistent reads, 100 keys a call,
    up to ``workers`` calls at once); ``on_progress(n)`` after each call with its key count."""
    unique = list(dict.fromkeys(keys))
    chunks = [unique[i : i + BATCH_GET_LIMIT] for i in range(0, len(unique), BATCH_GET_LIMIT)]
    items: dict[str, dict[str, Any]] = {}
    if not chunks:
        return items
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
        futures = {pool.submit(_get_chunk, store, c, sleep): c for c in chunks}
        try:
            for future in _as_done(futures):
                for item in future.result():
                    key = item.get("pk", {}).get("S")
                    if isinstance(key, str):
                        items[key] = item
                if on_progress is not None:
                    on_progress(len(futures[future]))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return items


def _as_done(futures: Iterable[Future[Any]]) -> Iterable[Future[Any]]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        yield from done


# -- writes --------------------------------------------------------------------------------


class Ledger:
    """What one run of :func:`write_parallel` did, record by record (thread-safe).

    ``written``: written by this run. ``uncertain``: a write was sent and did not answer
    (it may have been written). ``failed``: refused, with a message safe to show. Records in
    none of them were never sent."""

    def __init__(self) -> None:
        self.written: dict[str, IdentityRecord] = {}
        self.uncertain: dict[str, IdentityRecord] = {}
        self.failed: list[tuple[IdentityRecord, str]] = []
        self._lock = threading.Lock()

    def start(self, record: IdentityRecord) -> None:
        """A write of ``record`` is being sent."""
        with self._lock:
            self.uncertain[record.username] = record

    def finish(self, record: IdentityRecord, error: str | None, *, maybe_written: bool) -> None:
        """The write answered: written (``error`` None), refused, or failed without a
        clear answer (``maybe_written``: it stays uncertain)."""
        with self._lock:
            if not maybe_written:
                self.uncertain.pop(record.username, None)
            if error is None:
                self.written[record.username] = record
            else:
                self.failed.append((record, error))

    def unsent(self, record: IdentityRecord) -> None:
        """A write of ``record`` that was started is known to have written nothing."""
        with self._lock:
            self.uncertain.pop(record.username, None)

    def touched(self) -> list[IdentityRecord]:
        """Every record this run wrote or may have written."""
        with self._lock:
            return [*self.written.values(), *self.uncertain.values()]


def _write_one(
    write: Callable[[IdentityRecord], None],
    record: IdentityRecord,
    ledger: Ledger,
    stop: threading.Event,
    sleep: Sleep,
) -> None:
    if stop.is_set():
        return  # never sent
    ledger.start(record)
    for attempt in range(_ATTEMPTS):
        try:
            write(record)
        except StoreError as exc:
            if _throttled(exc) and attempt + 1 < _ATTEMPTS and not stop.is_set():
                _backoff(attempt, sleep)
                continue
            stop.set()
            # A refusal wrote nothing; any other error (a timeout, no answer) may have:
            # the record stays uncertain and a rollback tries to remove it.
            ledger.finish(record, str(exc), maybe_written=not isinstance(exc, _FINAL))
            return
        except BaseException:
            stop.set()
            raise
        ledger.finish(record, None, maybe_written=False)
        return


def write_parallel(
    records: Sequence[IdentityRecord],
    write: Callable[[IdentityRecord], None],
    ledger: Ledger,
    *,
    workers: int = DEFAULT_WORKERS,
    on_progress: Callable[[int], None] | None = None,
    sleep: Sleep = time.sleep,
) -> None:
    """``write(record)`` for every record, ``workers`` at a time; stops at the first failure
    (see ``ledger.failed``) or interruption (re-raised), in both cases only after every
    write in flight has answered, so ``ledger`` is exact when this returns or raises."""

    def one(group: list[IdentityRecord], stop: threading.Event) -> None:
        _write_one(write, group[0], ledger, stop, sleep)

    _run(([r] for r in records), one, workers=workers, on_progress=on_progress)


def touched_keys(record: IdentityRecord) -> tuple[list[str], list[str]]:
    """The table items adding ``record`` touches (one action each), as (its own: identity,
    client-id registry items and, when it has a wildcard one, its reach buckets; the exact
    reach buckets it joins, which identities in one group share: one action adds them up,
    :meth:`~iotauth.identities.dynamodb_admin.DynamoDBAdmin.add_identities`)."""
    from iotauth.identities.reach import is_exact, reach_key, record_buckets  # noqa: PLC0415

    own = [identity_key(record.username)]
    own += [client_id_key(c) for c in record.allowed_client_ids()]
    buckets = record_buckets(record)
    if all(is_exact(b) for b in buckets):
        return own, [reach_key(b) for b in buckets]
    return own + [reach_key(b) for b in buckets], []


def groups_of(
    records: Sequence[IdentityRecord],
    size: int = GROUP_IDENTITIES,
    *,
    max_actions: int = MAX_GROUP_ACTIONS,
) -> list[list[IdentityRecord]]:
    """``records`` in order, cut into groups for one transaction each: at most ``size``
    records and ``max_actions`` actions, and no item twice but the exact reach buckets they
    join (:func:`touched_keys`; DynamoDB refuses a transaction naming an item twice)."""
    groups: list[list[IdentityRecord]] = []
    current: list[IdentityRecord] = []
    owned: set[str] = set()
    shared: set[str] = set()
    for record in records:
        own, joined = touched_keys(record)
        new_shared = [k for k in joined if k not in shared]
        if current and (
            len(current) >= size
            or len(owned) + len(shared) + len(own) + len(new_shared) > max_actions
            or not owned.isdisjoint(own)
            or not shared.isdisjoint(own)
            or not owned.isdisjoint(joined)
        ):
            groups.append(current)
            current, owned, shared = [], set(), set()
        current.append(record)
        owned.update(own)
        shared.update(joined)
    if current:
        groups.append(current)
    return groups


def _write_group(  # noqa: PLR0917 - private, as _write_one
    write_group: Callable[[Sequence[IdentityRecord]], None],
    write_one: Callable[[IdentityRecord], None],
    group: list[IdentityRecord],
    ledger: Ledger,
    stop: threading.Event,
    sleep: Sleep,
) -> None:
    """One transaction for ``group``; if the table refuses it or gives no clear answer,
    each record again on its own (``write_one``, which must accept a record the group did
    write, its answer lost), in order, so every record gets its own answer."""
    if len(group) == 1:
        _write_one(write_one, group[0], ledger, stop, sleep)
        return
    if stop.is_set():
        return  # never sent
    for record in group:
        ledger.start(record)
    maybe_written = False
    for attempt in range(_ATTEMPTS):
        try:
            write_group(group)
        except GroupRefused:
            break  # nothing written
        except StoreError as exc:
            contended = isinstance(exc, GroupContended) or _throttled(exc)
            if contended and attempt + 1 < _ATTEMPTS and not stop.is_set():
                _backoff(attempt, sleep)
                continue
            # No clear answer (or throttled throughout, as one write would be): the group
            # may have been written; its records stay uncertain until one at a time says.
            maybe_written = not contended
            break
        except BaseException:
            stop.set()
            raise
        for record in group:
            ledger.finish(record, None, maybe_written=False)
        return
    if not maybe_written:
        for record in group:
            ledger.unsent(record)
    for record in group:
        _write_one(write_one, record, ledger, stop, sleep)


def write_grouped(
    records: Sequence[IdentityRecord],
    write_group: Callable[[Sequence[IdentityRecord]], None],
    write_one: Callable[[IdentityRecord], None],
    ledger: Ledger,
    *,
    workers: int = DEFAULT_WORKERS,
    group_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    sleep: Sleep = time.sleep,
) -> int:
    """As :func:`write_parallel`, but several records per transaction (:func:`groups_of`,
    ``group_size`` records at most: :data:`GROUP_IDENTITIES` when None), ``workers``
    transactions at a time. A group the table refuses (a condition failed: a name or client
    id taken meanwhile) or does not clearly answer is written again one record at a time with
    ``write_one``, which finds the failing record and its reason exactly as
    :func:`write_parallel` would; throttling and contention are retried with backoff.
    ``ledger`` is exact when this returns or raises. Returns the number of groups."""
    groups = groups_of(records, GROUP_IDENTITIES if group_size is None else group_size)

    def run(group: list[IdentityRecord], stop: threading.Event) -> None:
        _write_group(write_group, write_one, group, ledger, stop, sleep)

    _run(iter(groups), run, workers=workers, on_progress=on_progress)
    return len(groups)


def _run(
    groups: Iterator[list[IdentityRecord]],
    run: Callable[[list[IdentityRecord], threading.Event], None],
    *,
    workers: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    """``run(group, stop)`` for every group on a pool of ``workers``; stops submitting once
    ``stop`` is set, and always waits for what is in flight."""
    stop = threading.Event()
    size = max(1, min(workers, MAX_WORKERS))
    pool = ThreadPoolExecutor(max_workers=size)
    try:
        # Submit in windows: a stop leaves nothing queued behind it.
        window = size * 4
        pending: dict[Future[None], int] = {}
        while True:
            while len(pending) < window and not stop.is_set():
                group = next(groups, None)
                if group is None:
                    break
                pending[pool.submit(run, group, stop)] = len(group)
            if not pending:
                break
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                count = pending.pop(future)
                future.result()  # an unexpected error in a worker surfaces here
                if on_progress is not None:
                    on_progress(count)
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # in-flight writes answer first


# -- undo ----------------------------------------------------------------------------------

Removal = Literal["removed", "absent", "changed", "failed"]


def remove_if_ours(store: DynamoDBStore, record: IdentityRecord) -> Removal:
    """Delete ``record``'s identity, its client-id (and reach) registry items in one transaction,
    only if the stored item is still the version this run wrote (its ``updatedAt``,
    verifier and client ids): ``removed``; ``absent`` (not there: never written or gone);
    ``changed`` (someone wrote it since: left alone); ``failed`` (no answer: may remain)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    condition = "attribute_exists(pk) AND #u = :u AND clientIds = :ids"
    values: dict[str, Any] = {
        ":u": {"N": str(record.updated_at)},
        ":ids": {"L": [{"S": c} for c in record.client_ids]},
    }
    if record.verifier is not None:
        condition += " AND verifier = :v"
        values[":v"] = {"S": record.verifier}
    items: list[dict[str, Any]] = [
        {
            "Delete": {
                "TableName": store.table,
                "Key": {"pk": {"S": identity_key(record.username)}},
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#u": "updatedAt"},
                "ExpressionAttributeValues": values,
            }
        }
    ]
    for client_id in record.allowed_client_ids():
        items.append(
            {
                "Delete": {
                    "TableName": store.table,
                    "Key": {"pk": {"S": client_id_key(client_id)}},
                    "ConditionExpression": "attribute_not_exists(pk) OR #o = :me",
                    "ExpressionAttributeNames": {"#o": "owner"},
                    "ExpressionAttributeValues": {":me": {"S": record.username}},
                }
            }
        )
    reach_updates = getattr(store, "reach_updates", None)  # the reach registry, if kept
    try:
        if reach_updates is not None:
            items += reach_updates(record.username, record, None)
        client: Any = store.client
        client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        if _code(exc) != "TransactionCanceledException":
            return "failed"
        try:
            current = store.get_identity(record.username)
        except StoreError:
            return "failed"
        except ValueError:  # an unreadable item: not the one this run wrote
            return "changed"
        return "absent" if current is None else "changed"
    except (BotoCoreError, StoreError):
        return "failed"
    with contextlib.suppress(StoreError):  # a counter from sign-ins meanwhile (else: TTL)
        store.clear_lockout(record.username)
    return "removed"
