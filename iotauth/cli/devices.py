"""``iotauth devices …`` (manage the credential table) and ``iotauth authorize``.

Standard AWS configuration applies (``AWS_PROFILE``/``--profile``, ``AWS_REGION``/
``--region``, ``AWS_ENDPOINT_URL`` for moto or DynamoDB Local); ``--table`` or
``IOTAUTH_TABLE`` names the table. Every write is validated first and is conditional, so a
refused command changes nothing. Secrets are read from stdin, never from the command line,
and a generated secret is printed once, alone on stdout.

``disable``, ``rotate`` and ``remove`` then close the identity's live connections with IoT's
``DeleteConnection`` (:mod:`iotauth.identities.revocation`; ``disconnect`` does only that), on the
``iot:Data-ATS`` endpoint (``--iot-endpoint``/``IOTAUTH_IOT_ENDPOINT``, else
``AWS_ENDPOINT_URL`` as the local stand-in sets it, else ``iot:DescribeEndpoint``), and say
what they closed on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from iotauth.access.names import InvalidName
from iotauth.access.scoping import shared_roots_from_env
from iotauth.cli import CommandError, refuse_secret_flag
from iotauth.identities.credentials import (
    InvalidPassword,
    check_chosen_password,
    generate_secret,
    hash_chosen_password,
    hash_generated_secret,
    is_generated_shape,
)
from iotauth.identities.records import (
    IdentityRecord,
    InvalidRecord,
    client_id_clashes,
    pairing_problems,
)
from iotauth.identities.revocation import (
    IotDataDisconnector,
    RevocationError,
    RevocationPlan,
    describe,
    plan_for,
    revoke,
)
from iotauth.identities.store import DynamoDBStore, IdentityNotFound, StoreError

__all__ = ["register"]

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- plumbing ------------------------------------------------------------------------------


def _session(args: argparse.Namespace) -> Any:
    import boto3  # noqa: PLC0415 — only the commands that need AWS pay for it
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    try:
        # botocore reads AWS_DEFAULT_REGION only; AWS_REGION is what Lambda and AWS CLI v2 use.
        region = args.region or os.environ.get("AWS_REGION") or None
        return boto3.Session(profile_name=args.profile, region_name=region)
    except BotoCoreError as exc:
        raise CommandError(f"AWS configuration: {exc}") from None


def _store(args: argparse.Namespace) -> DynamoDBStore:
    table = args.table or os.environ.get("IOTAUTH_TABLE", "")
    if not table:
        raise CommandError("no table: pass --table or set IOTAUTH_TABLE")
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    try:
        client = _session(args).client("dynamodb")
    except BotoCoreError as exc:
        raise CommandError(f"AWS configuration: {exc}") from None
    return DynamoDBStore(table, client=client)


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
    session = _session(args)
    from botocore.config import Config  # noqa: PLC0415

    config = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard"})

    def factory(endpoint_url: str | None) -> Any:
        if endpoint_url is None:
            endpoint_url = _data_endpoint_url(args, session)
        return session.client("iot-data", endpoint_url=endpoint_url, config=config)

    return IotDataDisconnector(factory, clean_session=args.clean_session)


def _close_connections(args: argparse.Namespace, name: str, plan: RevocationPlan) -> int:
    """Close the plan's connections; 0, or 1 when DeleteConnection failed (table untouched)."""
    if args.no_disconnect:
        print("live connections left open (--no-disconnect)", file=sys.stderr)
        return 0
    try:
        report = revoke(plan, _disconnector(args))
    except RevocationError as exc:
        print(
            f"iotauth: error: {exc}; run `iotauth devices disconnect {name}` "
            "(with --client-id for a removed identity) to retry",
            file=sys.stderr,
        )
        return 1
    for line in describe(report):
        print(line, file=sys.stderr)
    return 0


def _plan(record: IdentityRecord) -> RevocationPlan:
    return plan_for(record, deployment_disconnect_seconds=_deployment_disconnect())


def _deployment_disconnect() -> int:
    raw = os.environ.get("IOTAUTH_DISCONNECT_AFTER_SECONDS", "").strip()
    return int(raw) if raw.isdigit() else 86400


def _read_stdin_secret(what: str) -> bytes:
    data = sys.stdin.buffer.read()
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise CommandError(f"no {what} on stdin")
    return data


def _verifier_from_stdin(*, generated: bool) -> tuple[str, str]:
    """(kind, verifier) for a chosen password, or (``generated``) a generated secret, on stdin.

    The authorizer tells the kinds apart by shape and exempts generated-shaped secrets from
    the lockout (256 bits cannot be guessed), so a *chosen* value may never take that shape:
    ``--password-stdin`` refuses anything starting with ``iotsk_``, and ``--secret-stdin``
    takes only a secret that iotauth generated (moving a device between tables).
    """
    if generated:
        raw = _read_stdin_secret("generated secret")
        if not is_generated_shape(raw):
            raise CommandError(
                "--secret-stdin takes a secret iotauth generated (iotsk_ + 43 base64url "
                "characters); use --password-stdin for a chosen password"
            )
        return "secret", hash_generated_secret(raw.decode("ascii"))
    raw = _read_stdin_secret("password")
    try:
        return "password", hash_chosen_password(check_chosen_password(raw))
    except InvalidPassword as exc:
        restoring = is_generated_shape(raw)
        hint = " (to restore a generated secret use --secret-stdin)" if restoring else ""
        raise CommandError(f"{exc}{hint}") from None


def _device_secret_from_stdin() -> str:
    raw = _read_stdin_secret("device secret")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("the device secret is not UTF-8 text") from None


def _run(action: Any) -> None:
    """Turn domain and store errors into one-line command errors."""
    try:
        action()
    except (InvalidRecord, InvalidName, InvalidPassword, StoreError) as exc:
        raise CommandError(str(exc)) from None


def _grant_args(parser: argparse.ArgumentParser, *, client_id_help: str) -> None:
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
    parser.add_argument("--disconnect-after", type=int, metavar="SECONDS", help="300-86400")
    parser.add_argument(
        "--refresh-after",
        type=int,
        metavar="SECONDS",
        help="300-86400 (Aliyun devices that sign a timestamp are never refreshed: "
        "their sessions end at --disconnect-after, 3600 by default)",
    )


# -- commands ------------------------------------------------------------------------------


def _judged(
    record: IdentityRecord, others: list[IdentityRecord], roots: tuple[str, ...]
) -> list[str]:
    """The write rules ``devices add`` and ``devices import`` share: ``record`` against the
    deployment's roots and ``others`` (client-id clashes, pairings in either order).
    Raises CommandError when refused; returns what ``--allow-broad`` lets through."""
    record.validate(roots)  # reserved names and rooms hold even with --allow-broad
    clashes = client_id_clashes(record, others)
    if clashes:
        raise CommandError("; ".join(clashes))
    problems = pairing_problems(record, others, roots)
    if problems and not record.allow_broad:
        raise CommandError("; ".join(problems) + " (pass --allow-broad to grant it anyway)")
    return problems


def _add_checked(store: DynamoDBStore, record: IdentityRecord) -> None:
    """Validate ``record`` against the deployment's roots and the existing identities, say
    loudly what ``--allow-broad`` lets through, then write it (registry included)."""
    roots = shared_roots_from_env(os.environ)
    for problem in _judged(record, store.list_identities(), roots):
        print(f"WARNING (--allow-broad): {problem}", file=sys.stderr)
    store.add_identity(record)


def cmd_create_table(args: argparse.Namespace) -> int:
    store = _store(args)
    _run(store.create_table)
    print(f"created table {store.table}", file=sys.stderr)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    store = _store(args)
    secret: str | None = None
    if args.password_stdin or args.secret_stdin:
        kind, verifier = _verifier_from_stdin(generated=args.secret_stdin)
    else:
        secret = generate_secret()
        kind, verifier = "secret", hash_generated_secret(secret)
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
        disconnect_after=args.disconnect_after,
        refresh_after=args.refresh_after,
        created_at=now,
        updated_at=now,
    )
    _run(lambda: _add_checked(store, record))
    print(f"added {kind} identity {args.name!r}", file=sys.stderr)
    if secret is not None:
        print("its secret follows; it is shown only this once:", file=sys.stderr)
        print(secret)
    return 0


def cmd_add_aliyun(args: argparse.Namespace) -> int:
    if not args.device_secret_stdin:
        raise CommandError("pass the device secret on stdin with --device-secret-stdin")
    store = _store(args)
    device_secret = _device_secret_from_stdin()
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
        disconnect_after=args.disconnect_after,
        refresh_after=args.refresh_after,
        allow_no_timestamp=args.allow_no_timestamp,
        any_client_id=args.any_client_id,
        client_id_form=args.client_id_form,
        created_at=now,
        updated_at=now,
    )
    _run(lambda: _add_checked(store, record))
    print(f"added Aliyun identity {record.username!r}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    records: list[IdentityRecord] = []
    _run(lambda: records.extend(store.list_identities()))
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


def _existing(store: DynamoDBStore, name: str) -> IdentityRecord:
    found: list[IdentityRecord | None] = []
    _run(lambda: found.append(store.get_identity(name)))
    if found[0] is None:
        raise CommandError(f"no identity {name!r}")
    return found[0]


def _set_status(args: argparse.Namespace, status: str) -> int:
    store = _store(args)
    record = _existing(store, args.name)
    updated = replace(record, status=status, updated_at=int(time.time()))  # type: ignore[arg-type]
    _run(lambda: store.replace_identity(updated, expected=record))  # no lost update
    if status == "active":
        _run(lambda: store.clear_lockout(args.name))  # enabling also lifts a lockout
    print(f"{args.name!r} is now {status}", file=sys.stderr)
    if status == "disabled":
        return _close_connections(args, args.name, _plan(record))
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_status(args, "disabled")


def cmd_disconnect(args: argparse.Namespace) -> int:
    """Close an identity's live connections now (or the given client ids)."""
    if args.client_id:
        plan = RevocationPlan(tuple(dict.fromkeys(args.client_id)))
    else:
        plan = _plan(_existing(_store(args), args.name))
    return _close_connections(args, args.name, plan)


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def cmd_rotate(args: argparse.Namespace) -> int:
    store = _store(args)
    record = _existing(store, args.name)
    now = int(time.time())
    secret: str | None = None
    if record.kind == "aliyun":
        if not args.device_secret_stdin:
            raise CommandError("an Aliyun identity is rotated with --device-secret-stdin")
        updated = replace(record, device_secret=_device_secret_from_stdin(), updated_at=now)
    elif args.device_secret_stdin:
        raise CommandError("--device-secret-stdin is for Aliyun identities")
    elif args.password_stdin or args.secret_stdin:
        kind, verifier = _verifier_from_stdin(generated=args.secret_stdin)
        updated = replace(record, kind=kind, verifier=verifier, updated_at=now)  # type: ignore[arg-type]
    else:
        secret = generate_secret()
        updated = replace(
            record, kind="secret", verifier=hash_generated_secret(secret), updated_at=now
        )
    _run(lambda: store.replace_identity(updated, expected=record))  # no lost update
    print(f"rotated the credentials of {args.name!r}", file=sys.stderr)
    if secret is not None:
        print("its new secret follows; it is shown only this once:", file=sys.stderr)
        print(secret, flush=True)
    # Sessions opened with the old credentials end now; the device reconnects with the new.
    return _close_connections(args, args.name, _plan(record))


def cmd_remove(args: argparse.Namespace) -> int:
    store = _store(args)
    plan = _plan(_existing(store, args.name))  # before the record is gone
    _run(lambda: store.remove_identity(args.name))
    print(f"removed {args.name!r}", file=sys.stderr)
    return _close_connections(args, args.name, plan)


# -- import: identities from another broker (iotauth.identities.migration) --


def _import_plan(args: argparse.Namespace) -> list[Any]:
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
        )
    except ImportProblem as exc:
        for line in exc.errors[:50]:
            print(f"  {line}", file=sys.stderr)
        raise CommandError(
            f"{args.file}: {len(exc.errors)} problem(s) (listed above); nothing was written"
        ) from None


def cmd_import(args: argparse.Namespace) -> int:
    """Validate every entry, check that no name exists, judge every entry as ``devices add``
    would (against the table and the rest of the export; the dry run too), then
    (``--apply``) write them one by one; on any failure or interruption, remove what this
    run added and say precisely what is left."""
    plan = _import_plan(args)
    store = _store(args)
    current: list[IdentityRecord] = []
    _run(lambda: current.extend(store.list_identities()))
    names = {r.username for r in current}
    existing = [item.record.username for item in plan if item.record.username in names]
    if existing:
        shown = ", ".join(repr(n) for n in existing[:20]) + (" …" if len(existing) > 20 else "")
        raise CommandError(
            f"{len(existing)} identities already exist ({shown}); nothing was written"
        )
    warnings: list[str] = []
    _run(lambda: warnings.extend(_judge_import(store, plan, current)))
    schemes: dict[str, int] = {}
    for item in plan:
        schemes[item.scheme] = schemes.get(item.scheme, 0) + 1
        notes = f"  [{'; '.join(item.notes)}]" if item.notes else ""
        print(f"  {item.record.username:<32} {item.record.kind:<8} {item.scheme}{notes}")
    for warning in warnings:
        print(f"WARNING (--allow-broad): {warning}", file=sys.stderr)
    summary = ", ".join(f"{count} {scheme}" for scheme, count in sorted(schemes.items()))
    if not args.apply:
        print(f"dry run: {len(plan)} identities would be imported ({summary}); nothing was "
              "written — run again with --apply to write them")  # fmt: skip
        return 0
    added: list[str] = []
    with _sigterm_as_exit():
        return _write_all(store, plan, added, summary)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) meanwhile (so the import can roll back), where a
    handler can be set (the main thread)."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_all(store: DynamoDBStore, plan: list[Any], added: list[str], summary: str) -> int:
    for item in plan:
        try:
            store.add_identity(item.record)
        except (StoreError, InvalidRecord) as exc:
            print(f"iotauth: writing {item.record.username!r} failed: {exc}", file=sys.stderr)
            return _roll_back(store, added, len(plan))
        except BaseException:  # Ctrl-C, SIGTERM (_sigterm_as_exit) …: undo, then stop as asked
            print(f"iotauth: import interrupted at {item.record.username!r}", file=sys.stderr)
            name = item.record.username  # it may or may not have been written
            try:
                store.remove_identity(name)
                print(f"iotauth: {name!r} had been written: removed again", file=sys.stderr)
            except IdentityNotFound:
                pass
            except StoreError:
                print(f"iotauth: {name!r} may remain in the table (removing it failed)",
                      file=sys.stderr)  # fmt: skip
            try:
                _roll_back(store, added, len(plan))
            except CommandError as report:
                print(f"iotauth: {report}", file=sys.stderr)
            raise
        added.append(item.record.username)
    print(f"imported {len(added)} identities ({summary})")
    return 0


def _judge_import(
    store: DynamoDBStore, plan: list[Any], current: list[IdentityRecord]
) -> list[str]:
    """Every planned record judged by :func:`_judged` against the table's identities and the
    export's other records, plus the client-id registry; raises CommandError listing every
    refusal (nothing is written), else returns the ``--allow-broad`` warnings."""
    roots = shared_roots_from_env(os.environ)
    everyone = [*current, *(item.record for item in plan)]
    # Only records with grants can pair with a record that has none, and only records
    # sharing a client id can clash with it: the rest cannot change _judged's answer.
    with_grants = [r for r in everyone if r.publish or r.subscribe]
    by_client_id: dict[str, list[IdentityRecord]] = {}
    for r in everyone:
        for client_id in r.allowed_client_ids():
            by_client_id.setdefault(client_id, []).append(r)
    errors: list[str] = []
    warnings: list[str] = []
    for item in plan:
        record = item.record
        if record.publish or record.subscribe:
            others = everyone
        else:
            relevant = {r.username: r for r in with_grants}
            for client_id in record.allowed_client_ids():
                relevant.update((r.username, r) for r in by_client_id.get(client_id, []))
            others = list(relevant.values())
        try:
            warnings += [f"{record.username!r}: {p}" for p in _judged(record, others, roots)]
        except CommandError as exc:
            errors.append(f"{item.where} ({record.username!r}): {exc}")
            continue
        for client_id in record.allowed_client_ids():  # registry items without a record
            owner = store.client_id_owner(client_id)
            if owner is not None and owner != record.username:
                errors.append(
                    f"{item.where} ({record.username!r}): client id {client_id!r} is "
                    f"already registered to identity {owner!r}"
                )
    if errors:
        for line in errors[:50]:
            print(f"  {line}", file=sys.stderr)
        raise CommandError(
            f"{len(errors)} problem(s) (listed above) — refused as `devices add` would refuse "
            "them; nothing was written"
        )
    return warnings


def _roll_back(store: DynamoDBStore, added: list[str], planned: int) -> int:
    left: list[str] = []
    for name in reversed(added):
        try:
            store.remove_identity(name)
        except StoreError:
            left.append(name)
    if not left:
        raise CommandError(
            f"import stopped; the {len(added)} identities it had added were removed again: "
            "nothing was written"
        )
    raise CommandError(
        f"import stopped after {len(added)} of {planned}; removing them failed for "
        f"{len(left)}, which remain in the table: {', '.join(repr(n) for n in sorted(left))}"
    )


# -- authorize: the local handler, as `aws iot test-invoke-authorizer` runs a deployed one --


def _authorize_password(args: argparse.Namespace) -> bytes:
    """From stdin (``--password-stdin``, bytes as given but one trailing newline) or
    ``$IOTAUTH_PASSWORD`` (as is); never from the command line."""
    if args.password_stdin:
        return _read_stdin_secret("password")
    env = os.environ.get("IOTAUTH_PASSWORD")
    if env:
        return env.encode("utf-8")
    raise CommandError("no password: pipe it with --password-stdin or set IOTAUTH_PASSWORD")


def cmd_authorize(args: argparse.Namespace) -> int:
    table = args.table or os.environ.get("IOTAUTH_TABLE", "")
    if not table:
        raise CommandError("no table: pass --table or set IOTAUTH_TABLE")
    os.environ["IOTAUTH_TABLE"] = table
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if args.region:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = args.region
    from iotauth.local.iot_events import ConnectionInfo, authorizer_event  # noqa: PLC0415
    from iotauth.local.lambda_host import (  # noqa: PLC0415
        LambdaContext,
        function_arn,
        load_handler_module,
    )

    context = LambdaContext(
        "iotauth-authorizer-local",
        function_arn(
            "iotauth-authorizer-local", region=region or "us-east-1", account="000000000000"
        ),
    )
    suffix = f"?x-amz-customauthorizer-name={args.authorizer_name}" if args.authorizer_name else ""
    password = _authorize_password(args)
    # The event IoT Core sends for an MQTT-over-TLS CONNECT with these credentials.
    event = authorizer_event(
        ConnectionInfo("tls", server_name="local.iotauth"),
        username=args.username + suffix,
        password=password,
        client_id=args.client_id if args.client_id is not None else args.username,
    )
    # The handler's logs and metrics go to stderr; stdout carries only the response.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            handler = load_handler_module("authorizer", prefix="_iotauth_cli").lambda_handler
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        response = handler(event, context)
    print(json.dumps(response, indent=2))
    return 0 if response.get("isAuthenticated") is True else 1


# -- registration --------------------------------------------------------------------------


def _secret_args(parser: argparse.ArgumentParser) -> Any:
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


def _aws_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--table", help="the credential table (default: $IOTAUTH_TABLE)")
    common.add_argument("--region", help="AWS region (default: standard AWS configuration)")
    common.add_argument("--profile", help="AWS profile (default: standard AWS configuration)")
    return common


def _revocation_options() -> argparse.ArgumentParser:
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


def _register_import(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "import",
        parents=[common],
        help="import identities from Mosquitto, EMQX or a CSV/JSON export (dry run first)",
        description="Import identities from another broker's export so that users keep "
        "their passwords (docs/migrating.md). Every entry is validated and no name may exist "
        "yet; without --apply nothing is written (a dry run with a summary). Imported "
        "passwords are chosen passwords: the lockout applies.",
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
        "--emqx-hash", choices=("sha256", "sha512", "pbkdf2"), help="EMQX password_hash_algorithm"
    )
    p.add_argument("--emqx-salt-position", choices=("prefix", "suffix", "disable"))
    p.add_argument("--emqx-pbkdf2-mac", choices=("sha256", "sha512"))
    p.add_argument("--emqx-iterations", type=int, metavar="N")
    p.set_defaults(func=cmd_import)


def register(subparsers: Any) -> None:
    common = _aws_options()
    devices = subparsers.add_parser(
        "devices", help="manage device identities in the credential table"
    )
    sub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")

    p = sub.add_parser(
        "create-table", parents=[common], help="create the table (same schema as the template)"
    )
    p.set_defaults(func=cmd_create_table)

    p = sub.add_parser(
        "add",
        parents=[common],
        help="add an identity; prints its generated secret once",
        description="Add an identity. Without --password-stdin a secret is generated and "
        "printed once on stdout.",
    )
    p.add_argument("name")
    _secret_args(p)
    _grant_args(p, client_id_help="a client id it may use (repeatable; default: its name)")
    p.set_defaults(func=cmd_add)

    _register_import(sub, common)

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
    _grant_args(
        p,
        client_id_help="an extra client id (before '|') it may sign "
        "(default: productKey&deviceName)",
    )
    p.set_defaults(func=cmd_add_aliyun)

    p = sub.add_parser("list", parents=[common], help="list identities (never secrets)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    revoking = _revocation_options()
    for name, func, text, parents in (
        (
            "disable",
            cmd_disable,
            "refuse every connection of an identity, and close live ones",
            [common, revoking],
        ),
        ("enable", cmd_enable, "enable an identity again (and lift a lockout)", [common]),
        (
            "remove",
            cmd_remove,
            "delete an identity and close its live connections",
            [common, revoking],
        ),
    ):
        p = sub.add_parser(name, parents=parents, help=text)
        p.add_argument("name")
        p.set_defaults(func=func)

    p = sub.add_parser(
        "disconnect",
        parents=[common, revoking],
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
    p.set_defaults(func=cmd_disconnect)

    p = sub.add_parser(
        "rotate",
        parents=[common, revoking],
        help="replace a secret (prints a generated one once) and close live connections",
    )
    p.add_argument("name")
    group = _secret_args(p)
    group.add_argument("--device-secret-stdin", action="store_true", help="Aliyun identities")
    refuse_secret_flag(p, "--device-secret", "pipe it with --device-secret-stdin")
    p.set_defaults(func=cmd_rotate)

    p = subparsers.add_parser(
        "authorize",
        parents=[common],
        help="run the authorizer locally on a CONNECT with these credentials",
        description="Build the IoT Core authorizer event for an MQTT CONNECT and run the "
        "authorizer handler locally against the table; prints the response. "
        "Exit status 0 when authenticated, 1 when not.",
    )
    p.add_argument("--username", required=True)
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (default: $IOTAUTH_PASSWORD)",
    )
    refuse_secret_flag(p, "--password", "use --password-stdin or $IOTAUTH_PASSWORD")
    p.add_argument("--client-id", help="default: the username")
    p.add_argument("--authorizer-name", default="iotauth")
    p.set_defaults(func=cmd_authorize)
