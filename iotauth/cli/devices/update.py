"""``devices update NAME``: change an identity's grants, rooms, client ids or session times.

The changed record passes the same rules as ``devices add`` (:func:`judge_record`: the
record's own rules, client-id clashes and pairings with the identities it could reach) and
is written only if the identity is still the version it was read as (``replace_identity``,
which also moves the ``clientid#`` registry in the same transaction): a refused or raced
update changes nothing. The diff (``field: old → new``) goes to stderr, or with ``--json``
``{"username", "changed": {field: [old, new]}, "closed": […]}`` to stdout; ``--dry-run``
stops after the diff. Then, when access shrank in any way (a client id, grant or room
removed, a flag withdrawn such as ``--no-retain`` or ``--no-shared``, a shorter session),
it closes the identity's live sessions as ``disable`` does (``--no-disconnect`` skips
it); access that only grew reaches live sessions at their next refresh. Secrets are never
changed here: that is ``rotate``.

Flags, one scheme for every list (client ids, publish, subscribe, rooms): ``--X V``
(repeatable) replaces the list, ``--add-X V``/``--remove-X V`` edit it, ``--clear-X``
empties it; a value: ``--X N`` sets, ``--clear-X`` returns to the default.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from iotauth.access.scoping import shared_roots_from_env
from iotauth.cli import EXIT_OK, CommandError
from iotauth.cli.devices import lifecycle
from iotauth.cli.devices.common import existing, open_store, revocation_options, run_checked
from iotauth.cli.devices.inspect import deployment_seconds
from iotauth.cli.devices.provision import judge_record
from iotauth.cli.output import add_json_flag, emit, note
from iotauth.identities.dynamodb_store import DynamoDBStore
from iotauth.identities.records import IdentityRecord, bounded_session_seconds, clamp_duration
from iotauth.identities.store import topics_changed

__all__ = ["access_shrank", "changes", "register"]

# (option stem, record field, what one value is called in help)
_LISTS = (
    ("client-id", "client_ids", "ID"),
    ("publish", "publish", "TOPIC"),
    ("subscribe", "subscribe", "FILTER"),
    ("room", "rooms", "TOPIC"),
)

# What the diff shows, in this order: (name in public_view / --json, how to read it).
_FIELDS: tuple[tuple[str, Any], ...] = (
    ("clientIds", lambda r: list(r.allowed_client_ids())),
    ("publish", lambda r: list(r.publish)),
    ("subscribe", lambda r: list(r.subscribe)),
    ("rooms", lambda r: list(r.rooms)),
    ("allowBroad", lambda r: r.allow_broad),
    ("retain", lambda r: r.retain),
    ("shared", lambda r: r.shared),
    ("disconnectAfterInSeconds", lambda r: r.disconnect_after),
    ("refreshAfterInSeconds", lambda r: r.refresh_after),
    ("clientIdForm", lambda r: r.client_id_form),
    ("anyClientId", lambda r: r.any_client_id),
    ("allowNoTimestamp", lambda r: r.allow_no_timestamp),
)


def _dest(stem: str) -> str:
    return stem.replace("-", "_")


def _edited_list(args: argparse.Namespace, stem: str, current: tuple[str, ...]) -> tuple[str, ...]:
    key = _dest(stem)
    replace: list[str] | None = getattr(args, key)
    added: list[str] = getattr(args, "add_" + key)
    removed: list[str] = getattr(args, "remove_" + key)
    clear: bool = getattr(args, "clear_" + key)
    if (replace is not None or clear) and (added or removed):
        raise CommandError(
            f"--{stem} or --clear-{stem} replaces the list: no --add/--remove-{stem}"
        )
    if replace is not None and clear:
        raise CommandError(f"--{stem} and --clear-{stem} contradict each other")
    if clear:
        return ()
    if replace is not None:
        return tuple(dict.fromkeys(replace))
    for value in removed:
        if value not in current:
            raise CommandError(f"--remove-{stem} {value!r}: it is not one of them")
    kept = [v for v in current if v not in removed]
    return tuple(dict.fromkeys([*kept, *added]))


def _edited(args: argparse.Namespace, old: IdentityRecord) -> IdentityRecord:
    """``old`` with the command line's changes (not validated yet)."""
    changes: dict[str, Any] = {
        field: _edited_list(args, stem, getattr(old, field)) for stem, field, _ in _LISTS
    }
    for stem in ("disconnect-after", "refresh-after"):
        key = _dest(stem)
        value: int | None = getattr(args, key)
        if value is not None and getattr(args, "clear_" + key):
            raise CommandError(f"--{stem} and --clear-{stem} contradict each other")
        if getattr(args, "clear_" + key):
            changes[key] = None
        elif value is not None:
            changes[key] = value
    if args.client_id_form is not None and args.clear_client_id_form:
        raise CommandError("--client-id-form and --clear-client-id-form contradict each other")
    if args.clear_client_id_form:
        changes["client_id_form"] = None
    elif args.client_id_form is not None:
        changes["client_id_form"] = args.client_id_form
    for key in ("any_client_id", "allow_no_timestamp", "allow_broad", "retain", "shared"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    if old.kind != "aliyun":
        asked = [
            flag
            for flag, given in (
                ("--client-id-form", args.client_id_form is not None or args.clear_client_id_form),
                ("--any-client-id", args.any_client_id is not None),
                ("--allow-no-timestamp/--require-timestamp", args.allow_no_timestamp is not None),
            )
            if given
        ]
        if asked:
            raise CommandError(f"{', '.join(asked)}: only for Aliyun identities")
    return old.replace(**changes)


def changes(old: IdentityRecord, new: IdentityRecord) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` of what differs (public fields only: never a secret)."""
    diff: dict[str, list[Any]] = {}
    for name, read in _FIELDS:
        before, after = read(old), read(new)
        if before != after:
            diff[name] = [before, after]
    return diff


def access_shrank(old: IdentityRecord, new: IdentityRecord) -> list[str]:
    """Why a live session of ``old`` may hold access that ``new`` does not give (empty:
    access only grew or stayed). Conservative: anything withdrawn counts."""
    why: list[str] = []
    gone_ids = [c for c in old.allowed_client_ids() if c not in new.allowed_client_ids()]
    if gone_ids:
        why.append("client ids removed: " + ", ".join(gone_ids))
    for label, before, after in (
        ("publish", old.publish, new.publish),
        ("subscribe", old.subscribe, new.subscribe),
        ("rooms", old.rooms, new.rooms),
    ):
        gone = [g for g in before if g not in after]
        if gone:
            why.append(f"{label} removed: " + ", ".join(gone))
    for label, had, has in (
        ("allow-broad", old.allow_broad, new.allow_broad),
        ("retain", old.retain, new.retain),
        ("shared", old.shared, new.shared),
        ("any-client-id", old.any_client_id, new.any_client_id),
        ("allow-no-timestamp", old.allow_no_timestamp, new.allow_no_timestamp),
    ):
        if had and not has:
            why.append(f"{label} withdrawn")
    if old.client_id_form != new.client_id_form:
        why.append("client-id form changed (the old spelling is no longer accepted)")
    default = deployment_seconds()[0]
    if clamp_duration(new.disconnect_after or default) < clamp_duration(
        old.disconnect_after or default
    ) or bounded_session_seconds(new, default) < bounded_session_seconds(old, default):
        why.append("sessions shortened")
    return why


def _text(value: Any) -> str:
    return "(default)" if value is None else json.dumps(value)


def _judge(store: DynamoDBStore, old: IdentityRecord, new: IdentityRecord) -> None:
    """The rules of ``devices add`` for what the update changes; raises when refused."""
    if not topics_changed(old, new) and old.allowed_client_ids() == new.allowed_client_ids():
        # Nothing the pairing or clash rules judge changed (replace_identity does the same).
        new.validate(check_topics=False)
        return
    roots = shared_roots_from_env(os.environ)
    others = _candidates(store, new)
    for problem in judge_record(new, others, roots):
        note(f"WARNING (--allow-broad): {problem}")


def _candidates(store: DynamoDBStore, record: IdentityRecord) -> list[IdentityRecord]:
    """The identities ``record`` could clash or pair with, read by key (a constant number
    of reads whatever the table's size)."""
    return store.pairing_candidates([record])


def cmd_update(args: argparse.Namespace) -> int:
    store = open_store(args)
    old = existing(store, args.name)
    new = _edited(args, old)
    diff = changes(old, new)
    result: dict[str, Any] = {"username": old.username, "changed": diff, "closed": []}
    if not diff:
        note(f"{old.username!r}: nothing to change")
        emit(args, result)
        return EXIT_OK
    new = new.replace(updated_at=max(int(time.time()), old.updated_at + 1))
    run_checked(lambda: _judge(store, old, new))
    for name, (before, after) in diff.items():
        note(f"  {name}: {_text(before)} → {_text(after)}")
    shrank = access_shrank(old, new)
    if args.dry_run:
        result["dryRun"] = True
        result["wouldDisconnect"] = bool(shrank) and not args.no_disconnect
        note(
            "dry run: nothing written"
            + (f" (access shrinks: {'; '.join(shrank)})" if shrank else "")
        )
        emit(args, result)
        return EXIT_OK
    run_checked(lambda: store.replace_identity(new, expected=old))  # no lost update
    note(f"updated {old.username!r}")
    if not shrank:
        result["disconnect"] = "not needed"
        note(
            "access only grew: live sessions get it at their next refresh or reconnect "
            f"(`iotauth devices disconnect {old.username}` to make it now)"
        )
        emit(args, result)
        return EXIT_OK
    note("access shrank (" + "; ".join(shrank) + "): closing its live sessions")
    # The sessions live now were opened under the old record: close those client ids.
    code = lifecycle._close_connections(args, old.username, lifecycle._plan(old), result)
    emit(args, result)
    return code


def _list_flags(p: argparse.ArgumentParser) -> None:
    for stem, field, meta in _LISTS:
        what = {"client_ids": "client ids", "rooms": "rooms"}.get(field, f"{field} grants")
        key = _dest(stem)
        p.add_argument(
            f"--{stem}",
            dest=key,
            action="append",
            default=None,
            metavar=meta,
            help=f"replace its {what} with these (repeatable)",
        )
        p.add_argument(
            f"--add-{stem}",
            dest="add_" + key,
            action="append",
            default=[],
            metavar=meta,
            help="add one (repeatable)",
        )
        p.add_argument(
            f"--remove-{stem}",
            dest="remove_" + key,
            action="append",
            default=[],
            metavar=meta,
            help="remove one it has (repeatable)",
        )
        default = " (then its default: its name, or productKey&deviceName)"
        p.add_argument(
            f"--clear-{stem}",
            dest="clear_" + key,
            action="store_true",
            help=f"no {what} at all" + (default if stem == "client-id" else ""),
        )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "update",
        parents=[common, revocation_options()],
        help="change an identity's grants, rooms, client ids or session times "
        "(validated as add; closes sessions that lose access)",
        description="Change an identity (never its secret: see rotate). Lists take --X V "
        "(repeatable: replaces the list), --add-X V, --remove-X V or --clear-X, for X in "
        "client-id, publish, subscribe, room. Validated as `devices add` is, written only if "
        "nobody changed the identity since it was read; prints the diff on stderr; then, "
        "if access shrank in any way, closes its live sessions (as disable does).",
    )
    p.add_argument("name")
    _list_flags(p)
    for stem in ("disconnect-after", "refresh-after"):
        p.add_argument(f"--{stem}", type=int, metavar="SECONDS", help="300-86400")
        p.add_argument(
            f"--clear-{stem}",
            action="store_true",
            help="back to the deployment's default",
        )
    p.add_argument(
        "--allow-broad",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="DANGER: accept (or, with --no-allow-broad, stop accepting) grants that reach "
        "beyond its own topics",
    )
    p.add_argument(
        "--retain",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow (or, with --no-retain, stop allowing) retained messages on its own topics",
    )
    p.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="allow (or, with --no-shared, stop allowing) shared subscriptions within its "
        "own topics",
    )
    aliyun = p.add_argument_group("Aliyun identities")
    aliyun.add_argument("--client-id-form", metavar="FORM", help="as add-aliyun")
    aliyun.add_argument(
        "--clear-client-id-form", action="store_true", help="back to the 'aliyun' form"
    )
    aliyun.add_argument(
        "--any-client-id",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept any safe client id it signs (as add-aliyun), or not",
    )
    stamp = aliyun.add_mutually_exclusive_group()
    stamp.add_argument(
        "--allow-no-timestamp",
        dest="allow_no_timestamp",
        action="store_const",
        const=True,
        default=None,
        help="accept signatures without a timestamp (replayable; avoid)",
    )
    stamp.add_argument(
        "--require-timestamp",
        dest="allow_no_timestamp",
        action="store_const",
        const=False,
        help="refuse signatures without a timestamp again",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the diff and what it would do; write nothing"
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_update)
