"""``devices import``, writing: the identities in parallel, rolled back exactly on failure.

Contract: :func:`write_all` writes an import's identities in conditional transactions of up
to 25 identities that share no table item, several transactions at a time
(:func:`iotauth.identities.bulk.write_grouped`); a group the table refuses is written again
one identity per transaction, so the failing identity and its reason are reported exactly
as before. If a write fails or the command is interrupted (Ctrl-C; SIGTERM under
:func:`sigterm_as_exit`) it waits for the writes in flight, then removes exactly what this
run wrote, each only if it is still the version it wrote, and raises CommandError saying
what may remain and how to finish. During the rollback Ctrl-C and SIGTERM only say to wait.

The one reason: an import is rolled back, never left half done (docs/migrating.md).
Design: docs/design/import.md
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from iotauth.cli import CommandError
from iotauth.cli.output import listed_names, note, progress, progress_every
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import DynamoDBStore, IdentityExists

if TYPE_CHECKING:
    from iotauth.identities.bulk import Ledger
    from iotauth.identities.migration import Imported

__all__ = ["sigterm_as_exit", "write_all"]

_ROLLBACK_GIVE_UP = 10  # removals in a row without an answer: the table is unreachable
_FINISH_HINT = (
    "re-run the same import with --apply to finish it (identities it already wrote "
    "identically are skipped), or remove them with `iotauth devices remove NAME`"
)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) meanwhile (so the import can roll back), where a
    handler can be set (the main thread)."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """While rolling back, Ctrl-C and SIGTERM only say to wait: stopping a rollback half way
    would leave identities behind (SIGKILL still can)."""
    told: list[bool] = []

    def wait_please(signum: int, frame: object) -> None:
        if not told:
            told.append(True)
            note("iotauth: rolling back; please wait (stopping now would leave identities)")

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, wait_please)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _add_once(store: DynamoDBStore) -> Callable[[IdentityRecord], None]:
    def add(record: IdentityRecord) -> None:
        try:
            store.add_identity(record)
        except IdentityExists:
            # A retry of a write that had gone through (its answer was lost): ours if it is
            # exactly the version this run writes.
            current = store.get_identity(record.username)
            if current is None or (current.updated_at, current.verifier, current.client_ids) != (
                record.updated_at,
                record.verifier,
                record.client_ids,
            ):
                raise

    return add


def write_all(store: DynamoDBStore, todo: list[Imported], workers: int) -> int:
    """Write ``todo``, ``workers`` at a time, and return how many were written; on a failed
    write or an interruption, roll back what this run wrote (:func:`_roll_back` raises
    CommandError with the outcome; an interruption is raised again after it)."""
    from iotauth.identities.bulk import Ledger, write_grouped  # noqa: PLC0415

    where = {item.record.username: item.where for item in todo}
    ledger = Ledger()
    records = [item.record for item in todo]
    try:
        with progress(len(records), "importing", every=progress_every(len(records))) as bar:
            write_grouped(
                records,
                store.add_identities,
                _add_once(store),
                ledger,
                workers=workers,
                on_progress=bar.advance,
            )
    except BaseException:  # Ctrl-C, SIGTERM (sigterm_as_exit) …: undo, then stop as asked
        note(
            f"iotauth: import interrupted after {len(ledger.written)} of {len(records)} "
            "writes; rolling back what this run wrote (the writes in flight have answered)"
        )
        try:
            _roll_back(store, ledger, len(records))
        except CommandError as report:
            note(f"iotauth: {report}")
        raise
    if ledger.failed:
        record, error = ledger.failed[0]
        note(f"iotauth: writing {record.username!r} ({where[record.username]}) failed: {error}")
        _roll_back(store, ledger, len(records))
    return len(ledger.written)


def _roll_back(store: DynamoDBStore, ledger: Ledger, planned: int) -> None:
    """Remove what ``ledger`` says this run wrote or may have written, each only if it is
    still the version this run wrote; always raises CommandError with the outcome."""
    from iotauth.identities.bulk import remove_if_ours  # noqa: PLC0415

    touched = ledger.touched()
    outcome: dict[str, list[str]] = {"removed": [], "absent": [], "changed": [], "failed": []}
    unreached: list[str] = []
    in_a_row = [0]

    def undo(record: IdentityRecord) -> None:
        if in_a_row[0] >= _ROLLBACK_GIVE_UP:
            unreached.append(record.username)
            return
        result = remove_if_ours(store, record)
        in_a_row[0] = in_a_row[0] + 1 if result == "failed" else 0
        outcome[result].append(record.username)

    with _signals_deferred(), ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(undo, touched))
    written = len(ledger.written)
    removed = len(outcome["removed"])
    left = sorted(outcome["failed"] + unreached)
    changed = sorted(outcome["changed"])
    if not left and not changed:
        raise CommandError(
            f"import stopped; rolled back: the {removed} identities it had added were removed "
            "again: nothing was written"
        )
    parts = [f"import stopped after writing {written} of {planned}; rolled back {removed}"]
    if changed:
        parts.append(
            f"{len(changed)} were written again by someone else since and were left in place: "
            f"{listed_names(changed)}"
        )
    if left:
        parts.append(
            f"the table did not answer, so these {len(left)} may remain: {listed_names(left)} — "
            + _FINISH_HINT
        )
    raise CommandError("; ".join(parts))
