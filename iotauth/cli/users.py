"""``iotauth users disable|enable|show|list``: revoke a signed-in browser user.

Contract: ``disable <sub>`` stops a browser user (a JWT ``sub``, no identity record) in this
order: writes ``webuser#<web username>`` (the signer issues no new URL from the next
request), adds the user's client id to the client role's deny list (URLs issued before
cannot open a session: :mod:`iotauth.identities.web_users`), then closes its live sessions
twice (:func:`iotauth.identities.revocation.revoke`). ``enable`` deletes the record and the
deny entry; ``show`` and ``list`` print the state (``--json``).

The one reason: the record is written first, so new URLs are stopped whatever follows (a
full or unwritable deny list exits 3 after closing the sessions all the same).

Design: docs/design/web-revocation.md
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from typing import Any

from iotauth.access.names import InvalidName
from iotauth.cli import EXIT_AWS, EXIT_OK, AwsFailure, CommandError
from iotauth.cli.output import add_json_flag, emit, note
from iotauth.identities.web_users import (
    DENY_LIST_KEY,
    DENY_POLICY_NAME,
    RETAIN_SECONDS,
    WEBUSER_PREFIX,
    DenyList,
    DenyListFull,
    DisabledUser,
    webuser_key,
)

__all__ = ["register"]

_ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})")
_SYNC_ATTEMPTS = 8


# -- AWS -------------------------------------------------------------------------------------


def _session(args: argparse.Namespace) -> Any:
    from iotauth.cli.devices.common import aws_session  # noqa: PLC0415 - boto3 behind it

    return aws_session(args)


def _table(args: argparse.Namespace) -> str:
    table: str = args.table or os.environ.get("IOTAUTH_TABLE", "")
    if not table:
        raise CommandError("no table: pass --table or set IOTAUTH_TABLE")
    return table


def _role(args: argparse.Namespace) -> tuple[str, str, str]:
    """(partition, account, role name) of the client role."""
    arn = getattr(args, "client_role", None) or os.environ.get("IOTAUTH_CLIENT_ROLE_ARN", "")
    if not arn:
        raise CommandError(
            "no client role: pass --client-role or set IOTAUTH_CLIENT_ROLE_ARN "
            "(the stack output IotClientRoleArn)"
        )
    found = _ROLE_ARN.fullmatch(arn.strip())
    if found is None:
        raise CommandError(f"--client-role must be an IAM role ARN, not {arn!r}")
    return found.group(1), found.group(2), found.group(3)


def _aws(what: str, call: Callable[[], Any]) -> Any:
    """``call()``, a botocore error becoming one safe line (exit 3)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        return call()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise AwsFailure(f"{what} failed: {code}") from None
    except BotoCoreError as exc:
        raise AwsFailure(f"{what} failed: {type(exc).__name__}") from None


def _subject_user(subject: str) -> DisabledUser:
    try:
        return DisabledUser.for_subject(subject, int(time.time()))
    except InvalidName as exc:
        raise CommandError(str(exc)) from None


def _caller(session: Any) -> str:
    """The operator's principal ARN, for the record ("" when STS will not say)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        return str(session.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError, KeyError):
        return ""


class _DenyListSync:
    """The deny list item (versioned, read consistently) and the role policy it is written to."""

    def __init__(self, session: Any, table: str, role: tuple[str, str, str]) -> None:
        self._db = session.client("dynamodb")
        self._iam = session.client("iam")
        self._table = table
        self.partition, self.account, self.role_name = role

    def read(self) -> DenyList:
        answer = _aws(
            "dynamodb:GetItem",
            lambda: self._db.get_item(
                TableName=self._table, Key={"pk": {"S": DENY_LIST_KEY}}, ConsistentRead=True
            ),
        )
        return DenyList.from_item(answer.get("Item"))

    def _write(self, current: DenyList, new: DenyList) -> bool:
        """Store ``new`` as the version after ``current``'s; False when someone else did."""
        if current.version:
            condition = {"ConditionExpression": "version = :v"}
            values = {"ExpressionAttributeValues": {":v": {"N": str(current.version)}}}
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
            values = {}
        try:
            _aws(
                "dynamodb:PutItem",
                lambda: self._db.put_item(
                    TableName=self._table,
                    Item=new.to_item(current.version + 1),
                    **condition,
                    **values,
                ),
            )
        except AwsFailure as exc:
            if "ConditionalCheckFailed" in str(exc):
                return False
            raise
        return True

    def _apply(self, deny: DenyList) -> None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        text = deny.policy(self.partition, self.account)
        if text is not None:
            _aws(
                "iam:PutRolePolicy",
                lambda: self._iam.put_role_policy(
                    RoleName=self.role_name, PolicyName=DENY_POLICY_NAME, PolicyDocument=text
                ),
            )
            return
        try:
            self._iam.delete_role_policy(RoleName=self.role_name, PolicyName=DENY_POLICY_NAME)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise AwsFailure(
                    f"iam:DeleteRolePolicy failed: {exc.response['Error'].get('Code')}"
                ) from None

    def change(self, edit: Callable[[DenyList], DenyList]) -> DenyList:
        """Apply ``edit`` (then compaction) to the list, store it, write the role policy, and
        make sure the role holds the latest version even if another operator wrote between
        (whoever writes the policy last checks the version afterwards). Raises
        :class:`DenyListFull` before anything is written when it would not fit."""
        for _ in range(_SYNC_ATTEMPTS):
            current = self.read()
            new = edit(current).compacted(time.time())
            new.policy(self.partition, self.account)  # DenyListFull: nothing written
            if self._write(current, new):
                break
        else:
            raise AwsFailure("the deny list kept changing under this command; run it again")
        applied = current.version + 1
        self._apply(new)
        for _ in range(_SYNC_ATTEMPTS):
            latest = self.read()
            if latest.version == applied:
                return latest
            self._apply(latest)
            applied = latest.version
        raise AwsFailure("the deny list kept changing under this command; run it again")


# -- commands ----------------------------------------------------------------------------


def _get_record(session: Any, table: str, user: DisabledUser) -> DisabledUser | None:
    answer = _aws(
        "dynamodb:GetItem",
        lambda: session.client("dynamodb").get_item(
            TableName=table, Key={"pk": {"S": webuser_key(user.username)}}, ConsistentRead=True
        ),
    )
    item = answer.get("Item")
    return DisabledUser.from_item(item) if item else None


def _disconnector(args: argparse.Namespace) -> Any:
    """The same ``DeleteConnection`` port as ``devices disable`` (tests replace it)."""
    from iotauth.cli.devices import lifecycle  # noqa: PLC0415

    return lifecycle._disconnector(args)  # one port for both command groups


def _close(args: argparse.Namespace, user: DisabledUser, result: dict[str, Any]) -> int:
    from iotauth.identities.revocation import (  # noqa: PLC0415
        SETTLE_SECONDS,
        RevocationError,
        RevocationPlan,
        describe,
        revoke,
    )

    result.update(closed=[], notConnected=[])
    if args.no_disconnect:
        result["disconnect"] = "skipped"
        note("live sessions left open (--no-disconnect)")
        return EXIT_OK
    settle = SETTLE_SECONDS if args.settle_seconds is None else float(args.settle_seconds)
    result["settleSeconds"] = settle
    if settle:
        note(f"closing live sessions now and again in {settle:g} s (CONNECTs in flight)")
    try:
        report = revoke(RevocationPlan(user.client_ids), _disconnector(args), settle_seconds=settle)
    except (RevocationError, CommandError) as exc:
        result.update(disconnect="failed", error=str(exc))
        note(f"iotauth: error: {exc}; run `iotauth users disable {user.subject}` again")
        return EXIT_AWS
    result.update(disconnect="done", closed=report.closed, notConnected=report.not_connected)
    for line in describe(report):
        note(line)
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    table, role = _table(args), _role(args)
    session = _session(args)
    user = _subject_user(args.subject)
    user = DisabledUser(user.username, user.subject, user.since, _caller(session), args.reason)
    db = session.client("dynamodb")
    _aws("dynamodb:PutItem", lambda: db.put_item(TableName=table, Item=user.to_item()))
    note(f"{user.username!r} ({user.subject!r}) is now disabled: the signer issues it no URL")
    result: dict[str, Any] = user.as_dict()
    code = EXIT_OK
    sync = _DenyListSync(session, table, role)
    try:
        deny = sync.change(lambda d: d.with_entry(user.username, user.since))
        result.update(deny="applied", denyListSize=len(deny.entries))
        note(
            f"denied iot:Connect to {user.username} on the client role ({len(deny.entries)} "
            f"in the deny list); URLs issued before cannot open a session once IAM has it"
        )
    except (DenyListFull, AwsFailure) as exc:
        result.update(deny="full" if isinstance(exc, DenyListFull) else "failed", error=str(exc))
        note(
            f"iotauth: error: {exc}; URLs issued before stay usable until they expire "
            "(at most 15 min; a session they open is closed below only once)"
        )
        code = EXIT_AWS
    closed = _close(args, user, result)
    emit(args, result)
    return code if code != EXIT_OK else closed


def cmd_enable(args: argparse.Namespace) -> int:
    table, role = _table(args), _role(args)
    session = _session(args)
    user = _subject_user(args.subject)
    db = session.client("dynamodb")
    key = {"pk": {"S": webuser_key(user.username)}}
    _aws("dynamodb:DeleteItem", lambda: db.delete_item(TableName=table, Key=key))
    deny = _DenyListSync(session, table, role).change(lambda d: d.without(user.client_ids))
    note(f"{user.username!r} ({user.subject!r}) is enabled again")
    note("on AWS its next URL may be refused for as long as IAM takes to drop the deny")
    result = {
        "subject": user.subject,
        "username": user.username,
        "status": "active",
        "deny": "removed",
        "denyListSize": len(deny.entries),
    }
    emit(args, result)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    table = _table(args)
    session = _session(args)
    user = _subject_user(args.subject)
    record = _get_record(session, table, user)
    deny = _DenyListSync(session, table, ("aws", "0" * 12, "-")).read()
    if record is None:
        result: dict[str, Any] = {
            "subject": user.subject,
            "username": user.username,
            "clientIds": list(user.client_ids),
            "status": "active",
        }
    else:
        result = record.as_dict()
    result["inDenyList"] = user.username in deny.entries

    def human() -> None:
        for name in ("subject", "username", "status", "since", "by", "reason", "inDenyList"):
            if result.get(name) not in (None, ""):
                print(f"{name}: {result[name]}")

    emit(args, result, human)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    table = _table(args)
    session = _session(args)
    db = session.client("dynamodb")
    users: list[DisabledUser] = []
    start: dict[str, Any] | None = None
    while True:
        extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}

        def scan(extra: dict[str, Any] = extra) -> Any:
            return db.scan(
                TableName=table,
                FilterExpression="begins_with(pk, :p)",
                ExpressionAttributeValues={":p": {"S": WEBUSER_PREFIX}},
                **extra,
            )

        page = _aws("dynamodb:Scan", scan)
        for item in page.get("Items", []):
            try:
                users.append(DisabledUser.from_item(item))
            except ValueError:
                continue
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    deny = _DenyListSync(session, table, ("aws", "0" * 12, "-")).read()
    users.sort(key=lambda u: (u.since, u.username))
    result = {
        "users": [{**u.as_dict(), "inDenyList": u.username in deny.entries} for u in users],
        "denyList": dict(sorted(deny.entries.items())),
        "denyListRetainSeconds": RETAIN_SECONDS,
    }

    def human() -> None:
        if not users:
            print("no disabled browser users")
        for u in users:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(u.since))
            print(f"{u.username}\t{u.subject}\tdisabled since {since}\t{u.by}")

    emit(args, result, human)
    return EXIT_OK


# -- registration ------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    from iotauth.cli.devices.common import aws_options, revocation_options  # noqa: PLC0415

    group = subparsers.add_parser(
        "users",
        help="revoke signed-in browser users (by JWT sub): no URL, no session",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = group.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    common = aws_options()
    role = argparse.ArgumentParser(add_help=False)
    role.add_argument(
        "--client-role",
        metavar="ARN",
        help="the IoT client role (default: $IOTAUTH_CLIENT_ROLE_ARN; output IotClientRoleArn)",
    )
    settle = argparse.ArgumentParser(add_help=False)
    settle.add_argument(
        "--settle-seconds",
        type=float,
        default=None,
        metavar="S",
        help="close live sessions now and again S seconds later (default 6; 0: once)",
    )

    p = sub.add_parser(
        "disable",
        parents=[common, role, revocation_options(), settle],
        help="stop a browser user now: no new URL, URLs issued before denied, sessions closed",
    )
    p.add_argument("subject", help="the user's JWT sub claim")
    p.add_argument("--reason", default="", help="a note kept with the record")
    add_json_flag(p)
    p.set_defaults(func=cmd_disable)

    p = sub.add_parser("enable", parents=[common, role], help="let a disabled browser user in")
    p.add_argument("subject")
    add_json_flag(p)
    p.set_defaults(func=cmd_enable)

    p = sub.add_parser("show", parents=[common], help="a browser user's status")
    p.add_argument("subject")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", parents=[common], help="the disabled browser users")
    add_json_flag(p)
    p.set_defaults(func=cmd_list)
