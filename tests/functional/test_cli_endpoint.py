"""`iotauth endpoint show|set-default-authorizer`: request shapes against botocore's Stubber
(moto has neither IoT authorizers nor SetDefaultAuthorizer), the shown settings, and the
confirmation that guards every change."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from iotauth.cli import endpoint, main

Run = Callable[..., tuple[int, str, str]]
DOMAIN = {
    "domainConfigurationName": "iotauth-devices",
    "domainConfigurationArn": "arn:aws:iot:us-east-1:123456789012:domainconfiguration/x/abcde",
    "domainName": "d0123456789abc-ats.iot.us-east-1.amazonaws.com",
    "domainConfigurationStatus": "ENABLED",
    "domainType": "AWS_MANAGED",
    "authenticationType": "CUSTOM_AUTH",
    "applicationProtocol": "SECURE_MQTT",
    "tlsConfig": {"securityPolicy": "IoTSecurityPolicy_TLS13_1_2_2022_10"},
    "authorizerConfig": {"defaultAuthorizerName": "iotauth", "allowAuthorizerOverride": True},
}
AUTHORIZER = {
    "authorizerDescription": {
        "authorizerName": "iotauth",
        "authorizerArn": "arn:aws:iot:us-east-1:123456789012:authorizer/iotauth",
        "status": "ACTIVE",
    }
}


@pytest.fixture
def stub(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("iot", region_name="us-east-1")
    stubber = Stubber(client)
    monkeypatch.setattr(endpoint, "_iot", lambda args: client)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


@pytest.fixture
def run(stub: Stubber, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    def call(*argv: str, tty_answer: str | None = None) -> tuple[int, str, str]:
        if tty_answer is not None:
            monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
            monkeypatch.setattr("builtins.input", lambda prompt: tty_answer)
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _ats(stub: Stubber) -> None:
    stub.add_response(
        "describe_endpoint",
        {"endpointAddress": "a1b2c3-ats.iot.us-east-1.amazonaws.com"},
        {"endpointType": "iot:Data-ATS"},
    )


def test_show_both_endpoints(run: Run, stub: Stubber) -> None:
    _ats(stub)
    stub.add_response(
        "describe_domain_configuration", DOMAIN, {"domainConfigurationName": "iotauth-devices"}
    )
    code, out, _ = run("endpoint", "show", "--domain-configuration", "iotauth-devices")
    assert code == 0
    assert "a1b2c3-ats.iot.us-east-1.amazonaws.com" in out
    assert "device endpoint  d0123456789abc-ats.iot.us-east-1.amazonaws.com" in out
    assert "default authorizer iotauth, override allowed" in out
    assert "ALPN optional" in out


def test_show_json_of_a_port_and_alpn_endpoint(run: Run, stub: Stubber) -> None:

    _ats(stub)
    legacy: dict[str, Any] = {**DOMAIN, "authenticationType": "DEFAULT"}
    del legacy["authorizerConfig"]
    stub.add_response("describe_domain_configuration", legacy)
    code, out, _ = run("endpoint", "show", "--domain-configuration", "x", "--json")
    view = json.loads(out)["deviceEndpoint"]
    assert code == 0 and view["defaultAuthorizer"] is None
    assert "ALPN 'mqtt'" in view["devices"]


def test_errors_are_one_line(run: Run, stub: Stubber) -> None:
    stub.add_client_error(
        "describe_endpoint", "UnauthorizedException", "Access denied\nmore", http_status_code=401
    )
    code, out, err = run("endpoint", "show")
    assert code == 3 and out == ""  # EXIT_AWS
    assert (
        err == "iotauth: error: iot:DescribeEndpoint failed: UnauthorizedException: Access denied\n"
    )


def test_set_default_on_a_domain_configuration(run: Run, stub: Stubber) -> None:
    stub.add_response("describe_authorizer", AUTHORIZER, {"authorizerName": "iotauth"})
    current = {**DOMAIN, "authorizerConfig": {}}
    stub.add_response("describe_domain_configuration", current)
    stub.add_response(
        "update_domain_configuration",
        {},
        {
            "domainConfigurationName": "fleet",
            "authorizerConfig": {
                "defaultAuthorizerName": "iotauth",
                "allowAuthorizerOverride": True,
            },
        },
    )
    code, _, err = run(
        "endpoint", "set-default-authorizer", "--domain-configuration", "fleet", "--yes"
    )
    assert code == 0
    assert "default authorizer (none) -> iotauth" in err and "is now iotauth" in err


def test_set_account_default_asks_first(run: Run, stub: Stubber) -> None:
    stub.add_response("describe_authorizer", AUTHORIZER)
    stub.add_client_error(
        "describe_default_authorizer", "ResourceNotFoundException", http_status_code=404
    )
    code, _, err = run("endpoint", "set-default-authorizer", tty_answer="no")
    assert code == 0 and "nothing changed" in err  # no SetDefaultAuthorizer was stubbed
    stub.add_response("describe_authorizer", AUTHORIZER)
    stub.add_response(
        "describe_default_authorizer", {"authorizerDescription": {"authorizerName": "old"}}
    )
    stub.add_response("set_default_authorizer", {}, {"authorizerName": "iotauth"})
    code, _, err = run("endpoint", "set-default-authorizer", tty_answer="yes")
    assert code == 0 and "old -> iotauth" in err


def test_dry_run_and_refusals(run: Run, stub: Stubber) -> None:
    stub.add_response("describe_authorizer", AUTHORIZER)
    stub.add_response("describe_default_authorizer", AUTHORIZER)
    code, _, err = run("endpoint", "set-default-authorizer", "--dry-run")
    assert code == 0 and "dry run: nothing changed" in err
    stub.add_response("describe_authorizer", AUTHORIZER)
    stub.add_response("describe_default_authorizer", AUTHORIZER)
    code, _, err = run("endpoint", "set-default-authorizer")  # stdin is not a terminal
    assert code == 2 and "--yes" in err
    stub.add_response("describe_authorizer", AUTHORIZER)
    code, _, err = run(
        "endpoint", "set-default-authorizer", "--domain-configuration", "iot:Data-ATS", "--yes"
    )
    assert code == 2 and "SetDefaultAuthorizer" in err
    inactive = {
        "authorizerDescription": {**AUTHORIZER["authorizerDescription"], "status": "INACTIVE"}
    }
    stub.add_response("describe_authorizer", inactive)
    code, _, err = run("endpoint", "set-default-authorizer", "--yes")
    assert code == 2 and "INACTIVE" in err


def test_set_default_authorizer_json(run: Run, stub: Stubber) -> None:
    stub.add_response("describe_authorizer", AUTHORIZER)
    stub.add_response(
        "describe_default_authorizer", {"authorizerDescription": {"authorizerName": "old"}}
    )
    code, out, err = run("endpoint", "set-default-authorizer", "--dry-run", "--json")
    assert code == 0 and "dry run" in err
    assert json.loads(out) == {
        "target": "account", "host": None, "from": "old", "to": "iotauth", "changed": False,
    }  # fmt: skip
    stub.add_response("describe_authorizer", AUTHORIZER)
    stub.add_response("describe_domain_configuration", {**DOMAIN, "authorizerConfig": {}})
    stub.add_response("update_domain_configuration", {})
    code, out, _ = run(
        "endpoint", "set-default-authorizer", "--domain-configuration", "fleet", "--yes", "--json"
    )
    assert code == 0 and json.loads(out) == {
        "target": "fleet",
        "host": DOMAIN["domainName"],
        "from": None,
        "to": "iotauth",
        "changed": True,
    }
