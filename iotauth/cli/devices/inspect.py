"""``devices show NAME``: one identity, its lock state, its registry, how long its sessions last.

Read by key only, never a Scan: the identity and its ``lockout#`` counter in one consistent
``BatchGetItem`` (the authorizer's own read), then its client ids' ``clientid#`` registry
items, to say whether each points back to it. Printed: status, lock state (locked until a
UTC time, failures in the current window, or none), grants, rooms, whether it may retain
messages and use shared subscriptions (on its own topics), client ids, times (UTC)
and the effective session times with the deployment's defaults
(``IOTAUTH_DISCONNECT_AFTER_SECONDS``/``IOTAUTH_REFRESH_AFTER_SECONDS``, else 86400, as the
template). ``--json`` prints the same as one object. Never a verifier or a device secret:
it starts from :meth:`~iotauth.identities.records.IdentityRecord.public_view`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from typing import Any

from iotauth.cli import CommandError
from iotauth.cli.devices.common import open_store, run_checked
from iotauth.cli.output import add_json_flag, emit
from iotauth.identities.credentials import is_issued_verifier
from iotauth.identities.dynamodb_store import DynamoDBStore
from iotauth.identities.lockout import LockoutState, is_locked
from iotauth.identities.paging import registry_owners
from iotauth.identities.records import IdentityRecord, bounded_session_seconds, clamp_duration
from iotauth.identities.store import Lookup

__all__ = ["deployment_seconds", "lock_view", "register", "utc"]

_DEFAULT_SECONDS = 86400  # the template's DisconnectAfterSeconds / RefreshAfterSeconds


def utc(epoch: int) -> str:
    """``2025-01-31T12:00:00Z``; ``unknown`` for 0 (a record written without a time)."""
    if epoch <= 0:
        return "unknown"
    try:
        moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return "never"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _env_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() else default


def deployment_seconds() -> tuple[int, int]:
    """The deployment's (disconnect, refresh) defaults, as the authorizer reads them."""
    return (
        _env_seconds("IOTAUTH_DISCONNECT_AFTER_SECONDS", _DEFAULT_SECONDS),
        _env_seconds("IOTAUTH_REFRESH_AFTER_SECONDS", _DEFAULT_SECONDS),
    )


def lock_view(state: LockoutState | None, now: int) -> dict[str, Any]:
    """``{"state": "locked"|"failures"|"none", …}`` with its times and counts."""
    if state is not None and state.version < 0:
        return {"state": "locked", "unreadable": True}
    if is_locked(state, now) and state is not None and state.locked_until is not None:
        return {
            "state": "locked",
            "lockedUntil": utc(state.locked_until),
            "failures": state.failures,
        }
    window = _env_seconds("IOTAUTH_LOCKOUT_WINDOW_SECONDS", 900)
    if state is not None and state.failures and now < state.window_start + window:
        return {
            "state": "failures",
            "failures": state.failures,
            "windowStart": utc(state.window_start),
            "threshold": _env_seconds("IOTAUTH_LOCKOUT_THRESHOLD", 5),
        }
    return {"state": "none"}


def _lock_text(lock: dict[str, Any]) -> str:
    if lock["state"] == "locked":
        if lock.get("unreadable"):
            return "LOCKED (its lockout item is unreadable; the authorizer treats that as a lock)"
        return f"LOCKED until {lock['lockedUntil']} ({lock['failures']} failures)"
    if lock["state"] == "failures":
        return (
            f"{lock['failures']} failure(s) in the window since {lock['windowStart']} "
            f"(locks at {lock['threshold']})"
        )
    return "none"


_ORIGIN_TEXT = {
    "issued": "issued by iotauth (never counted toward a lockout)",
    "restored": "restored, imported or from before issued marks (lockout applies; "
    "`devices rotate` issues an exempt one)",
}


def _session_times(record: IdentityRecord) -> dict[str, Any]:
    disconnect_default, refresh_default = deployment_seconds()
    times: dict[str, Any] = {
        "effectiveDisconnectAfterInSeconds": clamp_duration(
            record.disconnect_after or disconnect_default
        ),
        "effectiveRefreshAfterInSeconds": clamp_duration(record.refresh_after or refresh_default),
    }
    # A session revocation can name is closed by disable/remove/update; one it cannot (an
    # Aliyun timestamp, an unlisted inner id) ends within this, never refreshed.
    times["sessionBoundSeconds"] = (
        bounded_session_seconds(record, disconnect_default)
        if record.kind == "aliyun"
        else times["effectiveDisconnectAfterInSeconds"]
    )
    return times


def _shown(
    store: DynamoDBStore, record: IdentityRecord, lockout: LockoutState | None
) -> dict[str, Any]:
    view = record.public_view()
    lock = lock_view(lockout, int(time.time()))
    if record.status == "disabled":
        view["state"] = "disabled"
    else:
        view["state"] = "locked" if lock["state"] == "locked" else "active"
    view["lock"] = lock
    if record.kind == "secret":
        view["secretOrigin"] = "issued" if is_issued_verifier(record.verifier) else "restored"
    view["clientIdRegistry"] = registry_owners(store, record.allowed_client_ids())
    view["createdAt"] = utc(record.created_at)
    view["updatedAt"] = utc(record.updated_at)
    view.update(_session_times(record))
    return view


def _registry_text(name: str, owners: dict[str, str | None]) -> str:
    parts = []
    for client_id, owner in owners.items():
        if owner == name:
            parts.append(f"{client_id} (registered)")
        elif owner is None:
            parts.append(f"{client_id} (NOT REGISTERED)")
        else:
            parts.append(f"{client_id} (REGISTERED TO {owner!r})")
    return ", ".join(parts)


def _seconds_text(value: int, own: int | None) -> str:
    return f"{value} s" + ("" if own is not None else " (deployment default)")


def _print_human(record: IdentityRecord, view: dict[str, Any]) -> None:
    lines: list[tuple[str, str]] = [
        ("username", record.username),
        ("kind", record.kind),
        ("status", record.status),
        ("lock", _lock_text(view["lock"])),
    ]
    if record.kind == "secret":
        lines.append(("secret", _ORIGIN_TEXT[view["secretOrigin"]]))
    lines += [
        ("client ids", _registry_text(record.username, view["clientIdRegistry"])),
        ("publish", ", ".join(record.publish) or "-"),
        ("subscribe", ", ".join(record.subscribe) or "-"),
        ("rooms", ", ".join(record.rooms) or "-"),
        ("allow broad", "YES (grants beyond its own topics)" if record.allow_broad else "no"),
        ("retain", "yes (retained messages on its own topics)" if record.retain else "no"),
        ("shared", "yes (shared subscriptions within its own topics)" if record.shared else "no"),
    ]
    if record.kind == "aliyun":
        lines += [
            ("client-id form", view["clientIdForm"]),
            ("any client id", "yes" if record.any_client_id else "no"),
            ("no timestamp", "accepted (replayable)" if record.allow_no_timestamp else "refused"),
        ]
    lines += [
        (
            "disconnect after",
            _seconds_text(view["effectiveDisconnectAfterInSeconds"], record.disconnect_after),
        ),
        (
            "refresh after",
            _seconds_text(view["effectiveRefreshAfterInSeconds"], record.refresh_after),
        ),
        (
            "session bound",
            f"{view['sessionBoundSeconds']} s"
            + (
                " (a session revocation cannot name: timestamped or unlisted client id)"
                if record.kind == "aliyun"
                else " (each of its sessions can be named: disable/update close them at once)"
            ),
        ),
        ("created", view["createdAt"]),
        ("updated", view["updatedAt"]),
    ]
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        print(f"{label + ':':<{width}}{value}")


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    found: list[Lookup] = []
    run_checked(lambda: found.append(store.lookup(args.name)))
    lookup = found[0]
    if lookup.invalid_record:
        raise CommandError(
            f"the stored item of {args.name!r} is not a valid identity record "
            "(`iotauth devices remove` deletes it)"
        )
    record = lookup.record
    if record is None:
        raise CommandError(f"no identity {args.name!r}")
    views: list[dict[str, Any]] = []
    run_checked(lambda: views.append(_shown(store, record, lookup.lockout)))
    view = views[0]
    emit(args, view, lambda: _print_human(record, view))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "show",
        parents=[common],
        help="one identity: status, lock state, grants, client ids, session times",
        description="Show one identity (never its secret), read by key: status, lock state, "
        "grants, rooms, client ids and whether the registry binds each to it, created and "
        "updated (UTC), and how long its sessions last with the deployment's defaults "
        "(IOTAUTH_DISCONNECT_AFTER_SECONDS, IOTAUTH_REFRESH_AFTER_SECONDS; else 86400). "
        "Exit status 2 when there is no such identity.",
    )
    p.add_argument("name")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)
