"""``devices import``: identities from Mosquitto, EMQX or a CSV/JSON export, all or nothing.

:func:`cmd_import` parses the export (:mod:`iotauth.identities.migration`), reads what it
needs from the table in batches (``BatchGetItem``: each entry's ``identity#`` and
``clientid#`` items), skips entries already imported identically (so a re-run finishes an
import), refuses the file when a name exists with other contents, judges every entry as
``devices add`` would (against the table and the rest of the export; the dry run too), and
only with ``--apply`` writes them, one conditional transaction per identity, several at once
(:mod:`iotauth.identities.bulk`). On any failure or interruption (Ctrl-C, SIGTERM) it waits
for the writes in flight, then removes exactly what this run wrote (only if still the
version it wrote) and says precisely what may be left and how to finish.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotauth.access.scoping import grant_root, has_wildcard_root, shared_roots_from_env
from iotauth.cli import CommandError
from iotauth.cli.devices.common import aws_session, open_store, run_checked
from iotauth.cli.devices.provision import judge_record
from iotauth.cli.output import add_json_flag, emit, note, progress, wants_json
from iotauth.identities.reach import Candidates
from iotauth.identities.records import (
    IdentityRecord,
    InvalidRecord,
    client_id_key,
    identity_key,
)
from iotauth.identities.store import DynamoDBStore, IdentityExists

if TYPE_CHECKING:
    from iotauth.identities.bulk import Ledger
    from iotauth.identities.migration import Imported, Skipped

__all__ = ["register"]

_SHOWN = 20  # names listed in one message
_ROLLBACK_GIVE_UP = 10  # removals in a row without an answer: the table is unreachable
_FINISH_HINT = (
    "re-run the same import with --apply to finish it (identities it already wrote "
    "identically are skipped), or remove them with `iotauth devices remove NAME`"
)


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f" … and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _every(total: int) -> int:
    return max(100, total // 20)


def cmd_import(args: argparse.Namespace) -> int:
    """Validate every entry, read what the table holds for them, judge every entry as
    ``devices add`` would (the dry run too), then (``--apply``) write them in parallel; on
    any failure or interruption, roll back exactly what this run wrote."""
    skipped: list[Skipped] = []
    plan = _import_plan(args, skipped if args.skip_unsupported else None)
    store = _open_import_store(args)
    stored: dict[str, dict[str, Any]] = {}
    run_checked(lambda: stored.update(_read_keys(store, plan)))
    same, differ = _compare_existing(plan, stored)
    if differ:
        raise CommandError(
            f"{len(differ)} identities already exist with other contents "
            f"({_names(differ)}); nothing was written — an identity is never overwritten "
            "by an import: remove it first, or leave it out of the export"
        )
    todo = [item for item in plan if item.record.username not in same]
    warnings: list[str] = []
    run_checked(lambda: warnings.extend(_judge_import(store, todo, stored)))
    schemes: dict[str, int] = {}
    for item in todo:
        schemes[item.scheme] = schemes.get(item.scheme, 0) + 1
    summary = ", ".join(f"{count} {scheme}" for scheme, count in sorted(schemes.items())) or "none"
    for warning in warnings:
        note(f"WARNING (--allow-broad): {warning}")
    result: dict[str, Any] = {
        "dryRun": not args.apply,
        "planned": len(todo),
        "schemes": schemes,
        "alreadyImported": sorted(same),
        "skippedUnsupported": [
            {"where": s.where, "name": s.name, "scheme": s.scheme} for s in skipped
        ],
        "warnings": warnings,
    }
    if not args.apply:
        result["identities"] = [
            {"name": i.record.username, "kind": i.record.kind, "scheme": i.scheme,
             "where": i.where, "notes": list(i.notes)}
            for i in todo
        ]  # fmt: skip
        emit(args, result, lambda: _print_dry_run(todo, same, skipped, summary))
        return 0
    with _sigterm_as_exit():
        return _write_all(args, store, todo, result, summary, same, skipped)


def _print_dry_run(
    todo: list[Imported], same: set[str], skipped: list[Skipped], summary: str
) -> None:
    for item in todo:
        notes = f"  [{'; '.join(item.notes)}]" if item.notes else ""
        print(f"  {item.record.username:<32} {item.record.kind:<8} {item.scheme}{notes}")
    _print_left_out(same, skipped)
    print(f"dry run: {len(todo)} identities would be imported ({summary}); nothing was "
          "written — run again with --apply to write them")  # fmt: skip


def _print_left_out(same: set[str], skipped: list[Skipped]) -> None:
    if same:
        note(f"{len(same)} identities were already imported identically and are skipped: "
             f"{_names(sorted(same))}")  # fmt: skip
    if skipped:
        note(f"{len(skipped)} entries skipped (--skip-unsupported: their hashes cannot be "
             "verified here; give these users a new password or secret):")  # fmt: skip
        for s in skipped:
            note(f"  {s.where}: {s.name} ({s.scheme})")


def _open_import_store(args: argparse.Namespace) -> DynamoDBStore:
    """:func:`open_store`, its client with a connection per worker (botocore keeps 10 by
    default: more writes in flight would open and drop a connection each time)."""
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    table = open_store(args).table
    config = Config(
        max_pool_connections=args.workers + 8,
        retries={"total_max_attempts": 3, "mode": "standard"},
    )
    try:
        client = aws_session(args).client("dynamodb", config=config)
    except BotoCoreError as exc:
        raise CommandError(f"AWS configuration: {exc}") from None
    return DynamoDBStore(table, client=client)


# -- plan: parse the export ----------------------------------------------------------------


def _import_plan(args: argparse.Namespace, skipped: list[Skipped] | None) -> list[Imported]:
    from iotauth.identities.migration import EmqxHash, ImportProblem, parse_export  # noqa: PLC0415

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.file}: {type(exc).__name__}") from None
    emqx = None
    if args.format.startswith("emqx"):
        if not args.emqx_hash:
            raise CommandError("an EMQX export needs --emqx-hash (its authenticator's algorithm)")
        emqx = EmqxHash(
            args.emqx_hash, args.emqx_salt_position, args.emqx_pbkdf2_mac, args.emqx_iterations
        )
    try:
        return parse_export(
            text,
            args.format,
            now=int(time.time()),
            publish=tuple(args.publish),
            subscribe=tuple(args.subscribe),
            emqx=emqx,
            allow_broad=args.allow_broad,
            skipped=skipped,
        )
    except ImportProblem as exc:
        for line in exc.errors[:50]:
            print(f"  {line}", file=sys.stderr)
        raise CommandError(
            f"{args.file}: {len(exc.errors)} problem(s) (listed above); nothing was written"
        ) from None


# -- what the table holds: batched, consistent reads ---------------------------------------


def _read_keys(store: DynamoDBStore, plan: list[Imported]) -> dict[str, dict[str, Any]]:
    """The stored ``identity#…`` and ``clientid#…`` items of every entry, by key."""
    from iotauth.identities.bulk import batch_get  # noqa: PLC0415

    keys = [identity_key(i.record.username) for i in plan]
    keys += [client_id_key(c) for i in plan for c in i.record.allowed_client_ids()]
    keys = list(dict.fromkeys(keys))
    with progress(len(keys), "reading the table", every=_every(len(keys))) as bar:
        return batch_get(store, keys, workers=8, on_progress=bar.advance)


def _same_identity(item: Imported, stored: IdentityRecord) -> bool:
    """Whether ``stored`` is what importing ``item`` writes (a re-run of the same file)."""
    from iotauth.identities.credentials import verify_password  # noqa: PLC0415

    mine = item.record
    fields = ("kind", "status", "client_ids", "publish", "subscribe", "rooms", "allow_broad",
              "disconnect_after", "refresh_after")  # fmt: skip
    if any(getattr(mine, f) != getattr(stored, f) for f in fields):
        return False
    if item.secret is not None:  # scrypt with a fresh salt: compare by verifying
        return verify_password(item.secret, stored.verifier)
    return mine.verifier == stored.verifier


def _compare_existing(
    plan: list[Imported], stored: dict[str, dict[str, Any]]
) -> tuple[set[str], list[str]]:
    """(names already imported identically, names that exist with other contents)."""
    same: set[str] = set()
    differ: list[str] = []
    for item in plan:
        found = stored.get(identity_key(item.record.username))
        if found is None:
            continue
        try:
            existing = IdentityRecord.from_item(found)
        except InvalidRecord:
            differ.append(item.record.username)
            continue
        (same.add if _same_identity(item, existing) else differ.append)(item.record.username)
    return same, differ


# -- judge: every entry as `devices add` would ---------------------------------------------


class _Index:
    """Which records can change :func:`judge_record`'s answer for a record: those whose
    namespace's first level is a literal first level of its grants, those with a grant whose
    literal first level is one of its namespaces', those with a wildcard-rooted grant (not
    ``allow_broad``: pairing_problems skips those), and those sharing a client id. A grant
    with a literal first level reaches no namespace with another first level, and a
    wildcard-rooted grant is refused whoever else exists, so the answer is the same as
    against everyone, at a fraction of the work."""

    def __init__(self, records: list[IdentityRecord]) -> None:
        self.records = records
        self.by_namespace: dict[str, list[int]] = {}
        self.by_grant: dict[str, list[int]] = {}
        self.by_client_id: dict[str, list[int]] = {}
        self.wild: list[int] = []
        for i, r in enumerate(records):
            for ns in r.namespaces():
                self.by_namespace.setdefault(grant_root(ns), []).append(i)
            wild = False
            for grant in dict.fromkeys((*r.publish, *r.subscribe)):
                if has_wildcard_root(grant):
                    wild = True
                else:
                    self.by_grant.setdefault(grant_root(grant), []).append(i)
            if wild and not r.allow_broad:
                self.wild.append(i)
            for client_id in r.allowed_client_ids():
                self.by_client_id.setdefault(client_id, []).append(i)

    def candidates(self, record: IdentityRecord) -> list[IdentityRecord]:
        found: set[int] = set(self.wild)
        for grant in (*record.publish, *record.subscribe):
            if not has_wildcard_root(grant):
                found.update(self.by_namespace.get(grant_root(grant), ()))
        for ns in record.namespaces():
            found.update(self.by_grant.get(grant_root(ns), ()))
        for client_id in record.allowed_client_ids():
            found.update(self.by_client_id.get(client_id, ()))
        return [self.records[i] for i in sorted(found)]


def _table_candidates(store: DynamoDBStore, records: list[IdentityRecord]) -> Candidates:
    """The stored identities the entries can clash or pair with: keyed, batched reads of
    the client-id and reach registries (``pairing_candidates``), never a scan."""
    found: list[Candidates] = []
    run_checked(lambda: found.append(store.pairing_candidates(records)))
    return found[0]


def _judge_import(
    store: DynamoDBStore, todo: list[Imported], stored: dict[str, dict[str, Any]]
) -> list[str]:
    """Every entry judged by :func:`judge_record` against the table's identities and the
    export's other entries, plus the client-id registry (from ``stored``); raises
    CommandError listing every refusal (nothing is written), else returns the
    ``--allow-broad`` warnings."""
    if not todo:
        return []
    roots = shared_roots_from_env(os.environ)
    mine = {item.record.username for item in todo}
    table = _table_candidates(store, [item.record for item in todo])
    current = [r for r in table if r.username not in mine]
    index = _Index([*current, *(item.record for item in todo)])
    errors: list[str] = []
    warnings: list[str] = []
    with progress(len(todo), "checking", every=_every(len(todo))) as bar:
        for item in todo:
            bar.advance()
            record = item.record
            try:
                others = Candidates(index.candidates(record), table.unnamed)
                found = judge_record(record, others, roots)
                warnings += [f"{record.username!r}: {p}" for p in found]
            except CommandError as exc:
                errors.append(f"{item.where} ({record.username!r}): {exc}")
                continue
            for client_id in record.allowed_client_ids():  # registry items without a record
                owner_item = stored.get(client_id_key(client_id))
                if owner_item is None:
                    continue
                owner = owner_item.get("owner", {}).get("S")
                if owner != record.username:
                    errors.append(
                        f"{item.where} ({record.username!r}): client id {client_id!r} is "
                        f"already registered to identity {owner!r}"
                    )
    if errors:
        for line in errors[:50]:
            print(f"  {line}", file=sys.stderr)
        raise CommandError(
            f"{len(errors)} problem(s) (listed above) — refused as `devices add` would refuse "
            "them; nothing was written"
        )
    return warnings


# -- write in parallel, and roll back exactly on failure or interruption -------------------


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
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


def _write_all(  # noqa: PLR0917 — private; one call site
    args: argparse.Namespace,
    store: DynamoDBStore,
    todo: list[Imported],
    result: dict[str, Any],
    summary: str,
    same: set[str],
    skipped: list[Skipped],
) -> int:
    from iotauth.identities.bulk import Ledger, write_parallel  # noqa: PLC0415

    where = {item.record.username: item.where for item in todo}
    ledger = Ledger()
    records = [item.record for item in todo]
    try:
        with progress(len(records), "importing", every=_every(len(records))) as bar:
            write_parallel(
                records, _add_once(store), ledger, workers=args.workers, on_progress=bar.advance
            )
    except BaseException:  # Ctrl-C, SIGTERM (_sigterm_as_exit) …: undo, then stop as asked
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
    result["imported"] = len(ledger.written)
    if not wants_json(args):
        _print_left_out(same, skipped)
    emit(args, result, lambda: print(f"imported {len(ledger.written)} identities ({summary})"))
    return 0


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
            f"{_names(changed)}"
        )
    if left:
        parts.append(
            f"the table did not answer, so these {len(left)} may remain: {_names(left)} — "
            + _FINISH_HINT
        )
    raise CommandError("; ".join(parts))


# -- registration --------------------------------------------------------------------------


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from iotauth.identities.bulk import DEFAULT_WORKERS, MAX_WORKERS  # noqa: PLC0415

    p = sub.add_parser(
        "import",
        parents=[common],
        help="import identities from Mosquitto, EMQX or a CSV/JSON export (dry run first)",
        description="Import identities from another broker's export so that users keep "
        "their passwords (docs/migrating.md). Every entry is validated and judged as "
        "`devices add` would; a name may exist only if it holds exactly what this export "
        "writes (a re-run: skipped). Without --apply nothing is written (a dry run with a "
        "summary). With --apply the identities are written several at a time; if a write "
        "fails or the command is interrupted (Ctrl-C, SIGTERM), everything this run wrote is "
        "ROLLED BACK (removed again, only if unchanged since), and the command says exactly "
        "what may remain if the table stops answering: re-running the same import then "
        "finishes it. Imported passwords are chosen passwords: the lockout applies.",
    )
    p.add_argument("file", help="the export (its hashes are secrets: keep it private)")
    p.add_argument(
        "--format", required=True, choices=("mosquitto", "csv", "json", "emqx-csv", "emqx-json")
    )
    p.add_argument("--apply", action="store_true", help="write (default: dry run)")
    p.add_argument(
        "--publish", action="append", default=[], metavar="TOPIC", help="grant for everyone"
    )
    p.add_argument(
        "--subscribe", action="append", default=[], metavar="FILTER", help="grant for everyone"
    )
    p.add_argument(
        "--allow-broad",
        action="store_true",
        help="DANGER: accept grants that reach beyond each identity's own topics (as "
        "`devices add --allow-broad`); every record keeps it, each reason is printed",
    )
    p.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out (and list) users whose hashes iotauth cannot verify (argon2id, "
        "bcrypt) and import the rest; give those users a new password or secret",
    )
    p.add_argument(
        "--workers",
        type=_workers(MAX_WORKERS),
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"writes in flight with --apply (1-{MAX_WORKERS}, default {DEFAULT_WORKERS}); "
        "throttled writes are retried with backoff",
    )
    p.add_argument(
        "--emqx-hash", choices=("sha256", "sha512", "pbkdf2"), help="EMQX password_hash_algorithm"
    )
    p.add_argument("--emqx-salt-position", choices=("prefix", "suffix", "disable"))
    p.add_argument("--emqx-pbkdf2-mac", choices=("sha256", "sha512"))
    p.add_argument("--emqx-iterations", type=int, metavar="N")
    add_json_flag(p)
    p.set_defaults(func=cmd_import)


def _workers(limit: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("a whole number") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"1-{limit}")
        return value

    return parse
