"""``devices list``: every identity in the table, as a table or ``--json``; never a secret.

Each row is the record's :meth:`~iotauth.identities.records.IdentityRecord.public_view`
(everything but the verifier and the device secret), so nothing printed here is a secret; an
``--allow-broad`` record is flagged on its row.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from iotauth.cli.devices.common import open_store, run_checked
from iotauth.identities.records import IdentityRecord

__all__ = ["register"]


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    records: list[IdentityRecord] = []
    run_checked(lambda: records.extend(store.list_identities()))
    views = [r.public_view() for r in records]
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    print(f"{'USERNAME':<32} {'KIND':<8} {'STATUS':<8} CLIENT IDS / GRANTS")
    for view in views:
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
        print(f"{view['username']:<32} {view['kind']:<8} {view['status']:<8} {grants}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("list", parents=[common], help="list identities (never secrets)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
