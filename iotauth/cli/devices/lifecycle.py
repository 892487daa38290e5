"""``devices disable|enable|rotate|remove|disconnect``: change an identity, close its sessions.

A change in the table applies from the next CONNECT, but a live MQTT session lasts until its
refresh or disconnect; so ``disable``, ``rotate`` and ``remove`` then close the identity's
live connections with IoT's ``DeleteConnection`` (:mod:`iotauth.identities.revocation`;
``disconnect`` does only that) on the ``iot:Data-ATS`` endpoint (``--iot-endpoint``/
``IOTAUTH_IOT_ENDPOINT``, else ``AWS_ENDPOINT_URL`` as the local stand-in sets it, else
``iot:DescribeEndpoint``), and say what they closed on stderr. They close twice
(:func:`iotauth.identities.revocation.revoke`): at once, and again ``--settle-seconds``
(default :data:`~iotauth.identities.revocation.SETTLE_SECONDS`, 6 s) later, when every
CONNECT that was in flight during the change has been answered: a CONNECT whose authorizer
read the record before the write and answered after the first pass would otherwise keep its
session. The wait is shown on stderr (a countdown on a terminal, one line elsewhere), and
what was closed is reported only after the second pass. ``disable``, ``enable`` and
``rotate`` write only if the record is still the one they read (no lost update). With
``--json`` each prints what it did on stdout (``username``, ``status``, ``closed``,
``passes``, …); a failed DeleteConnection exits 3 and keeps the table change, which it
reports all the same.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import ExitStack
from typing import Any

from iotauth.cli import EXIT_AWS, EXIT_OK, CommandError, refuse_secret_flag
from iotauth.cli.devices.common import (
    aws_session,
    device_secret_from_stdin,
    existing,
    open_store,
    revocation_options,
    run_checked,
    secret_args,
    verifier_from_stdin,
)
from iotauth.cli.output import Progress, add_json_flag, emit, note, progress, wants_json
from iotauth.identities.credentials import issue_secret
from iotauth.identities.records import IdentityRecord
from iotauth.identities.revocation import (
    SETTLE_SECONDS,
    IotDataDisconnector,
    RevocationError,
    RevocationPlan,
    RevocationReport,
    describe,
    plan_for,
    revoke,
)

__all__ = ["register", "settle_options"]


# -- closing live connections --------------------------------------------------------------


def _data_endpoint_url(args: argparse.Namespace, session: Any) -> str | None:
    """``https://<iot:Data-ATS host>``, or None when boto3's endpoint override applies."""
    host = getattr(args, "iot_endpoint", None) or os.environ.get("IOTAUTH_IOT_ENDPOINT", "")
    if host:
        return host if host.startswith(("https://", "http://")) else f"https://{host}"
    if os.environ.get("AWS_ENDPOINT_URL_IOT_DATA") or os.environ.get("AWS_ENDPOINT_URL"):
        return None
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        found = session.client("iot").describe_endpoint(endpointType="iot:Data-ATS")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise RevocationError(f"iot:DescribeEndpoint failed: {code}") from None
    except BotoCoreError as exc:
        raise RevocationError(f"iot:DescribeEndpoint failed: {exc}") from None
    return f"https://{found['endpointAddress']}"


def _disconnector(args: argparse.Namespace) -> IotDataDisconnector:
    session = aws_session(args)
    from botocore.config import Config  # noqa: PLC0415

    config = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard"})

    def factory(endpoint_url: str | None) -> Any:
        if endpoint_url is None:
            endpoint_url = _data_endpoint_url(args, session)
        return session.client("iot-data", endpoint_url=endpoint_url, config=config)

    return IotDataDisconnector(factory, clean_session=args.clean_session)


class _Countdown:
    """``on_wait`` for :func:`revoke`: a countdown bar on a terminal (stderr), else one line."""

    def __init__(self, settle_seconds: float) -> None:
        self._total = max(1, math.ceil(settle_seconds))
        self._settle = settle_seconds
        self._stack = ExitStack()
        self._bar: Progress | None = None
        self._started = False

    def __call__(self, left: float) -> None:
        if not self._started:
            self._started = True
            if _stderr_is_terminal():
                label = "waiting for CONNECTs in flight, seconds"
                self._bar = self._stack.enter_context(progress(self._total, label))
            else:
                note(
                    f"waiting {self._settle:g} s for CONNECTs in flight during the change to "
                    "be answered (IoT gives an authorizer at most 5 s), then closing again"
                )
        if self._bar is not None:
            elapsed = self._total - math.ceil(left)
            if elapsed > self._bar.done:
                self._bar.advance(elapsed - self._bar.done)

    def close(self) -> None:
        self._stack.close()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _settle_seconds(args: argparse.Namespace) -> float:
    """``--settle-seconds`` (commands that do not have it, e.g. ``update``: the default)."""
    chosen = getattr(args, "settle_seconds", None)
    if chosen is None:
        return SETTLE_SECONDS
    if chosen < SETTLE_SECONDS:
        risk = "one pass only" if chosen == 0 else f"--settle-seconds {chosen:g}"
        note(
            f"warning: {risk}, below {SETTLE_SECONDS:g} s (IoT's 5 s authorizer limit and a "
            "margin): a CONNECT in flight during the change may keep its session"
        )
    return float(chosen)


def _pass_json(report: RevocationReport) -> list[dict[str, list[str]]]:
    return [{"closed": p.closed, "notConnected": p.not_connected} for p in report.passes]


def _close_connections(
    args: argparse.Namespace, name: str, plan: RevocationPlan, result: dict[str, Any]
) -> int:
    """Close the plan's connections in two passes (:func:`revoke`; call it after the write)
    and record how in ``result`` (``disconnect``: done, skipped or failed; ``closed``,
    ``notConnected``, ``passes``, ``settleSeconds``); 0, or 3 when that failed (the table
    change stays)."""
    result.update(closed=[], notConnected=[])
    if args.no_disconnect:
        result["disconnect"] = "skipped"
        note("live connections left open (--no-disconnect)")
        return EXIT_OK
    settle = _settle_seconds(args)
    result["settleSeconds"] = settle
    countdown = _Countdown(settle)
    try:
        report = revoke(plan, _disconnector(args), settle_seconds=settle, on_wait=countdown)
    except (RevocationError, CommandError) as exc:
        partial = getattr(exc, "report", None)
        if partial is not None:
            result.update(closed=partial.closed, passes=_pass_json(partial))
        result.update(disconnect="failed", error=str(exc))
        note(
            f"iotauth: error: {exc}; run `iotauth devices disconnect {name}` "
            "(with --client-id for a removed identity) to retry"
        )
        return EXIT_AWS
    except KeyboardInterrupt:
        note(
            "interrupted before the last pass: a CONNECT in flight during the change may keep "
            f"its session; run `iotauth devices disconnect {name}` to close it"
        )
        raise
    finally:
        countdown.close()
    result.update(
        disconnect="done",
        closed=report.closed,
        notConnected=report.not_connected,
        passes=_pass_json(report),
    )
    if plan.bounded_seconds:
        result["otherSessionsEndWithinSeconds"] = plan.bounded_seconds
    for line in describe(report):
        note(line)
    return EXIT_OK


def _finish(args: argparse.Namespace, code: int, result: dict[str, Any]) -> int:
    """Print ``result`` with ``--json`` (the text went to stderr already); ``code``."""
    emit(args, result)
    return code


def _plan(record: IdentityRecord) -> RevocationPlan:
    return plan_for(record, deployment_disconnect_seconds=_deployment_disconnect())


def _deployment_disconnect() -> int:
    raw = os.environ.get("IOTAUTH_DISCONNECT_AFTER_SECONDS", "").strip()
    return int(raw) if raw.isdigit() else 86400


# -- commands ------------------------------------------------------------------------------


def _set_status(args: argparse.Namespace, status: str) -> int:
    store = open_store(args)
    record = existing(store, args.name)
    updated = record.replace(status=status, updated_at=int(time.time()))
    run_checked(lambda: store.replace_identity(updated, expected=record))  # no lost update
    if status == "active":
        run_checked(lambda: store.clear_lockout(args.name))  # enabling also lifts a lockout
    note(f"{args.name!r} is now {status}")
    result: dict[str, Any] = {"username": args.name, "status": status}
    code = EXIT_OK
    if status == "disabled":
        code = _close_connections(args, args.name, _plan(record), result)
    return _finish(args, code, result)


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_status(args, "disabled")


def cmd_disconnect(args: argparse.Namespace) -> int:
    """Close an identity's live connections now (or the given client ids)."""
    if args.client_id:
        plan = RevocationPlan(tuple(dict.fromkeys(args.client_id)))
    else:
        plan = _plan(existing(open_store(args), args.name))
    result: dict[str, Any] = {"username": args.name}
    return _finish(args, _close_connections(args, args.name, plan, result), result)


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def cmd_rotate(args: argparse.Namespace) -> int:
    store = open_store(args)
    record = existing(store, args.name)
    now = int(time.time())
    secret: str | None = None
    if record.kind == "aliyun":
        if not args.device_secret_stdin:
            raise CommandError("an Aliyun identity is rotated with --device-secret-stdin")
        updated = record.replace(device_secret=device_secret_from_stdin(), updated_at=now)
    elif args.device_secret_stdin:
        raise CommandError("--device-secret-stdin is for Aliyun identities")
    elif args.password_stdin or args.secret_stdin:
        kind, verifier = verifier_from_stdin(generated=args.secret_stdin)
        updated = record.replace(kind=kind, verifier=verifier, updated_at=now)
    else:
        secret, verifier = issue_secret()  # generated here: marked issued (lockout-exempt)
        updated = record.replace(kind="secret", verifier=verifier, updated_at=now)
    run_checked(lambda: store.replace_identity(updated, expected=record))  # no lost update
    note(f"rotated the credentials of {args.name!r}")
    result: dict[str, Any] = {"username": args.name, "rotated": updated.kind}
    if secret is not None:
        if wants_json(args):
            # Only on stdout, in the document printed below, which is printed in any case.
            note("its new secret is in the JSON on stdout; it is shown only this once")
            result["secret"] = secret
        else:
            note("its new secret follows; it is shown only this once:")
            print(secret, flush=True)  # before anything else can fail
    # Sessions opened with the old credentials end now; the device reconnects with the new.
    return _finish(args, _close_connections(args, args.name, _plan(record), result), result)


def cmd_remove(args: argparse.Namespace) -> int:
    store = open_store(args)
    plan = _plan(existing(store, args.name))  # before the record is gone
    run_checked(lambda: store.remove_identity(args.name))
    note(f"removed {args.name!r}")
    result: dict[str, Any] = {"username": args.name, "removed": True}
    return _finish(args, _close_connections(args, args.name, plan, result), result)


# -- registration --------------------------------------------------------------------------


def _settle_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= _MAX_SETTLE_SECONDS):
        raise argparse.ArgumentTypeError(f"expected 0-{_MAX_SETTLE_SECONDS:g} seconds")
    return value


_MAX_SETTLE_SECONDS = 600.0


def settle_options() -> argparse.ArgumentParser:
    """``--settle-seconds``: the parent parser of the commands that close live connections."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--settle-seconds",
        type=_settle_value,
        default=None,
        metavar="S",
        help=f"close live connections now and again S seconds later (default "
        f"{SETTLE_SECONDS:g}: IoT's 5 s authorizer limit and a margin), when every CONNECT in "
        "flight during the change has been answered; less risks that one keeps its session "
        "(warned), 0 closes once",
    )
    return options


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """disable, enable, remove, disconnect, rotate (in that order in ``devices --help``)."""
    revoking = revocation_options()
    settling = settle_options()
    for name, func, text, parents in (
        (
            "disable",
            cmd_disable,
            "refuse every connection of an identity, and close live ones",
            [common, revoking, settling],
        ),
        ("enable", cmd_enable, "enable an identity again (and lift a lockout)", [common]),
        (
            "remove",
            cmd_remove,
            "delete an identity and close its live connections",
            [common, revoking, settling],
        ),
    ):
        p = sub.add_parser(name, parents=parents, help=text)
        p.add_argument("name")
        add_json_flag(p)
        p.set_defaults(func=func)

    p = sub.add_parser(
        "disconnect",
        parents=[common, revoking, settling],
        help="close an identity's live connections now (IoT DeleteConnection)",
    )
    p.add_argument("name")
    p.add_argument(
        "--client-id",
        action="append",
        default=[],
        metavar="ID",
        help="close these client ids instead of the record's (e.g. of a removed identity)",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_disconnect)

    p = sub.add_parser(
        "rotate",
        parents=[common, revoking, settling],
        help="replace a secret (prints a generated one once) and close live connections",
    )
    p.add_argument("name")
    group = secret_args(p)
    group.add_argument("--device-secret-stdin", action="store_true", help="Aliyun identities")
    refuse_secret_flag(p, "--device-secret", "pipe it with --device-secret-stdin")
    add_json_flag(p)
    p.set_defaults(func=cmd_rotate)
