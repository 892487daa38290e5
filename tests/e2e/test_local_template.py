"""The local stack takes the IoT client role and the functions' environments from
template.yaml: no hand-kept copy can drift from what is deployed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.local.stack import TEMPLATE_PATH, LocalPorts, LocalStack, StackInfo
from iotauth.local.template import Template, TemplateError
from tests.e2e.conftest import Mqtt
from tests.e2e.test_gateway_presigned import connect_ws, signed_url
from tests.stack_support import stack_client

ARN = ArnContext("aws", "us-east-1", "123456789012")
PREFIX = "arn:aws:iot:us-east-1:123456789012"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


# --- parsing and resolving -------------------------------------------------------------------


def test_short_tags_read_as_cfn_lint_reads_them() -> None:
    from cfnlint.decode import decode

    expected, errors = decode(str(TEMPLATE_PATH))
    assert not errors
    assert _plain(Template.load(TEMPLATE_PATH, ARN).document) == _plain(expected)


def test_client_role_policy_resolved_with_parameter_defaults() -> None:
    template = Template.load(TEMPLATE_PATH, ARN)
    policies = template.role_policies("IotClientRole")
    assert list(policies) == ["web-clients"]
    statements = {s["Sid"]: s for s in policies["web-clients"]["Statement"]}
    assert statements["Connect"]["Resource"] == f"{PREFIX}:client/web-*"
    root = template.text_parameter("WebSharedTopicRoot")
    assert root == "chat"
    # Browsers publish in the shared root only under a web-… sender level (README: Trusting
    # the sender); they receive all of it.
    assert statements["SharedTopicsPublish"]["Resource"] == f"{PREFIX}:topic/chat/*/web-*"
    assert statements["SharedTopicsReceive"]["Resource"] == f"{PREFIX}:topic/chat/*"
    assert statements["SharedTopicsSubscribe"]["Resource"] == f"{PREFIX}:topicfilter/chat/*"
    assert not [s for s in _strings(policies) if "${" in s or s.startswith("Fn::")]


def test_parameters_override_defaults_and_are_validated() -> None:
    template = Template.load(TEMPLATE_PATH, ARN, {"WebSharedTopicRoot": "news"})
    statements = template.role_policies("IotClientRole")["web-clients"]["Statement"]
    assert f"{PREFIX}:topic/news/*" in [s["Resource"] for s in statements]
    with pytest.raises(TemplateError, match="WebSharedTopicRoot"):
        Template.load(TEMPLATE_PATH, ARN, {"WebSharedTopicRoot": "a/b"})  # AllowedPattern
    with pytest.raises(TemplateError, match="no parameter"):
        Template.load(TEMPLATE_PATH, ARN, {"NoSuchParameter": "x"})
    with pytest.raises(TemplateError, match="allowed values"):
        Template.load(TEMPLATE_PATH, ARN, {"LogRetentionDays": "2"})


def test_function_environments_follow_the_template() -> None:
    template = Template.load(TEMPLATE_PATH, ARN)
    signer = template.function_environment(
        "SignerFunction",
        {
            "IotClientRole.Arn": "arn:aws:iam::123456789012:role/r",
            "IotDataEndpoint": "h",
            "CredentialsTable": "t",
        },
    )
    assert signer["IOTAUTH_WEB_PUBLISH"] == ",".join(template.list_parameter("WebPublishGrants"))
    assert signer["IOTAUTH_WEB_SUBSCRIBE"] == ""
    assert signer["IOTAUTH_WEB_ROOMS"] == "chat/lobby"
    assert signer["IOTAUTH_SHARED_TOPIC_ROOTS"] == "chat"
    assert signer["IOTAUTH_CLIENT_ROLE_ARN"] == "arn:aws:iam::123456789012:role/r"
    assert signer["POWERTOOLS_LOG_LEVEL"] == "INFO"  # from Globals
    assert signer["IOTAUTH_TABLE"] == "t"  # the per-user rate limit's counters
    assert signer["IOTAUTH_SIGNER_REQUESTS_PER_MINUTE"] == "12"
    authorizer = template.function_environment("AuthorizerFunction", {"CredentialsTable": "t"})
    assert authorizer["IOTAUTH_TABLE"] == "t"
    assert authorizer["IOTAUTH_LOCKOUT_THRESHOLD"] == "5"
    assert authorizer["IOTAUTH_SHARED_TOPIC_ROOTS"] == "chat"  # reserved at run time
    # What the local stack does not stand in for is an error, not a silent gap.
    with pytest.raises(TemplateError, match="CredentialsTable"):
        template.function_environment("AuthorizerFunction")


def test_resolution_of_sub_join_select(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Parameters:\n"
        "  L: {Type: CommaDelimitedList, Default: 'a,b'}\n"
        "  S: {Type: String, Default: x}\n"
        "Resources:\n"
        "  R: {Type: AWS::SNS::Topic}\n"
        "Outputs:\n"
        "  A: {Value: !Sub ['${S}-${V}-${AWS::Region}-${!Literal}', {V: !Select [1, !Ref L]}]}\n"
        "  B: {Value: !Join ['+', [!Ref S, !Ref L]]}\n"
        "  C: {Value: !Sub '${R.Arn}'}\n"
        "  D: {Value: !If [c, a, b]}\n",
        encoding="utf-8",
    )
    template = Template.load(path, ARN)
    outputs = template.document["Outputs"]
    assert template.resolve(outputs["A"]["Value"]) == "x-b-us-east-1-${Literal}"
    assert template.resolve(outputs["B"]["Value"]) == "x+a+b"
    assert template.resolve(outputs["C"]["Value"], {"R.Arn": "arn:r"}) == "arn:r"
    with pytest.raises(TemplateError):
        template.resolve(outputs["C"]["Value"])
    with pytest.raises(TemplateError, match="Fn::If"):
        template.resolve(outputs["D"]["Value"])


# --- the running stack ----------------------------------------------------------------------


def _iam(info: StackInfo) -> Any:
    return stack_client(info, "iam")


@pytest.mark.e2e
def test_running_stack_role_is_the_templates(stack: StackInfo) -> None:
    iam = _iam(stack)
    role = stack.client_role_arn.rsplit("/", 1)[1]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    expected = Template.load(TEMPLATE_PATH, ARN).role_policies("IotClientRole")
    assert sorted(names) == sorted(expected)
    for name in names:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        assert document == expected[name]


@pytest.mark.e2e
def test_overridden_parameters_reach_the_role_and_the_signer(
    clients: Callable[..., Mqtt],
) -> None:
    parameters = {"WebSharedTopicRoot": "news", "WebRooms": "news/desk"}
    with LocalStack(LocalPorts.any_free(), parameters=parameters) as running:
        info = running.info
        assert info.chat_room == "news/desk"
        answer = signed_url(info, "alice")
        me = answer["clientId"]
        assert answer["rooms"] == ["news/desk"]
        assert f"news/desk/{me}" in answer["topics"]["publish"]
        assert not [t for t in answer["topics"]["publish"] if t.startswith("chat/")]
        browser = clients(me, "ws")
        assert connect_ws(browser, info, answer["url"])
        assert browser.subscribe("news/desk/+")
        browser.publish(f"news/desk/{me}", b"hello", qos=1)
        message = browser.next_message()
        assert (message.topic, message.payload) == (f"news/desk/{me}", b"hello")
        assert not browser.subscribe("chat/lobby/+")
        browser.publish("news/desk", b"nope", qos=1)  # the room itself: no sender, refused
        assert browser.disconnected.wait(5)
