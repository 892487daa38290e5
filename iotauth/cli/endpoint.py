"""``iotauth endpoint``: where devices connect, and the authorizer as default on an endpoint.

- ``show`` prints the account's ``iot:Data-ATS`` host (DescribeEndpoint) and, with
  ``--domain-configuration`` (the stack output ``DeviceDomainConfigurationName``), that
  endpoint's host, status, authentication type, protocol, TLS policy and default authorizer.
- ``set-default-authorizer`` makes an authorizer the default, for fleets that cannot name
  it and that keep an existing endpoint instead of the stack's: on a domain configuration of
  your own (UpdateDomainConfiguration), or account-wide for the default ``iot:Data-ATS``
  endpoint (SetDefaultAuthorizer; IoT does not let default endpoints' domain configurations
  be updated). It shows the current and the new setting and changes nothing without
  ``--yes`` (or a typed ``yes`` on a terminal); ``--dry-run`` only shows.

Standard AWS configuration applies (``--profile``, ``--region``, ``AWS_ENDPOINT_URL``).
Errors are one line: the API's error code and message, never a traceback (exit 3; 2 for a
refusal of the input). ``--json`` prints the result on stdout for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from iotauth.cli import AwsFailure, CommandError
from iotauth.cli.output import add_json_flag, emit, note

__all__ = ["register"]

# What devices change when the endpoint is set up like the stack's domain configuration.
_NO_ALPN = ("CUSTOM_AUTH", "SECURE_MQTT")


def _iot(args: argparse.Namespace) -> Any:
    import boto3  # noqa: PLC0415 — only when a command runs
    from botocore.exceptions import BotoCoreError  # noqa: PLC0415

    try:
        region = args.region or os.environ.get("AWS_REGION") or None
        return boto3.Session(profile_name=args.profile, region_name=region).client("iot")
    except BotoCoreError as exc:
        raise AwsFailure(f"AWS configuration: {exc}") from None


def _call(what: str, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        return call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = str(error.get("Message", "")).splitlines()[0][:200] if error else ""
        raise AwsFailure(f"{what} failed: {code}" + (f": {message}" if message else "")) from None
    except BotoCoreError as exc:
        raise AwsFailure(f"{what} failed: {exc}") from None


def _domain_view(found: dict[str, Any]) -> dict[str, Any]:
    authorizer = found.get("authorizerConfig") or {}
    view = {
        "host": found.get("domainName"),
        "domainConfiguration": found.get("domainConfigurationName"),
        "status": found.get("domainConfigurationStatus"),
        "domainType": found.get("domainType"),
        "authenticationType": found.get("authenticationType", "DEFAULT"),
        "applicationProtocol": found.get("applicationProtocol", "DEFAULT"),
        "tlsPolicy": (found.get("tlsConfig") or {}).get("securityPolicy"),
        "defaultAuthorizer": authorizer.get("defaultAuthorizerName"),
        "allowAuthorizerOverride": authorizer.get("allowAuthorizerOverride"),
    }
    if (view["authenticationType"], view["applicationProtocol"]) == _NO_ALPN:
        view["devices"] = "MQTT over TLS on 443, ALPN optional, SNI = host required"
    else:
        view["devices"] = "custom auth over MQTT/TLS needs port 443 with ALPN 'mqtt'"
    return view


def cmd_show(args: argparse.Namespace) -> int:
    iot = _iot(args)
    ats = _call("iot:DescribeEndpoint", lambda: iot.describe_endpoint(endpointType="iot:Data-ATS"))
    result: dict[str, Any] = {"dataAtsHost": ats["endpointAddress"]}
    if args.domain_configuration:
        found = _call(
            "iot:DescribeDomainConfiguration",
            lambda: iot.describe_domain_configuration(
                domainConfigurationName=args.domain_configuration
            ),
        )
        result["deviceEndpoint"] = _domain_view(found)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print(f"iot:Data-ATS (browsers, WebSocket, SDKs with ALPN)  {result['dataAtsHost']}")
    view = result.get("deviceEndpoint")
    if view:
        print(f"device endpoint  {view['host']}  ({view['domainConfiguration']}, {view['status']})")
        print(
            f"  authentication {view['authenticationType']}, protocol {view['applicationProtocol']}"
        )
        print(f"  default authorizer {view['defaultAuthorizer'] or '(none)'}", end="")
        print(f", override {'allowed' if view['allowAuthorizerOverride'] else 'not allowed'}")
        print(f"  TLS policy {view['tlsPolicy'] or '(default)'}")
        print(f"  devices: {view['devices']}")
    return 0


def _confirm(args: argparse.Namespace, plan: str) -> bool:
    note(plan)
    if args.dry_run:
        note("dry run: nothing changed")
        return False
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError("not a terminal: pass --yes to apply (or --dry-run to only show)")
    answer = input("apply? type yes: ")
    if answer.strip() != "yes":
        note("nothing changed")
        return False
    return True


def _current_default_authorizer(iot: Any) -> str | None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    def call() -> Any:
        try:
            return iot.describe_default_authorizer()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None  # no default authorizer yet
            raise

    found = _call("iot:DescribeDefaultAuthorizer", call)
    return None if found is None else str(found["authorizerDescription"]["authorizerName"])


def cmd_set_default_authorizer(args: argparse.Namespace) -> int:
    iot = _iot(args)
    name = args.authorizer_name
    authorizer = _call(
        "iot:DescribeAuthorizer", lambda: iot.describe_authorizer(authorizerName=name)
    )["authorizerDescription"]
    if authorizer.get("status") != "ACTIVE":
        raise CommandError(f"authorizer {name!r} is {authorizer.get('status')}, not ACTIVE")
    config = args.domain_configuration
    if config:
        if config.lower().startswith("iot:"):
            raise CommandError(
                f"{config!r} is a default endpoint's domain configuration, which IoT does not "
                "let anyone update: omit --domain-configuration to set the account's default "
                "authorizer (SetDefaultAuthorizer) instead"
            )
        found = _call(
            "iot:DescribeDomainConfiguration",
            lambda: iot.describe_domain_configuration(domainConfigurationName=config),
        )
        current = (found.get("authorizerConfig") or {}).get("defaultAuthorizerName")
        plan = (
            f"domain configuration {config} ({found.get('domainName')}): default authorizer "
            f"{current or '(none)'} -> {name}, override allowed"
        )
        result = {"target": config, "host": found.get("domainName"), "from": current, "to": name}
        if not _confirm(args, plan):
            return _report(args, result, changed=False)
        _call(
            "iot:UpdateDomainConfiguration",
            lambda: iot.update_domain_configuration(
                domainConfigurationName=config,
                authorizerConfig={"defaultAuthorizerName": name, "allowAuthorizerOverride": True},
            ),
        )
    else:
        current = _current_default_authorizer(iot)
        plan = f"account default authorizer (iot:Data-ATS): {current or '(none)'} -> {name}"
        result = {"target": "account", "host": None, "from": current, "to": name}
        if not _confirm(args, plan):
            return _report(args, result, changed=False)
        _call("iot:SetDefaultAuthorizer", lambda: iot.set_default_authorizer(authorizerName=name))
    note(f"default authorizer is now {name}")
    return _report(args, result, changed=True)


def _report(args: argparse.Namespace, result: dict[str, Any], *, changed: bool) -> int:
    """With --json: what was (or would have been) changed; the text is on stderr already."""
    emit(args, {**result, "changed": changed})
    return 0


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: standard AWS configuration)")
    common.add_argument("--profile", help="AWS profile (default: standard AWS configuration)")
    common.add_argument(
        "--domain-configuration",
        metavar="NAME",
        help="a domain configuration (the stack output DeviceDomainConfigurationName)",
    )
    endpoint = subparsers.add_parser(
        "endpoint", help="show the device endpoint; set the authorizer as default on one"
    )
    sub = endpoint.add_subparsers(dest="endpoint_command", required=True, metavar="ACTION")

    p = sub.add_parser("show", parents=[common], help="the endpoint hosts and their settings")
    add_json_flag(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "set-default-authorizer",
        parents=[common],
        help="make an authorizer the default on an existing endpoint",
        description="With --domain-configuration: that endpoint (UpdateDomainConfiguration). "
        "Without: the account's default iot:Data-ATS endpoint (SetDefaultAuthorizer).",
    )
    p.add_argument("--authorizer-name", default="iotauth", help="default: iotauth")
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--dry-run", action="store_true", help="show the change, make none")
    add_json_flag(p)
    p.set_defaults(func=cmd_set_default_authorizer)
