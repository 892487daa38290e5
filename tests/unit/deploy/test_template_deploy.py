"""template.yaml's deployment pieces agree with each other, with the code and with the README:
the device endpoint (domain configuration, its outputs), the table's KMS key policy, the
operators' IAM for revocation, reserved concurrency, and the session defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.connect.authenticate import Settings
from iotauth.local.stack import TEMPLATE_PATH
from iotauth.local.template import Template

ROOT = Path(__file__).resolve().parents[3]
ARN = ArnContext("aws", "us-east-1", "123456789012")
_DECRYPTING = {"kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncrypt*", "kms:*", "kms:CreateGrant"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return Template.load(TEMPLATE_PATH, ARN).document


def _resources(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == kind}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_one_domain_configuration_with_the_authorizer_as_default(doc: dict[str, Any]) -> None:
    configs = _resources(doc, "AWS::IoT::DomainConfiguration")
    assert list(configs) == ["IotDomainConfiguration"]
    config = configs["IotDomainConfiguration"]
    props = config["Properties"]
    # Custom auth over MQTT/TLS without ALPN: port and ALPN no longer select the scheme.
    assert (props["AuthenticationType"], props["ApplicationProtocol"]) == (
        "CUSTOM_AUTH",
        "SECURE_MQTT",
    )
    assert props["ServiceType"] == "DATA"
    authorizer = doc["Resources"]["IotAuthorizer"]["Properties"]
    assert props["AuthorizerConfig"] == {
        "DefaultAuthorizerName": authorizer["AuthorizerName"],  # the same Ref
        "AllowAuthorizerOverride": True,
    }
    assert config["DependsOn"] == "IotAuthorizer"
    # AWS-managed by default, a customer domain with its ACM certificate when both are given.
    assert props["DomainName"] == {
        "Fn::If": ["UseCustomDomain", {"Ref": "CustomDomainName"}, {"Ref": "AWS::NoValue"}]
    }
    assert props["ServerCertificateArns"]["Fn::If"][1] == [{"Ref": "CustomDomainCertificateArn"}]
    parameters = doc["Parameters"]
    assert parameters["CustomDomainName"]["Default"] == ""
    assert parameters["CustomDomainCertificateArn"]["Default"] == ""
    # Retained: an AWS-managed domain cannot be deleted until disabled for 7 days.
    assert config["DeletionPolicy"] == "Retain"


def test_endpoint_outputs(doc: dict[str, Any]) -> None:
    outputs = doc["Outputs"]
    assert outputs["DeviceDomainConfigurationName"]["Value"] == {"Ref": "IotDomainConfiguration"}
    host = outputs["DeviceEndpointHost"]["Value"]["Fn::If"]
    assert host[0] == "UseCustomDomain" and host[1] == {"Ref": "CustomDomainName"}
    assert host[2] == {"Fn::GetAtt": ["DeviceEndpointLookup", "Host"]}
    lookup = doc["Resources"]["DeviceEndpointLookup"]
    assert lookup["Condition"] == "UseAwsManagedDomain"
    assert lookup["Properties"]["DomainConfigurationName"] == {"Ref": "IotDomainConfiguration"}
    # The lookup may describe that one domain configuration and nothing else.
    role = doc["Resources"]["DeviceEndpointLookupRole"]["Properties"]["Policies"][0]
    statements = role["PolicyDocument"]["Statement"]
    iot = [s for s in statements if str(s["Action"]).startswith("iot:")]
    assert iot == [
        {
            "Effect": "Allow",
            "Action": "iot:DescribeDomainConfiguration",
            "Resource": {"Fn::GetAtt": ["IotDomainConfiguration", "Arn"]},
        }
    ]


def _key_statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    keys = _resources(doc, "AWS::KMS::Key")
    # Besides the table's, only the alarm topic's key (test_template_alarms.py), if any.
    assert set(keys) - {"AlarmTopicKey"} == {"CredentialsKey"}
    key = keys["CredentialsKey"]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"  # like the table it decrypts
    statements: list[dict[str, Any]] = key["Properties"]["KeyPolicy"]["Statement"]
    return statements


def test_table_is_encrypted_with_the_key(doc: dict[str, Any]) -> None:
    _key_statements(doc)
    sse = doc["Resources"]["CredentialsTable"]["Properties"]["SSESpecification"]
    assert sse == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": ["CredentialsKey", "Arn"]},
    }


def test_only_the_authorizer_signer_and_operators_may_decrypt(doc: dict[str, Any]) -> None:
    """The signer only for its rate-limit counters: its IAM allows UpdateItem on ratelimit#
    keys alone (tests/unit/deploy/test_template_signer.py)."""
    via_dynamodb = {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}
    decrypters = []
    for statement in _key_statements(doc):
        assert statement["Effect"] == "Allow"
        principal = statement["Principal"]
        if "NotAction" in statement:  # key administration: never a data action
            assert _DECRYPTING - {"kms:ReEncrypt*", "kms:*"} <= set(statement["NotAction"])
            continue
        actions = set(_list(statement["Action"]))
        if not actions & _DECRYPTING:
            continue
        condition = statement["Condition"]["StringEquals"]
        assert condition["kms:ViaService"] == via_dynamodb
        if actions == {"kms:CreateGrant"}:  # grants only for DynamoDB's own use
            assert statement["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": True}
            continue
        decrypters.append(principal["AWS"])
    assert decrypters == [
        {"Fn::GetAtt": ["AuthorizerRole", "Arn"]},
        {"Fn::GetAtt": ["SignerRole", "Arn"]},
        {"Ref": "OperatorPrincipalArns"},
    ]


def test_the_authorizer_runs_as_the_role_the_key_names(doc: dict[str, Any]) -> None:
    function = doc["Resources"]["AuthorizerFunction"]
    assert function["Properties"]["Role"] == {"Fn::GetAtt": ["AuthorizerRole", "Arn"]}
    table_policy = doc["Resources"]["AuthorizerTablePolicy"]["Properties"]
    assert table_policy["RoleName"] == {"Ref": "AuthorizerRole"}
    # The role itself references neither the table nor the key: no dependency cycle.
    role_text = str(doc["Resources"]["AuthorizerRole"])
    assert "CredentialsTable" not in role_text and "CredentialsKey" not in role_text


def test_reserved_concurrency_is_a_parameter(doc: dict[str, Any]) -> None:
    props = doc["Resources"]["AuthorizerFunction"]["Properties"]
    assert props["ReservedConcurrentExecutions"] == {"Ref": "AuthorizerReservedConcurrency"}
    signer = doc["Resources"]["SignerFunction"]["Properties"]
    assert signer["ReservedConcurrentExecutions"] == {"Ref": "SignerReservedConcurrency"}


def test_session_defaults_agree_with_the_code() -> None:
    template = Template.load(TEMPLATE_PATH, ARN)
    env = template.function_environment("AuthorizerFunction", {"CredentialsTable": "t"})
    from_template = Settings.from_env(env)
    code = Settings(table="t")
    assert from_template.refresh_after_seconds == code.refresh_after_seconds == 86400
    assert from_template.disconnect_after_seconds == code.disconnect_after_seconds == 86400
    assert from_template.lockout == code.lockout
    assert from_template.aliyun_max_skew_seconds == code.aliyun_max_skew_seconds


def test_operator_policy_covers_revocation_and_the_readme_says_so(doc: dict[str, Any]) -> None:
    statements = doc["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["CloseLiveConnections"]["Action"] == "iot:DeleteConnection"
    assert by_sid["CloseLiveConnections"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:client/*"
    }
    assert by_sid["FindTheDataEndpoint"]["Action"] == "iot:DescribeEndpoint"
    granted = {a for s in statements for a in _list(s["Action"])}
    # Every DynamoDB call the CLI's store makes (iotauth/identities/dynamodb_*.py) is granted.
    store = "".join(
        (ROOT / "iotauth" / "identities" / name).read_text(encoding="utf-8")
        for name in ("dynamodb_store.py", "dynamodb_admin.py")
    )
    # (create-table is for a table the stack did not make: not an operator's job here.)
    called = set(re.findall(r'_call\(\s*"(\w+)"', store)) - {"update_time_to_live"}
    assert called, "the store's calls moved: update this test"
    for operation in called:
        action = "dynamodb:" + "".join(part.title() for part in operation.split("_"))
        assert action in granted, action
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for action in ("iot:DeleteConnection", "iot:DescribeEndpoint", "OperatorPolicyArn"):
        assert action in readme, action


class _Recorder:
    """A CloudFormation response URL on 127.0.0.1 (port 0) that keeps what was PUT to it."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        bodies: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response?sig=x"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete", "Fails"])
def test_endpoint_lookup_answers_cloudformation(
    doc: dict[str, Any], aws_env: None, request_type: str
) -> None:
    """The inline custom resource, run as Lambda would run it, against a stubbed IoT."""
    import types

    import boto3
    from botocore.stub import Stubber

    code = doc["Resources"]["DeviceEndpointLookupFunction"]["Properties"]["Code"]["ZipFile"]
    iot = boto3.client("iot", region_name="us-east-1")
    stub = Stubber(iot)
    if request_type in ("Create", "Update"):
        stub.add_response(
            "describe_domain_configuration",
            {"domainName": "d01-ats.iot.us-east-1.amazonaws.com"},
            {"domainConfigurationName": "iotauth-devices"},
        )
    elif request_type == "Fails":
        stub.add_client_error("describe_domain_configuration", "UnauthorizedException")
    namespace: dict[str, Any] = {}
    exec(compile(code, "index.py", "exec"), namespace)  # the template's own code
    namespace["boto3"] = types.SimpleNamespace(client=lambda service: iot)
    recorder = _Recorder()
    try:
        event = {
            "RequestType": "Create" if request_type == "Fails" else request_type,
            "ResponseURL": recorder.url,
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
            "RequestId": "r1",
            "LogicalResourceId": "DeviceEndpointLookup",
            "ResourceProperties": {"DomainConfigurationName": "iotauth-devices"},
        }
        if request_type != "Create":
            event["PhysicalResourceId"] = "iotauth-devices"
        with stub:
            namespace["handler"](event, None)
            stub.assert_no_pending_responses()
    finally:
        recorder.close()
    (body,) = recorder.bodies
    assert body["RequestId"] == "r1" and body["LogicalResourceId"] == "DeviceEndpointLookup"
    assert body["PhysicalResourceId"] == "iotauth-devices"
    if request_type in ("Create", "Update"):
        assert body["Status"] == "SUCCESS"
        assert body["Data"] == {"Host": "d01-ats.iot.us-east-1.amazonaws.com"}
    elif request_type == "Delete":
        assert (body["Status"], body["Data"]) == ("SUCCESS", {})
    else:
        assert (body["Status"], body["Reason"]) == ("FAILED", "UnauthorizedException")


def test_every_checkov_skip_is_justified_in_the_readme() -> None:
    """`make validate` runs checkov; what it may not report is skipped in the template with a
    one-line reason, and the README lists each check with the same reason."""
    template = TEMPLATE_PATH.read_text(encoding="utf-8")
    skips = set(re.findall(r"#\s*checkov:skip=(CKV2?_\w+):(.+)", template))
    assert skips, "no skips: remove this test's README section too"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for check, reason in skips:
        assert f"`{check}`" in readme and reason.strip() in readme, check


def test_every_authorizer_name_the_template_derives_fits_iots_128_characters(
    doc: dict[str, Any],
) -> None:
    """The longest AuthorizerName the parameter accepts, with each suffix the template adds
    to it (``-token``, ``-token-signed``), is still a name CreateAuthorizer takes."""
    longest = doc["Parameters"]["AuthorizerName"]["MaxLength"]
    names = [longest]
    for resource in _resources(doc, "AWS::IoT::Authorizer").values():
        name = resource["Properties"]["AuthorizerName"]
        for sub in re.findall(r"\$\{AuthorizerName\}[\w=,@-]*", json.dumps(name)):
            names.append(longest + len(sub) - len("${AuthorizerName}"))
    assert len(names) >= 3, names  # the parameter, -token and -token-signed
    assert max(names) <= 128, names
