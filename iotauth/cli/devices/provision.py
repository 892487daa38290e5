"""``devices create-table``, ``devices add`` and ``devices add-aliyun``: new identities.

A new record is written only after :func:`judge_record` accepted it against the deployment's
shared roots and the identities it could clash or pair with (client-id clashes, grants that
pair with another identity's), read by key (``pairing_candidates``: a constant number of
reads whatever the table's size), so a refused command changes nothing; what
``--allow-broad`` lets through is printed as a warning. A generated secret is printed once,
alone on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from iotauth.access.scoping import shared_roots_from_env
from iotauth.cli import CommandError, refuse_secret_flag
from iotauth.cli.devices.common import (
    device_secret_from_stdin,
    grant_args,
    open_store,
    run_checked,
    secret_args,
    verifier_from_stdin,
)
from iotauth.identities.credentials import issue_secret
from iotauth.identities.pairing import client_id_clashes, pairing_problems
from iotauth.identities.reach import Candidates, open_reach_problems
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import DynamoDBStore

__all__ = [
    "judge_record",
    "register_add",
    "register_add_aliyun",
    "register_create_table",
]


def judge_record(
    record: IdentityRecord, others: Sequence[IdentityRecord], roots: tuple[str, ...]
) -> list[str]:
    """The write rules ``devices add``, ``update`` and ``import`` share: ``record`` against
    the deployment's roots and ``others`` (client-id clashes, pairings in either order):
    any superset of the store's ``pairing_candidates`` for it (a
    :class:`~iotauth.identities.reach.Candidates` also brings the pairings it counted without
    naming them). Raises CommandError when refused; returns what ``--allow-broad`` lets
    through."""
    record.validate(roots)  # reserved names and rooms hold even with --allow-broad
    clashes = client_id_clashes(record, others)
    if clashes:
        raise CommandError("; ".join(clashes))
    problems = pairing_problems(record, others, roots) + open_reach_problems(record, roots)
    if isinstance(others, Candidates):
        problems += others.problems_for(record)
    if problems and not record.allow_broad:
        raise CommandError("; ".join(problems) + " (pass --allow-broad to grant it anyway)")
    return problems


def _add_checked(store: DynamoDBStore, record: IdentityRecord) -> None:
    """Validate ``record`` against the deployment's roots and the identities it could
    clash or pair with, say loudly what ``--allow-broad`` lets through, then write it
    (registries included)."""
    roots = shared_roots_from_env(os.environ)
    record.validate(roots)  # before any read: a bad record costs nothing
    for problem in judge_record(record, store.pairing_candidates([record]), roots):
        print(f"WARNING (--allow-broad): {problem}", file=sys.stderr)
    store.add_identity(record)


# -- commands ------------------------------------------------------------------------------


def cmd_create_table(args: argparse.Namespace) -> int:
    store = open_store(args)
    run_checked(store.create_table)
    print(f"created table {store.table}", file=sys.stderr)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    store = open_store(args)
    secret: str | None = None
    if args.password_stdin or args.secret_stdin:
        kind, verifier = verifier_from_stdin(generated=args.secret_stdin)
    else:
        secret, verifier = issue_secret()  # generated here: marked issued (lockout-exempt)
        kind = "secret"
    now = int(time.time())
    record = IdentityRecord(
        username=args.name,
        kind=kind,  # type: ignore[arg-type]
        verifier=verifier,
        client_ids=tuple(args.client_id),
        publish=tuple(args.publish),
        subscribe=tuple(args.subscribe),
        rooms=tuple(args.room),
        allow_broad=args.allow_broad,
        retain=args.retain,
        shared=args.shared,
        disconnect_after=args.disconnect_after,
        refresh_after=args.refresh_after,
        created_at=now,
        updated_at=now,
    )
    run_checked(lambda: _add_checked(store, record))
    print(f"added {kind} identity {args.name!r}", file=sys.stderr)
    if secret is not None:
        print("its secret follows; it is shown only this once:", file=sys.stderr)
        print(secret)
    return 0


def cmd_add_aliyun(args: argparse.Namespace) -> int:
    if not args.device_secret_stdin:
        raise CommandError("pass the device secret on stdin with --device-secret-stdin")
    store = open_store(args)
    device_secret = device_secret_from_stdin()
    now = int(time.time())
    record = IdentityRecord(
        username=f"{args.device_name}&{args.product_key}",
        kind="aliyun",
        device_secret=device_secret,
        client_ids=tuple(args.client_id),
        publish=tuple(args.publish),
        subscribe=tuple(args.subscribe),
        rooms=tuple(args.room),
        allow_broad=args.allow_broad,
        retain=args.retain,
        shared=args.shared,
        disconnect_after=args.disconnect_after,
        refresh_after=args.refresh_after,
        allow_no_timestamp=args.allow_no_timestamp,
        any_client_id=args.any_client_id,
        client_id_form=args.client_id_form,
        created_at=now,
        updated_at=now,
    )
    run_checked(lambda: _add_checked(store, record))
    print(f"added Aliyun identity {record.username!r}", file=sys.stderr)
    return 0


# -- registration (one function per subcommand: `devices --help` lists them in call order) --


def register_create_table(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "create-table", parents=[common], help="create the table (same schema as the template)"
    )
    p.set_defaults(func=cmd_create_table)


def register_add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "add",
        parents=[common],
        help="add an identity; prints its generated secret once",
        description="Add an identity. Without --password-stdin a secret is generated and "
        "printed once on stdout.",
    )
    p.add_argument("name")
    secret_args(p)
    grant_args(p, client_id_help="a client id it may use (repeatable; default: its name)")
    p.set_defaults(func=cmd_add)


def register_add_aliyun(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("add-aliyun", parents=[common], help="add an Alibaba-Cloud-signed device")
    p.add_argument("--product-key", required=True)
    p.add_argument("--device-name", required=True)
    p.add_argument(
        "--device-secret-stdin", action="store_true", help="read the device secret from stdin"
    )
    refuse_secret_flag(p, "--device-secret", "pipe it with --device-secret-stdin")
    p.add_argument(
        "--allow-no-timestamp",
        action="store_true",
        help="accept signatures without a timestamp (replayable; avoid)",
    )
    p.add_argument(
        "--any-client-id",
        action="store_true",
        help="accept any safe client id it signs (its MAC or serial number), not only "
        "productKey&deviceName and --client-id; never web-…, ids with '&', or another "
        "identity's registered client id",
    )
    p.add_argument(
        "--client-id-form",
        metavar="FORM",
        help="the '|…|' parameters its SDK sends: 'aliyun' (default, Alibaba Cloud's "
        "documented form), 'linkkit' (aliyun-iot-linkkit 1.2.13) or a template such as "
        "'securemode={securemode},signmethod={signmethod},_v=x,timestamp={timestamp}'; "
        "only that one spelling is accepted",
    )
    grant_args(
        p,
        client_id_help="an extra client id (before '|') it may sign "
        "(default: productKey&deviceName)",
    )
    p.set_defaults(func=cmd_add_aliyun)
