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
Judging: :mod:`~iotauth.cli.devices.import_judging`; writing and rollback:
:mod:`~iotauth.cli.devices.import_writing`. Design: docs/design/import.md
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iotauth.cli import CommandError
from iotauth.cli.devices.common import aws_session, open_store, run_checked
from iotauth.cli.devices.import_judging import compare_existing, judge_import, read_keys
from iotauth.cli.devices.import_writing import sigterm_as_exit, write_all
from iotauth.cli.output import add_json_flag, emit, listed_names, note, wants_json
from iotauth.identities.store import DynamoDBStore

if TYPE_CHECKING:
    from iotauth.identities.migration import Imported, Skipped

__all__ = ["register"]


def cmd_import(args: argparse.Namespace) -> int:
    """Validate every entry, read what the table holds for them, judge every entry as
    ``devices add`` would (the dry run too), then (``--apply``) write them in parallel; on
    any failure or interruption, roll back exactly what this run wrote."""
    skipped: list[Skipped] = []
    plan = _import_plan(args, skipped if args.skip_unsupported else None)
    store = _open_import_store(args)
    stored: dict[str, dict[str, Any]] = {}
    run_checked(lambda: stored.update(read_keys(store, plan)))
    same, differ = compare_existing(plan, stored)
    if differ:
        raise CommandError(
            f"{len(differ)} identities already exist with other contents "
            f"({listed_names(differ)}); nothing was written — an identity is never overwritten "
            "by an import: remove it first, or leave it out of the export"
        )
    todo = [item for item in plan if item.record.username not in same]
    warnings: list[str] = []
    run_checked(lambda: warnings.extend(judge_import(store, todo, stored)))
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
            {"where": s.where, "name": _shown(s.name), "scheme": s.scheme} for s in skipped
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
    with sigterm_as_exit():
        written = write_all(store, todo, args.workers)
        result["imported"] = written
        if not wants_json(args):
            _print_left_out(same, skipped)
        emit(args, result, lambda: print(f"imported {written} identities ({summary})"))
        return 0


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
             f"{listed_names(sorted(same))}")  # fmt: skip
    if skipped:
        note(f"{len(skipped)} entries skipped (--skip-unsupported: their hashes cannot be "
             "verified here; give these users a new password or secret):")  # fmt: skip
        for s in skipped:
            name = _shown(s.name)
            note(f"  {s.where}: {name or '(its name field is not a valid name: not shown)'} "
                 f"({s.scheme})")  # fmt: skip


def _shown(name: str) -> str | None:
    """A skipped entry's name if it can be one (valid, not secret-shaped), else None: its
    hash was never checked against it, and a swapped column may put a password there."""
    from iotauth.identities.migration import is_showable_name  # noqa: PLC0415

    return name if is_showable_name(name) else None


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
