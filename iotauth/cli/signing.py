"""``iotauth sign-url`` and ``iotauth aliyun-credentials``: connect parameters for scripts.

Only the standard-library signers are imported here; botocore is loaded only when
``sign-url`` has to take credentials from the default chain.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from iotauth.aliyun import SIGN_METHODS, mqtt_credentials
from iotauth.cli import CommandError
from iotauth.sigv4 import presign_mqtt_url, presign_mqtt_url_for_session

__all__ = ["register"]


def register(subparsers: Any) -> None:
    sign = subparsers.add_parser(
        "sign-url",
        help="print a SigV4-presigned wss:// URL for AWS IoT Core",
        description=(
            "Print a presigned MQTT-over-WebSocket URL for AWS IoT Core (alone on stdout). "
            "Without --access-key/--secret-key the default AWS credential chain is used. "
            "IoT accepts the URL for about 15 minutes after its time."
        ),
    )
    sign.add_argument("--endpoint", required=True, help="IoT data endpoint host (…-ats.iot…)")
    sign.add_argument("--region", required=True, help="AWS region of the endpoint")
    sign.add_argument("--access-key", help="access key id (with --secret-key)")
    sign.add_argument("--secret-key", help="secret access key (with --access-key)")
    sign.add_argument("--session-token", help="session token of temporary credentials")
    sign.add_argument("--at", metavar="ISO8601", help="signing time with a timezone (default: now)")
    sign.add_argument("--expires", type=int, metavar="N", help="add a signed X-Amz-Expires=N")
    sign.set_defaults(func=_sign_url)

    aliyun = subparsers.add_parser(
        "aliyun-credentials",
        help="print Aliyun IoT ws/wss connect parameters as JSON",
        description="Print the url, clientId, username and password of an Aliyun IoT device.",
    )
    aliyun.add_argument("--product-key", required=True)
    aliyun.add_argument("--device-name", required=True)
    secret = aliyun.add_mutually_exclusive_group(required=True)
    secret.add_argument("--device-secret")
    secret.add_argument(
        "--device-secret-stdin", action="store_true", help="read the device secret from stdin"
    )
    aliyun.add_argument("--client-id", required=True, help="up to 64 characters (MAC or serial)")
    aliyun.add_argument("--timestamp", help="digits (default: now, in milliseconds)")
    aliyun.add_argument("--signmethod", default="hmacsha1", choices=sorted(SIGN_METHODS))
    aliyun.add_argument(
        "--securemode", type=int, default=2, choices=(2, 3), help="2: wss:// (default), 3: ws://"
    )
    where = aliyun.add_mutually_exclusive_group()
    where.add_argument("--region", default="cn-shanghai", help="legacy public instance region")
    where.add_argument("--instance-id", help="instance id of a new-style instance")
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


def _sign_url(args: argparse.Namespace) -> int:
    now = _parse_time(args.at)
    try:
        if args.access_key or args.secret_key:
            if not (args.access_key and args.secret_key):
                raise CommandError("--access-key and --secret-key go together")
            url = presign_mqtt_url(
                args.endpoint,
                args.region,
                args.access_key,
                args.secret_key,
                args.session_token or None,
                now=now,
                expires=args.expires,
            )
        else:
            if args.session_token:
                raise CommandError("--session-token needs --access-key and --secret-key")
            url = presign_mqtt_url_for_session(
                args.endpoint, args.region, now=now, expires=args.expires
            )
    except ValueError as exc:  # the library's messages never quote a secret
        raise CommandError(str(exc)) from None
    print(url)
    return 0


def _aliyun_credentials(args: argparse.Namespace) -> int:
    if args.device_secret_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise CommandError("no device secret on stdin")
    else:
        secret = args.device_secret
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
    print(json.dumps(credentials.as_dict(), indent=2))
    return 0
