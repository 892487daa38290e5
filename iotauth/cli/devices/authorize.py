"""``iotauth authorize``: would IoT Core let these credentials CONNECT, and with what policy?

Locally (the default) it builds the event IoT Core sends for an MQTT-over-TLS CONNECT, runs
``authorizer/app.py`` in-process against the table and prints only the response on stdout;
the handler's logs go to stderr. With ``--deployed`` it asks IoT itself (the
``TestInvokeAuthorizer`` API, which invokes the deployed authorizer Lambda) and explains the
answer: allowed or denied, the principal, the session limits and the policies, pretty-printed
(``--json``: the response as the API gives it). Either way the exit status is 0 when
authenticated and 1 when not, so scripts and ``make`` can test it; the password comes from
stdin or ``$IOTAUTH_PASSWORD``, never from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from iotauth.cli import (
    EXIT_DENIED,
    EXIT_OK,
    AwsFailure,
    CommandError,
    refuse_secret_flag,
)
from iotauth.cli.devices.common import aws_session, read_stdin_secret
from iotauth.cli.output import add_json_flag, print_json, wants_json

__all__ = ["register"]

# What TestInvokeAuthorizer answers (botocore's iot service model); the rest is metadata.
_ANSWER_FIELDS = (
    "isAuthenticated",
    "principalId",
    "policyDocuments",
    "disconnectAfterInSeconds",
    "refreshAfterInSeconds",
)


def _authorize_password(args: argparse.Namespace) -> bytes:
    """From stdin (``--password-stdin``, bytes as given but one trailing newline; typed once
    without echo on a terminal) or ``$IOTAUTH_PASSWORD`` (as is); never from argv."""
    if args.password_stdin:
        return read_stdin_secret("password")
    env = os.environ.get("IOTAUTH_PASSWORD")
    if env:
        return env.encode("utf-8")
    raise CommandError("no password: pipe it with --password-stdin or set IOTAUTH_PASSWORD")


def _verdict(response: dict[str, Any]) -> int:
    return EXIT_OK if response.get("isAuthenticated") is True else EXIT_DENIED


# -- locally, against the table ------------------------------------------------------------


def _authorize_locally(args: argparse.Namespace) -> int:
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
        ConnectionInfo("tls", server_name=args.server_name or "local.iotauth"),
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
    print(json.dumps(response, indent=2))  # the response, with or without --json
    return _verdict(response)


# -- the deployed authorizer, through IoT's TestInvokeAuthorizer ---------------------------


def _test_invoke(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    config = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard"})
    try:
        iot = aws_session(args).client("iot", config=config)
        answer: dict[str, Any] = iot.test_invoke_authorizer(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "error"))
        message = str(error.get("Message", "")).splitlines()[0][:200] if error else ""
        line = f"iot:TestInvokeAuthorizer failed: {code}" + (f": {message}" if message else "")
        if code == "ResourceNotFoundException":  # a misspelt --authorizer-name
            hint = f" (is the authorizer named {args.authorizer_name!r}?)"
            raise CommandError(line + hint) from None
        if code == "InvalidResponseException":
            line += " (the authorizer Lambda failed or answered out of contract: see its logs)"
        raise AwsFailure(line) from None
    except BotoCoreError as exc:
        raise AwsFailure(f"iot:TestInvokeAuthorizer failed: {exc}") from None
    return {name: answer[name] for name in _ANSWER_FIELDS if name in answer}


def _policy_lines(document: str) -> list[str]:
    """One policy document pretty-printed, and one line per statement above it."""
    try:
        policy = json.loads(document)
    except ValueError:
        return ["  (not JSON)", document]
    lines = []
    statements = policy.get("Statement", []) if isinstance(policy, dict) else []
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict):
            continue
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        lines.append(
            f"  {statement.get('Effect', '?')} {', '.join(map(str, actions))} "
            f"on {', '.join(map(str, resources))}"
        )
    lines.extend(json.dumps(policy, indent=2).splitlines())
    return lines


def _explain(args: argparse.Namespace, answer: dict[str, Any]) -> None:
    name = args.authorizer_name
    if answer.get("isAuthenticated") is not True:
        print(f"denied: the deployed authorizer {name!r} did not authenticate {args.username!r}")
        print(
            "reason: it returned isAuthenticated=false; it tells no client why (unknown name, "
            "wrong password, disabled, locked out, a client id not its own): its CloudWatch "
            "logs say which"
        )
        return
    print(f"allowed: the deployed authorizer {name!r} authenticated {args.username!r}")
    print(f"principalId: {answer.get('principalId')}")
    print(f"disconnectAfterInSeconds: {answer.get('disconnectAfterInSeconds')}")
    print(f"refreshAfterInSeconds: {answer.get('refreshAfterInSeconds')}")
    documents = answer.get("policyDocuments") or []
    if not documents:
        print("policies: none (the connection could do nothing)")
    for number, document in enumerate(documents, 1):
        print(f"policy {number} of {len(documents)}:")
        for line in _policy_lines(str(document)):
            print(line)


def _authorize_deployed(args: argparse.Namespace) -> int:
    if not args.authorizer_name:
        raise CommandError("--deployed needs --authorizer-name (the stack's AuthorizerName)")
    mqtt: dict[str, Any] = {
        "username": args.username,
        "password": _authorize_password(args),  # bytes: botocore sends the blob as base64
        "clientId": args.client_id if args.client_id is not None else args.username,
    }
    params: dict[str, Any] = {"authorizerName": args.authorizer_name, "mqttContext": mqtt}
    if args.server_name:
        params["tlsContext"] = {"serverName": args.server_name}
    if args.token_signature:
        token = os.environ.get("IOTAUTH_TOKEN", "")
        if not token:
            raise CommandError("--token-signature needs the token in $IOTAUTH_TOKEN")
        params.update(token=token, tokenSignature=args.token_signature)
    answer = _test_invoke(args, params)
    if wants_json(args):
        print_json(answer)
    else:
        _explain(args, answer)
    return _verdict(answer)


def cmd_authorize(args: argparse.Namespace) -> int:
    return _authorize_deployed(args) if args.deployed else _authorize_locally(args)


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Registers the top-level ``iotauth authorize`` (not a ``devices`` action)."""
    p = subparsers.add_parser(
        "authorize",
        parents=[common],
        help="would these credentials connect? (the authorizer run locally, or the deployed "
        "one with --deployed)",
        description="Build the IoT Core authorizer event for an MQTT CONNECT and run the "
        "authorizer handler locally against the table, printing its response; or, with "
        "--deployed, ask IoT's TestInvokeAuthorizer to run the deployed authorizer and explain "
        "its answer. Exit status 0 when authenticated, 1 when not, 2 on a usage error, "
        "3 when AWS failed.",
    )
    p.add_argument("--username", required=True)
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin; typed without echo on a terminal "
        "(default: $IOTAUTH_PASSWORD)",
    )
    refuse_secret_flag(p, "--password", "use --password-stdin or $IOTAUTH_PASSWORD")
    p.add_argument("--client-id", help="default: the username")
    p.add_argument(
        "--authorizer-name",
        default="iotauth",
        help="the authorizer (the stack parameter AuthorizerName; default: iotauth)",
    )
    p.add_argument(
        "--deployed",
        action="store_true",
        help="ask IoT to run the deployed authorizer (TestInvokeAuthorizer) instead of "
        "running it here; needs iot:TestInvokeAuthorizer, not the table",
    )
    p.add_argument(
        "--server-name",
        metavar="HOST",
        help="the TLS SNI the device sends (tlsContext.serverName), e.g. the device endpoint",
    )
    p.add_argument(
        "--token-signature",
        metavar="SIG",
        help="--deployed, for an authorizer with signing enabled: the token's signature "
        "(the token itself from $IOTAUTH_TOKEN, never the command line)",
    )
    refuse_secret_flag(p, "--token", "set $IOTAUTH_TOKEN")
    add_json_flag(p)
    p.set_defaults(func=cmd_authorize)
