"""``devices list``: the identities a Scan page at a time, streamed; filter, count, resume.

Rows are printed as each page arrives (a table, or ``--json``: JSON Lines, one object per
identity), so the first line comes at once at any table size and memory holds one page.
``--limit N`` stops after N rows and prints on stderr the ``--next TOKEN`` that resumes
right after the last one; ``--prefix`` and ``--status`` filter (the table still reads every
item, but pages); ``--count`` counts without listing. An identity with a current lockout
shows ``LOCKED``, from its ``lockout#`` item read by key with its page.

Each row is the record's :meth:`~iotauth.identities.records.IdentityRecord.public_view`
(everything but the verifier and the device secret), so nothing printed here is a secret; an
``--allow-broad`` record is flagged on its row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from iotauth.cli import CommandError
from iotauth.cli.devices.common import open_store, run_checked
from iotauth.cli.devices.inspect import utc
from iotauth.cli.output import note, progress
from iotauth.identities.dynamodb_store import DynamoDBStore
from iotauth.identities.lockout import LockoutState, is_locked
from iotauth.identities.paging import (
    DEFAULT_PAGE,
    InvalidToken,
    count_identities,
    decode_token,
    encode_token,
    identities_by_name,
    identity_pages,
    lockout_pages,
    lockout_states,
    position_after,
    wire_store,
)
from iotauth.identities.records import IdentityRecord

__all__ = ["read_store", "register"]

STATES = ("active", "disabled", "locked")

# One row: the record, its lockout counter (None: none read or none there), and the key
# of the item the Scan found it by (where a --next token resumes).
Row = tuple[IdentityRecord, LockoutState | None, dict[str, Any]]
# One page: its rows that match, where the next page starts (None: last), unreadable keys.
Page = tuple[list[Row], dict[str, Any] | None, list[str]]


def state_of(record: IdentityRecord, lock: LockoutState | None, now: int) -> str:
    """``disabled`` (whatever its counter), else ``locked`` during a lockout, else ``active``."""
    if record.status == "disabled":
        return "disabled"
    return "locked" if is_locked(lock, now) else "active"


class _PageSizes:
    """How many items the next Scan call evaluates: with ``--limit``, about three per row
    still wanted (a table holds an identity's item, its client ids' and maybe its counter),
    doubling after a page that matched nothing (a sparse ``--prefix``/``--status``)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.shown = 0
        self.misses = 0

    def __call__(self, _yielded: int) -> int:
        if self.limit is None:
            return DEFAULT_PAGE
        wanted = (3 * max(1, self.limit - self.shown)) << self.misses
        return max(100, min(DEFAULT_PAGE << self.misses, wanted))


def _identity_rows(
    store: DynamoDBStore, args: argparse.Namespace, start: dict[str, Any] | None, sizes: _PageSizes
) -> Iterator[Page]:
    """Pages of identity items; active ones with their counters (one BatchGetItem per
    100), so that a locked one shows as such and ``--status active`` leaves it out."""
    stored = (
        None if args.status is None else ("disabled" if args.status == "disabled" else "active")
    )
    for page in identity_pages(
        store, prefix=args.prefix, status=stored, start=start, page_sizes=sizes
    ):
        active = [r.username for r in page.records if r.status == "active"]
        locks = lockout_states(store, active) if active else {}
        now = int(time.time())
        rows = [
            (r, locks.get(r.username), position_after(r))
            for r in page.records
            if args.status is None or state_of(r, locks.get(r.username), now) == args.status
        ]
        sizes.misses = sizes.misses + 1 if not rows else 0
        yield rows, page.last_key, page.unreadable


def _locked_rows(
    store: DynamoDBStore, args: argparse.Namespace, start: dict[str, Any] | None
) -> Iterator[Page]:
    """``--status locked``: a Scan of the (few) counters, then their identities by key,
    instead of reading every identity's counter."""
    for page in lockout_pages(store, prefix=args.prefix, start=start):
        now = int(time.time())
        current = [(name, state, key) for name, state, key in page.states if is_locked(state, now)]
        records = identities_by_name(store, [name for name, _, _ in current]) if current else {}
        rows: list[Row] = [
            (records[name], state, key)
            for name, state, key in current
            if name in records and records[name].status == "active"
        ]
        yield rows, page.last_key, []


def _view(record: IdentityRecord, lock: LockoutState | None, now: int) -> dict[str, Any]:
    view = record.public_view()
    view["locked"] = state_of(record, lock, now) == "locked"
    if view["locked"] and lock is not None and lock.locked_until is not None:
        view["lockedUntil"] = utc(lock.locked_until)
    return view


def _table_row(view: dict[str, Any]) -> str:
    grants = ",".join(view["clientIds"])
    if view.get("anyClientId"):
        grants += ",(any it signs)"
    if view["rooms"]:
        grants += " room:" + ",".join(view["rooms"])
    if view["publish"]:
        grants += " pub:" + ",".join(view["publish"])
    if view["subscribe"]:
        grants += " sub:" + ",".join(view["subscribe"])
    if view["allowBroad"]:
        grants += "  !! ALLOW-BROAD"
    status = "LOCKED" if view["locked"] else view["status"]
    return f"{view['username']:<32} {view['kind']:<8} {status:<8} {grants}"


def _start(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.next is None:
        return None
    try:
        return decode_token(args.next)
    except InvalidToken as exc:
        raise CommandError(f"--next: {exc}") from None


def _stream(args: argparse.Namespace, pages: Iterator[Page], sizes: _PageSizes) -> None:
    """Print each page's rows as it arrives; stop after ``--limit`` rows with a token."""
    unreadable: list[str] = []
    for number, (rows, last_key, skipped) in enumerate(pages):
        if number == 0 and not args.json:  # after the first answer: an error prints nothing
            print(f"{'USERNAME':<32} {'KIND':<8} {'STATUS':<8} CLIENT IDS / GRANTS")
        unreadable.extend(skipped)
        now = int(time.time())
        for index, (record, lock, key) in enumerate(rows):
            view = _view(record, lock, now)
            print(json.dumps(view) if args.json else _table_row(view))
            sizes.shown += 1
            if args.limit is not None and sizes.shown >= args.limit:
                sys.stdout.flush()
                if index + 1 < len(rows) or last_key is not None:
                    note(f"more identities may follow: pass --next {encode_token(key)}")
                _say_unreadable(unreadable)
                return
        sys.stdout.flush()  # a page at a time: a reader sees rows while the Scan goes on
    _say_unreadable(unreadable)


def _say_unreadable(keys: list[str]) -> None:
    if keys:
        shown = ", ".join(keys[:5]) + (" …" if len(keys) > 5 else "")
        note(f"skipped {len(keys)} unreadable identity item(s): {shown}")


def _count(args: argparse.Namespace, store: DynamoDBStore) -> int:
    found: list[int] = []

    def count() -> None:
        tty = sys.stderr.isatty()
        with progress(None, "counted") if tty else contextlib.nullcontext() as bar:
            advance = bar.advance if bar is not None else None
            if args.status in (None, "disabled"):
                found.append(
                    count_identities(store, prefix=args.prefix, status=args.status, on_page=advance)
                )
                return
            locked = sum(len(rows) for rows, _, _ in _locked_rows(store, args, None))
            if args.status == "locked":
                found.append(locked)
                return
            active = count_identities(store, prefix=args.prefix, status="active", on_page=advance)
            found.append(max(0, active - locked))

    run_checked(count)
    if args.json:
        print(json.dumps({"count": found[0]}))
    else:
        print(found[0])
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.count and (args.limit is not None or args.next is not None):
        raise CommandError("--count counts every match; it takes no --limit or --next")
    start = _start(args)
    store = read_store(args)
    if args.count:
        return _count(args, store)
    sizes = _PageSizes(args.limit)
    if args.status == "locked":
        pages = _locked_rows(store, args, start)
    else:
        pages = _identity_rows(store, args, start, sizes)
    run_checked(lambda: _stream(args, pages, sizes))
    return 0


def read_store(args: argparse.Namespace) -> DynamoDBStore:
    """The table for a command that only reads: through the standard-library client when
    the environment alone configures AWS (:func:`~iotauth.identities.paging.wire_store`:
    no boto3 import, ~0.4 s), else :func:`~iotauth.cli.devices.common.open_store`
    (botocore: profiles, SSO, config files), which also says what is missing."""
    table = args.table or os.environ.get("IOTAUTH_TABLE", "")
    store = wire_store(table, region=args.region, profile=args.profile) if table else None
    return store if store is not None else open_store(args)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "list",
        parents=[common],
        help="list identities a page at a time (never secrets); filter, count, resume",
        description="List identities as the table's Scan returns them (not sorted: pipe to "
        "`sort` for order), a page at a time, printing each page as it arrives. --prefix and "
        "--status still read the whole table (DynamoDB filters after reading), but page: "
        "the first rows come at once and memory stays one page.",
    )
    p.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="stop after N identities and print on stderr the --next token that resumes there",
    )
    p.add_argument(
        "--next",
        metavar="TOKEN",
        help="resume where a --limit listing stopped (the token it printed on stderr)",
    )
    p.add_argument(
        "--prefix",
        default="",
        metavar="P",
        help="only usernames starting with P (a filter: the Scan still reads every item)",
    )
    p.add_argument(
        "--status",
        choices=STATES,
        help="only identities in this state: locked = active with a current lockout "
        "(a disabled identity is 'disabled' whatever its counter)",
    )
    p.add_argument(
        "--count",
        action="store_true",
        help="print only how many identities match (Select=COUNT, paged; progress on a terminal)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON Lines on stdout: one object per identity, streamed (its public view "
        "plus 'locked' and, when locked, 'lockedUntil'); with --count, {\"count\": N}",
    )
    p.set_defaults(func=cmd_list)
