"""``iotauth authorize``: run the authorizer handler locally on one CONNECT's credentials.

It builds the event IoT Core sends for an MQTT-over-TLS CONNECT, runs ``authorizer/app.py``
in-process against the table (as ``aws iot test-invoke-authorizer`` runs a deployed one)
and prints only the response on stdout; the handler's logs go to stderr. Exit status 0 when
authenticated, 1 when not. The password comes from stdin or ``$IOTAUTH_PASSWORD``, never
from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from iotauth.cli import CommandError, refuse_secret_flag
from iotauth.cli.devices.common import read_stdin_secret

__all__ = ["register"]


def _authorize_password(args: argparse.Namespace) -> bytes:
    """From stdin (``--password-stdin``, bytes as given but one trailing newline) or
    ``$IOTAUTH_PASSWORD`` (as is); never from the command line."""
    if args.password_stdin:
        return read_stdin_secret("password")
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


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Registers the top-level ``iotauth authorize`` (not a ``devices`` action)."""
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
