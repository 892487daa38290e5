"""template.yaml's SnapStart option: off by default; IoT and its Lambda permission name the
authorizer's alias (a published version, which SnapStart needs), so switching it on or off
never changes the ARN IoT invokes."""

from __future__ import annotations

from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.local.stack import TEMPLATE_PATH
from iotauth.local.template import Template

ALIAS = {"Ref": "AuthorizerFunction.Alias"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return Template.load(TEMPLATE_PATH, ArnContext("aws", "us-east-1", "123456789012")).document


def test_snapstart_is_an_option_off_by_default(doc: dict[str, Any]) -> None:
    parameter = doc["Parameters"]["AuthorizerSnapStart"]
    assert parameter["Default"] == "false"
    assert sorted(parameter["AllowedValues"]) == ["false", "true"]
    assert doc["Conditions"]["UseAuthorizerSnapStart"] == {
        "Fn::Equals": [{"Ref": "AuthorizerSnapStart"}, "true"]
    }
    props = doc["Resources"]["AuthorizerFunction"]["Properties"]
    assert props["SnapStart"] == {
        "Fn::If": [
            "UseAuthorizerSnapStart",
            {"ApplyOn": "PublishedVersions"},
            {"ApplyOn": "None"},
        ]
    }
    assert doc["Globals"]["Function"]["Runtime"] == "python3.13"  # SnapStart: Python >= 3.12


def test_iot_invokes_the_published_alias(doc: dict[str, Any]) -> None:
    props = doc["Resources"]["AuthorizerFunction"]["Properties"]
    assert props["AutoPublishAlias"] == "live"
    assert props["AutoPublishAliasAllProperties"] is True  # a SnapStart switch publishes
    assert doc["Resources"]["IotAuthorizer"]["Properties"]["AuthorizerFunctionArn"] == ALIAS
    permission = doc["Resources"]["AuthorizerInvokePermission"]["Properties"]
    assert permission["FunctionName"] == ALIAS
    assert permission["Principal"] == "iot.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["IotAuthorizer", "Arn"]}
