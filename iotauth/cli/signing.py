"""``iotauth sign-url`` and ``iotauth aliyun-credentials``: connect parameters for scripts.

Only the standard-library signers are imported here; botocore is loaded only when
``sign-url`` has to take credentials from the default chain beyond the standard variables.
Secrets are never taken from the command line (shell history, ``ps``): the flags that
used to take them are refused with a pointer to stdin or the environment. Both print only
on stdout (``sign-url --json``: ``{"url": …}``; ``aliyun-credentials`` always prints JSON).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import datetime
from typing import Any

from iotauth.cli import CommandError, refuse_secret_flag
from iotauth.cli.output import add_json_flag, emit, print_json
from iotauth.wire.aliyun import SIGN_METHODS, mqtt_credentials
from iotauth.wire.sigv4 import presign_mqtt_url, presign_mqtt_url_for_session

__all__ = ["register"]


def register(subparsers: Any) -> None:
    sign = subparsers.add_parser(
        "sign-url",
        help="print a SigV4-presigned wss:// URL for AWS IoT Core",
        description=(
            "Print a presigned MQTT-over-WebSocket URL for AWS IoT Core (alone on stdout). "
            "Credentials: --credentials-stdin, else the default AWS credential chain (the "
            "standard AWS_* variables first, read without botocore; then profiles, SSO, "
            "instance roles). "
            "IoT accepts the URL for about 15 minutes after its time."
        ),
    )
    sign.add_argument("--endpoint", required=True, help="IoT data endpoint host (…-ats.iot…)")
    sign.add_argument("--region", required=True, help="AWS region of the endpoint")
    sign.add_argument(
        "--credentials-stdin",
        action="store_true",
        help="read credentials as JSON from stdin: AccessKeyId, SecretAccessKey and optional "
        "SessionToken, as `aws sts assume-role --query Credentials` or "
        "`aws configure export-credentials` print them",
    )
    instead = (
        "use the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN "
        "variables, a profile, or --credentials-stdin"
    )
    for flag in ("--access-key", "--secret-key", "--session-token"):
        refuse_secret_flag(sign, flag, instead)
    sign.add_argument("--at", metavar="ISO8601", help="signing time with a timezone (default: now)")
    sign.add_argument("--expires", type=int, metavar="N", help="add a signed X-Amz-Expires=N")
    add_json_flag(sign)
    sign.set_defaults(func=_sign_url)

    aliyun = subparsers.add_parser(
        "aliyun-credentials",
        help="print Aliyun IoT ws/wss connect parameters as JSON",
        description="Print the url, clientId, username and password of an Aliyun IoT device.",
    )
    aliyun.add_argument("--product-key", required=True)
    aliyun.add_argument("--device-name", required=True)
    aliyun.add_argument(
        "--device-secret-stdin",
        action="store_true",
        help="read the device secret from stdin, typed without echo on a terminal "
        "(required: it is never taken from argv)",
    )
    refuse_secret_flag(aliyun, "--device-secret", "pipe it with --device-secret-stdin")
    aliyun.add_argument("--client-id", required=True, help="up to 64 characters (MAC or serial)")
    aliyun.add_argument("--timestamp", help="digits (default: now, in milliseconds)")
    aliyun.add_argument("--signmethod", default="hmacsha1", choices=sorted(SIGN_METHODS))
    aliyun.add_argument(
        "--securemode", type=int, default=2, choices=(2, 3), help="2: wss:// (default), 3: ws://"
    )
    where = aliyun.add_mutually_exclusive_group()
    where.add_argument("--region", default="cn-shanghai", help="legacy public instance region")
    where.add_argument("--instance-id", help="instance id of a new-style instance")
    add_json_flag(aliyun)  # accepted for symmetry: the output is JSON either way
    aliyun.set_defaults(func=_aliyun_credentials)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--at: not an ISO 8601 time: {value!r}") from None
    if when.tzinfo is None:
        raise CommandError("--at needs a timezone, e.g. 2025-01-01T12:00:00Z")
    return when


def _credentials_from_stdin() -> tuple[str, str, str | None]:
    try:
        data = json.loads(sys.stdin.read())
        key, secret = data["AccessKeyId"], data["SecretAccessKey"]
        token = data.get("SessionToken") or None
        if not all(isinstance(v, str) and v for v in (key, secret)) or not (
            token is None or isinstance(token, str)
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        # Never quote the input: it is a secret.
        raise CommandError(
            "--credentials-stdin: expected a JSON object with AccessKeyId, SecretAccessKey "
            "and optionally SessionToken"
        ) from None
    return key, secret, token


def _credentials_from_env() -> tuple[str, str, str | None] | None:
    """The standard variables, as every AWS SDK reads them first (no botocore import).

    With ``AWS_PROFILE`` set, botocore decides (it then prefers the named profile)."""
    if os.environ.get("AWS_PROFILE"):
        return None
    key = os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not (key and secret):
        return None
    return key, secret, os.environ.get("AWS_SESSION_TOKEN") or None


def _sign_url(args: argparse.Namespace) -> int:
    now = _parse_time(args.at)
    try:
        credentials = _credentials_from_stdin() if args.credentials_stdin else None
        credentials = credentials or _credentials_from_env()
        if credentials is not None:
            key, secret, token = credentials
            url = presign_mqtt_url(
                args.endpoint, args.region, key, secret, token, now=now, expires=args.expires
            )
        else:
            url = presign_mqtt_url_for_session(
                args.endpoint, args.region, now=now, expires=args.expires
            )
    except ValueError as exc:  # the library's messages never quote a secret
        raise CommandError(str(exc)) from None
    emit(args, {"url": url}, lambda: print(url))
    return 0


def _device_secret() -> str:
    """One line of stdin; on a terminal typed once without echo (an existing secret)."""
    try:
        if sys.stdin.isatty():
            return getpass.getpass("Device secret: ")
    except (AttributeError, ValueError):  # stdin replaced (tests) or closed
        pass
    except EOFError:
        return ""
    return sys.stdin.readline().rstrip("\r\n")


def _aliyun_credentials(args: argparse.Namespace) -> int:
    if not args.device_secret_stdin:
        raise CommandError("pass the device secret on stdin with --device-secret-stdin")
    secret = _device_secret()
    if not secret:
        raise CommandError("no device secret on stdin")
    try:
        credentials = mqtt_credentials(
            args.product_key,
            args.device_name,
            secret,
            args.client_id,
            timestamp=args.timestamp,
            signmethod=args.signmethod,
            securemode=args.securemode,
            region=args.region,
            instance_id=args.instance_id,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print_json(credentials.as_dict())
    return 0
