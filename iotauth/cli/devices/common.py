"""What every ``iotauth devices …`` command shares: the table, stdin secrets, option builders.

:func:`open_store` resolves the table (``--table``/``IOTAUTH_TABLE``) and the standard AWS
configuration; :func:`run_checked` turns domain and store errors into one-line command
errors, telling the user's (exit 2) from the store's (exit 3). Secrets come only from stdin
(:func:`verifier_from_stdin`, :func:`device_secret_from_stdin`), never from the command
line; on a terminal they are typed twice without echo, since a typo there would lock the
device out. A new command takes its flags from the builders at the bottom so that the same
flag means the same thing everywhere.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from typing import Any

from iotauth.access.names import InvalidName
from iotauth.cli import AwsFailure, CommandError, refuse_secret_flag
from iotauth.identities.credentials import (
    InvalidPassword,
    check_chosen_password,
    hash_chosen_password,
    hash_generated_secret,
    is_generated_shape,
)
from iotauth.identities.records import IdentityRecord, InvalidRecord
from iotauth.identities.store import (
    ClientIdTaken,
    DynamoDBStore,
    IdentityExists,
    IdentityNotFound,
    StoreError,
    TableMissing,
)

__all__ = [
    "aws_options",
    "aws_session",
    "device_secret_from_stdin",
    "existing",
    "grant_args",
    "open_store",
    "read_stdin_secret",
    "read_terminal_secret",
    "revocation_options",
    "run_checked",
    "secret_args",
    "stdin_is_terminal",
    "store_failure",
    "verifier_from_stdin",
]


# -- the table and the AWS session ---------------------------------------------------------


def aws_session(args: argparse.Namespace) -> Any:
    import boto3  # noqa: PLC0415 — only the commands that need AWS pay for it
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    try:
        # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what Lambda and AWS CLI v2 use.
        region = args.region or os.environ.get("AWS_REGION") or None
        return boto3.Session(profile_name=args.profile, region_name=region)
    except BotoCoreError as exc:
        raise AwsFailure(f"AWS configuration: {exc}") from None


def open_store(args: argparse.Namespace) -> DynamoDBStore:
    table = args.table or os.environ.get("IOTAUTH_TABLE", "")
    if not table:
        raise CommandError("no table: pass --table or set IOTAUTH_TABLE")
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    try:
        client = aws_session(args).client("dynamodb")
    except BotoCoreError as exc:
        raise AwsFailure(f"AWS configuration: {exc}") from None
    return DynamoDBStore(table, client=client)


# The store's answers about what the user asked for (exit 2), not failures of the store.
_ANSWERS = (IdentityExists, IdentityNotFound, ClientIdTaken, TableMissing)


def store_failure(exc: StoreError) -> CommandError:
    """The command error for a store error: :class:`CommandError` (exit 2) when it is about
    the input (no such table or identity, a name or client id taken), else
    :class:`AwsFailure` (exit 3: an API error, throttling, a write that lost a race)."""
    answer = isinstance(exc, _ANSWERS) or str(exc).endswith("already exists")
    return CommandError(str(exc)) if answer else AwsFailure(str(exc))


def run_checked(action: Callable[[], object]) -> None:
    """Turn domain and store errors into one-line command errors (see :func:`store_failure`)."""
    try:
        action()
    except (InvalidRecord, InvalidName, InvalidPassword) as exc:
        raise CommandError(str(exc)) from None
    except StoreError as exc:
        raise store_failure(exc) from None


def existing(store: DynamoDBStore, name: str) -> IdentityRecord:
    """The stored record of ``name``; CommandError when there is none."""
    found: list[IdentityRecord | None] = []
    run_checked(lambda: found.append(store.get_identity(name)))
    if found[0] is None:
        raise CommandError(f"no identity {name!r}")
    return found[0]


# -- secrets, from stdin only --------------------------------------------------------------


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # replaced by a test, or closed
        return False


def read_terminal_secret(what: str, *, repeat: bool = True) -> bytes:
    """A secret typed at the terminal without echo (``getpass``), twice when ``repeat``;
    CommandError when empty or when the two differ (then nothing has been written)."""
    label = what[0].upper() + what[1:]
    try:
        first = getpass.getpass(f"{label}: ")
        if not first:
            raise CommandError(f"no {what} typed")
        if repeat and getpass.getpass("Repeat: ") != first:
            raise CommandError(f"the two {what}s differ; nothing was changed")
    except EOFError:
        raise CommandError(f"no {what} typed") from None
    return first.encode("utf-8")


def read_stdin_secret(what: str, *, repeat: bool = False) -> bytes:
    """All of stdin as bytes, less one trailing newline; CommandError when empty.

    When stdin is a terminal the secret is typed instead, without echo, and twice when
    ``repeat`` (a new secret: a typo would be stored). Piped input is read as it is."""
    if stdin_is_terminal():
        return read_terminal_secret(what, repeat=repeat)
    data = sys.stdin.buffer.read()
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise CommandError(f"no {what} on stdin")
    return data


def verifier_from_stdin(*, generated: bool) -> tuple[str, str]:
    """(kind, verifier) for a chosen password, or (``generated``) a generated secret, on stdin.

    The authorizer tells the kinds apart by shape and exempts generated-shaped secrets from
    the lockout (256 bits cannot be guessed), so a *chosen* value may never take that shape:
    ``--password-stdin`` refuses anything starting with ``iotsk_``, and ``--secret-stdin``
    takes only a secret that iotauth generated (moving a device between tables).
    """
    if generated:
        raw = read_stdin_secret("generated secret", repeat=True)
        if not is_generated_shape(raw):
            raise CommandError(
                "--secret-stdin takes a secret iotauth generated (iotsk_ + 43 base64url "
                "characters); use --password-stdin for a chosen password"
            )
        return "secret", hash_generated_secret(raw.decode("ascii"))
    raw = read_stdin_secret("password", repeat=True)
    try:
        return "password", hash_chosen_password(check_chosen_password(raw))
    except InvalidPassword as exc:
        restoring = is_generated_shape(raw)
        hint = " (to restore a generated secret use --secret-stdin)" if restoring else ""
        raise CommandError(f"{exc}{hint}") from None


def device_secret_from_stdin() -> str:
    """An Aliyun device secret from stdin, as UTF-8 text."""
    raw = read_stdin_secret("device secret", repeat=True)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("the device secret is not UTF-8 text") from None


# -- option builders -----------------------------------------------------------------------


def aws_options() -> argparse.ArgumentParser:
    """The parent parser of every command: --table, --region, --profile."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--table", help="the credential table (default: $IOTAUTH_TABLE)")
    common.add_argument("--region", help="AWS region (default: standard AWS configuration)")
    common.add_argument("--profile", help="AWS profile (default: standard AWS configuration)")
    return common


def revocation_options() -> argparse.ArgumentParser:
    """The parent parser of the commands that close live connections."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--iot-endpoint",
        metavar="HOST",
        help="the iot:Data-ATS host for DeleteConnection "
        "(default: $IOTAUTH_IOT_ENDPOINT, else AWS_ENDPOINT_URL, else iot:DescribeEndpoint)",
    )
    options.add_argument(
        "--clean-session",
        action="store_true",
        help="also discard the clients' persistent sessions (queued messages, subscriptions)",
    )
    options.add_argument(
        "--no-disconnect",
        action="store_true",
        help="change the table only; live connections last until their refresh or disconnect",
    )
    return options


def secret_args(parser: argparse.ArgumentParser) -> Any:
    """--password-stdin | --secret-stdin (mutually exclusive; the group is returned so a
    command can add to it), and the refused --password/--secret."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a chosen password from stdin (12-1024 bytes, not starting with iotsk_)",
    )
    group.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read a secret iotauth generated before (iotsk_…) from stdin, e.g. when moving "
        "a device between tables; never a value someone chose",
    )
    # Without these, argparse would take `--password X` as --password-stdin plus a stray X.
    refuse_secret_flag(parser, "--password", "pipe it with --password-stdin")
    refuse_secret_flag(parser, "--secret", "pipe it with --secret-stdin")
    return group


def grant_args(parser: argparse.ArgumentParser, *, client_id_help: str) -> None:
    """What an identity may do: client ids, grants, rooms, --allow-broad, --retain,
    --shared, session limits."""
    parser.add_argument(
        "--client-id", action="append", default=[], metavar="ID", help=client_id_help
    )
    parser.add_argument(
        "--publish", action="append", default=[], metavar="TOPIC", help="extra publish grant"
    )
    parser.add_argument(
        "--subscribe",
        action="append",
        default=[],
        metavar="FILTER",
        help="extra subscribe (and receive) grant, e.g. a broadcast topic",
    )
    parser.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="TOPIC",
        help="a shared room under a shared root (e.g. chat/lobby): publish only to "
        "<room>/<its client id>, subscribe to <room>/+ (repeatable)",
    )
    parser.add_argument(
        "--allow-broad",
        action="store_true",
        help="DANGER: accept grants that can reach beyond its own topics (a wildcard first "
        "level, $aws/…, a shared root, another identity's namespace); the record keeps it "
        "and `devices list` shows it",
    )
    parser.add_argument(
        "--retain",
        action="store_true",
        help="allow retained messages (iot:RetainPublish) on its own topics only",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="allow shared subscriptions ($share/<group>/<filter>) to filters within its "
        "own topics only",
    )
    parser.add_argument("--disconnect-after", type=int, metavar="SECONDS", help="300-86400")
    parser.add_argument(
        "--refresh-after",
        type=int,
        metavar="SECONDS",
        help="300-86400 (Aliyun devices that sign a timestamp are never refreshed: "
        "their sessions end at --disconnect-after, 3600 by default)",
    )
