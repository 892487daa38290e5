"""``devices import``: identities from Mosquitto, EMQX or a CSV/JSON export, all or nothing.

:func:`cmd_import` parses the export (:mod:`iotauth.identities.migration`), refuses it when
any name exists, judges every entry as ``devices add`` would (against the table and the rest
of the export; the dry run too), and only with ``--apply`` writes them one by one. On any
failure or interruption (Ctrl-C, SIGTERM) it removes what this run added and says precisely
what is left, so an operator never has to guess which half of an export went in.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iotauth.access.scoping import shared_roots_from_env
from iotauth.cli import CommandError
from iotauth.cli.devices.common import open_store, run_checked
from iotauth.cli.devices.provision import judge_record
from iotauth.identities.records import IdentityRecord, InvalidRecord
from iotauth.identities.store import DynamoDBStore, IdentityNotFound, StoreError

__all__ = ["register"]


def cmd_import(args: argparse.Namespace) -> int:
    """Validate every entry, check that no name exists, judge every entry as ``devices add``
    would (against the table and the rest of the export; the dry run too), then
    (``--apply``) write them one by one; on any failure or interruption, remove what this
    run added and say precisely what is left."""
    plan = _import_plan(args)
    store = open_store(args)
    current: list[IdentityRecord] = []
    run_checked(lambda: current.extend(store.list_identities()))
    names = {r.username for r in current}
    existing = [item.record.username for item in plan if item.record.username in names]
    if existing:
        shown = ", ".join(repr(n) for n in existing[:20]) + (" …" if len(existing) > 20 else "")
        raise CommandError(
            f"{len(existing)} identities already exist ({shown}); nothing was written"
        )
    warnings: list[str] = []
    run_checked(lambda: warnings.extend(_judge_import(store, plan, current)))
    schemes: dict[str, int] = {}
    for item in plan:
        schemes[item.scheme] = schemes.get(item.scheme, 0) + 1
        notes = f"  [{'; '.join(item.notes)}]" if item.notes else ""
        print(f"  {item.record.username:<32} {item.record.kind:<8} {item.scheme}{notes}")
    for warning in warnings:
        print(f"WARNING (--allow-broad): {warning}", file=sys.stderr)
    summary = ", ".join(f"{count} {scheme}" for scheme, count in sorted(schemes.items()))
    if not args.apply:
        print(f"dry run: {len(plan)} identities would be imported ({summary}); nothing was "
              "written — run again with --apply to write them")  # fmt: skip
        return 0
    added: list[str] = []
    with _sigterm_as_exit():
        return _write_all(store, plan, added, summary)


# -- plan: parse the export ----------------------------------------------------------------


def _import_plan(args: argparse.Namespace) -> list[Any]:
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
        )
    except ImportProblem as exc:
        for line in exc.errors[:50]:
            print(f"  {line}", file=sys.stderr)
        raise CommandError(
            f"{args.file}: {len(exc.errors)} problem(s) (listed above); nothing was written"
        ) from None


# -- judge: every entry as `devices add` would ---------------------------------------------


def _judge_import(
    store: DynamoDBStore, plan: list[Any], current: list[IdentityRecord]
) -> list[str]:
    """Every planned record judged by :func:`judge_record` against the table's identities and
    the export's other records, plus the client-id registry; raises CommandError listing every
    refusal (nothing is written), else returns the ``--allow-broad`` warnings."""
    roots = shared_roots_from_env(os.environ)
    everyone = [*current, *(item.record for item in plan)]
    # Only records with grants can pair with a record that has none, and only records
    # sharing a client id can clash with it: the rest cannot change judge_record's answer.
    with_grants = [r for r in everyone if r.publish or r.subscribe]
    by_client_id: dict[str, list[IdentityRecord]] = {}
    for r in everyone:
        for client_id in r.allowed_client_ids():
            by_client_id.setdefault(client_id, []).append(r)
    errors: list[str] = []
    warnings: list[str] = []
    for item in plan:
        record = item.record
        if record.publish or record.subscribe:
            others = everyone
        else:
            relevant = {r.username: r for r in with_grants}
            for client_id in record.allowed_client_ids():
                relevant.update((r.username, r) for r in by_client_id.get(client_id, []))
            others = list(relevant.values())
        try:
            warnings += [f"{record.username!r}: {p}" for p in judge_record(record, others, roots)]
        except CommandError as exc:
            errors.append(f"{item.where} ({record.username!r}): {exc}")
            continue
        for client_id in record.allowed_client_ids():  # registry items without a record
            owner = store.client_id_owner(client_id)
            if owner is not None and owner != record.username:
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


# -- write, and roll back on failure or interruption ---------------------------------------


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


def _write_all(store: DynamoDBStore, plan: list[Any], added: list[str], summary: str) -> int:
    for item in plan:
        try:
            store.add_identity(item.record)
        except (StoreError, InvalidRecord) as exc:
            print(f"iotauth: writing {item.record.username!r} failed: {exc}", file=sys.stderr)
            return _roll_back(store, added, len(plan))
        except BaseException:  # Ctrl-C, SIGTERM (_sigterm_as_exit) …: undo, then stop as asked
            print(f"iotauth: import interrupted at {item.record.username!r}", file=sys.stderr)
            name = item.record.username  # it may or may not have been written
            try:
                store.remove_identity(name)
                print(f"iotauth: {name!r} had been written: removed again", file=sys.stderr)
            except IdentityNotFound:
                pass
            except StoreError:
                print(f"iotauth: {name!r} may remain in the table (removing it failed)",
                      file=sys.stderr)  # fmt: skip
            try:
                _roll_back(store, added, len(plan))
            except CommandError as report:
                print(f"iotauth: {report}", file=sys.stderr)
            raise
        added.append(item.record.username)
    print(f"imported {len(added)} identities ({summary})")
    return 0


def _roll_back(store: DynamoDBStore, added: list[str], planned: int) -> int:
    left: list[str] = []
    for name in reversed(added):
        try:
            store.remove_identity(name)
        except StoreError:
            left.append(name)
    if not left:
        raise CommandError(
            f"import stopped; the {len(added)} identities it had added were removed again: "
            "nothing was written"
        )
    raise CommandError(
        f"import stopped after {len(added)} of {planned}; removing them failed for "
        f"{len(left)}, which remain in the table: {', '.join(repr(n) for n in sorted(left))}"
    )


# -- registration --------------------------------------------------------------------------


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        parents=[common],
        help="import identities from Mosquitto, EMQX or a CSV/JSON export (dry run first)",
        description="Import identities from another broker's export so that users keep "
        "their passwords (docs/migrating.md). Every entry is validated and no name may exist "
        "yet; without --apply nothing is written (a dry run with a summary). Imported "
        "passwords are chosen passwords: the lockout applies.",
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
        "--emqx-hash", choices=("sha256", "sha512", "pbkdf2"), help="EMQX password_hash_algorithm"
    )
    p.add_argument("--emqx-salt-position", choices=("prefix", "suffix", "disable"))
    p.add_argument("--emqx-pbkdf2-mac", choices=("sha256", "sha512"))
    p.add_argument("--emqx-iterations", type=int, metavar="N")
    p.set_defaults(func=cmd_import)
