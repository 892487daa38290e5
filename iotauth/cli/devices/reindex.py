"""``devices reindex``: build the registries a table made before issue 14 lacks.

One paged Scan (with progress) writes the ``reach#`` items of every cross grant, registers
the client ids of records written before the client-id registry, and writes the
``meta#schema`` marker that ``add``, ``update`` and ``import`` require; idempotent (run it
again to repair). ``--json`` prints what it did. Run it once, while nothing else writes
identities. Design: docs/design/identity-store.md
"""

from __future__ import annotations

import argparse
from typing import Any

from iotauth.cli.devices.common import open_store, run_checked
from iotauth.cli.output import add_json_flag, emit, note, progress

__all__ = ["register"]


def cmd_reindex(args: argparse.Namespace) -> int:
    store = open_store(args)
    report: dict[str, Any] = {}
    total: list[int] = []
    run_checked(lambda: total.append(store.approximate_item_count()))
    with progress(total[0] or None, "reindexing (items scanned)", every=10_000) as bar:
        run_checked(lambda: report.update(store.reindex(bar.advance)))
    for conflict in report["clientIdConflicts"]:
        note(f"WARNING: {conflict} (left as it is: each write checks the registry)")

    def human() -> None:
        note(
            f"reindexed table {report['table']}: {report['identities']} identities, "
            f"{report['reachItems']} reach items, {report['clientIdsRegistered']} client ids "
            f"registered, {report['staleReachItemsRemoved']} stale reach items removed"
            + (
                f", {report['unreadable']} unreadable identity items"
                if report["unreadable"]
                else ""
            )
        )

    emit(args, report, human)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "reindex",
        parents=[common],
        help="build the registries of a table made before this version (once; idempotent)",
        description="Scan the table once and write the reach registry, the missing client-id "
        "registry items and the schema marker that add, update and import require. Run it "
        "once on a table created by an older iotauth, while nothing else writes identities.",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_reindex)
