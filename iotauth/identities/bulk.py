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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Literal

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
    "MAX_WORKERS",
    "Ledger",
    "batch_get",
    "remove_if_ours",
    "write_parallel",
]

BATCH_GET_LIMIT = 100  # keys per BatchGetItem call (DynamoDB's limit)
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


def _get_chunk(client: Any, table: str, keys: list[str], sleep: Sleep) -> list[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    request: dict[str, Any] = {
        table: {"Keys": [{"pk": {"S": k}} for k in keys], "ConsistentRead": True}
    }
    found: list[dict[str, Any]] = []
    for attempt in range(_ATTEMPTS):
        try:
            response = client.batch_get_item(RequestItems=request)
        except ClientError as exc:
            code = _code(exc)
            if code == "ResourceNotFoundException":
                raise TableMissing(f"table {table!r} does not exist") from None
            if any(code == c for c in _THROTTLED) and attempt + 1 < _ATTEMPTS:
                _backoff(attempt, sleep)
                continue
            raise StoreError(f"DynamoDB batch_get_item failed: {code}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB batch_get_item failed: {type(exc).__name__}") from None
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
    client = store.client
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
        futures = {pool.submit(_get_chunk, client, store.table, c, sleep): c for c in chunks}
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
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, MAX_WORKERS)))
    futures: list[Future[None]] = []
    try:
        # Submit in windows: a stop leaves nothing queued behind it.
        window = max(1, min(workers, MAX_WORKERS)) * 4
        todo = iter(records)
        pending: set[Future[None]] = set()
        while True:
            while len(pending) < window and not stop.is_set():
                record = next(todo, None)
                if record is None:
                    break
                future = pool.submit(_write_one, write, record, ledger, stop, sleep)
                futures.append(future)
                pending.add(future)
            if not pending:
                break
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # an unexpected error in a worker surfaces here
                if on_progress is not None:
                    on_progress(1)
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
