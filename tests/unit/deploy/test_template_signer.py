"""template.yaml's signer: no anonymous request reaches the function (every route that invokes
it has the JWT authorizer; API Gateway answers CORS preflights itself), the global throttle,
the per-user rate limit's settings and its narrow IAM, the disabled-user check's read, the
operators' write of the client role's deny list (that role only), the room that list gets
in IAM's inline-policy quota, and the reserved concurrency."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.browser.rate_limit import KEY_PREFIX, LIMIT_VARIABLE, RateRule
from iotauth.identities.web_users import (
    DENY_LIST_KEY,
    DENY_POLICY_BUDGET,
    MAX_CREDENTIAL_SECONDS,
    ROLE_INLINE_LIMIT,
    WEBUSER_PREFIX,
)
from iotauth.local.stack import TEMPLATE_PATH
from iotauth.local.template import Template

ARN = ArnContext("aws", "us-east-1", "123456789012")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return Template.load(TEMPLATE_PATH, ARN).document


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _http_api_events(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, resource in doc["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] in {"HttpApi", "Api"}:
                found.append((name, event["Properties"]))
    return found


def test_every_route_that_invokes_a_function_needs_a_jwt(doc: dict[str, Any]) -> None:
    resources = doc["Resources"]
    # Only SAM-generated routes (no hand-written routes or integrations to forget).
    assert not [k for k, v in resources.items() if v["Type"].startswith("AWS::ApiGatewayV2::")]
    assert [k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Api"] == []
    apis = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::HttpApi"}
    assert apis == {"SignerApi"}
    auth = resources["SignerApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "UserJwt"
    jwt = auth["Authorizers"]["UserJwt"]
    assert jwt["IdentitySource"] == "$request.header.Authorization"
    assert jwt["JwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": {"Ref": "JwtAudience"},
    }
    routes = _http_api_events(doc)
    assert routes == [
        ("SignerFunction", {"ApiId": {"Ref": "SignerApi"}, "Method": "GET", "Path": "/mqtt-url"})
    ]
    for _, props in routes:
        # No route opts out of the default authorizer, none catches OPTIONS (a preflight
        # carries no token) or every method, and there is no $default route.
        assert "Auth" not in props
        assert props["Method"].upper() not in {"OPTIONS", "ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD"}
        assert props["Path"] not in {"$default", "/{proxy+}"}


def test_api_gateway_answers_cors_preflights(doc: dict[str, Any]) -> None:
    """With a CorsConfiguration, API Gateway answers OPTIONS itself (no route, no function)
    and adds the CORS headers to the function's answers, ignoring the function's own."""
    cors = doc["Resources"]["SignerApi"]["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == {"Ref": "AllowedOrigins"}
    assert set(cors["AllowMethods"]) == {"GET", "OPTIONS"}
    assert "authorization" in [h.lower() for h in cors["AllowHeaders"]]
    # A 429's Retry-After is not CORS-safelisted: exposed, or the page cannot read it.
    assert [h.lower() for h in cors["ExposeHeaders"]] == ["retry-after"]
    assert "AllowCredentials" not in cors  # a bearer header, no cookies


def test_the_global_throttle_and_reserved_concurrency(doc: dict[str, Any]) -> None:
    settings = doc["Resources"]["SignerApi"]["Properties"]["DefaultRouteSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (20, 50)
    params = doc["Parameters"]
    signer = doc["Resources"]["SignerFunction"]
    assert signer["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "SignerReservedConcurrency"
    }
    assert params["SignerReservedConcurrency"]["MinValue"] >= 1  # 0 would refuse everyone
    # The checkov skip that rested on the throttle alone is gone with the reservation.
    assert "CKV_AWS_115" not in TEMPLATE_PATH.read_text(encoding="utf-8")


def test_the_per_user_limit_reaches_the_function(doc: dict[str, Any]) -> None:
    template = Template.load(TEMPLATE_PATH, ARN)
    env = template.function_environment(
        "SignerFunction",
        {"IotClientRole.Arn": "arn:aws:iam::123456789012:role/r", "CredentialsTable": "t"},
    )
    assert env["IOTAUTH_TABLE"] == "t"
    param = doc["Parameters"]["SignerRequestsPerUserPerMinute"]
    assert env[LIMIT_VARIABLE] == str(param["Default"])
    assert param["MinValue"] >= 1  # always on when deployed (0 would turn it off)
    assert RateRule.from_env(env) == RateRule(int(param["Default"]))
    RateRule(int(param["MaxValue"]))  # the whole range is one the code accepts
    # The role must exist before the first invocation writes a counter.
    assert "SignerTablePolicy" in _list(doc["Resources"]["SignerFunction"]["DependsOn"])


def test_the_signer_may_only_count_and_check_disabled_users(doc: dict[str, Any]) -> None:
    resources = doc["Resources"]
    policy = resources["SignerTablePolicy"]["Properties"]
    assert policy["RoleName"] == {"Ref": "SignerRole"}
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Sid": "CountRequestsPerUser",
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": {"Fn::GetAtt": ["CredentialsTable", "Arn"]},
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{KEY_PREFIX}*"]}},
        },
        {
            "Sid": "CheckDisabledUsers",
            "Effect": "Allow",
            "Action": "dynamodb:GetItem",
            "Resource": {"Fn::GetAtt": ["CredentialsTable", "Arn"]},
            "Condition": {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{WEBUSER_PREFIX}*"]}
            },
        },
    ]
    # The deny list's own item is outside what the signer may read (its key only looks alike).
    assert not DENY_LIST_KEY.startswith(WEBUSER_PREFIX)
    # No other grant of the signer's names the table or any DynamoDB action, and the role
    # itself references neither the table nor the key (the key's policy names the role).
    for name, resource in resources.items():
        if name == "SignerTablePolicy" or resource["Type"] != "AWS::IAM::RolePolicy":
            continue
        if resource["Properties"]["RoleName"] == {"Ref": "SignerRole"}:
            assert "dynamodb:" not in str(resource), name
    role_text = str(resources["SignerRole"])
    assert "dynamodb:" not in role_text
    assert "CredentialsTable" not in role_text and "CredentialsKey" not in role_text
    # The key lets the signer's role use it only through DynamoDB, never to decrypt directly.
    statements = resources["CredentialsKey"]["Properties"]["KeyPolicy"]["Statement"]
    mine = [
        s for s in statements if s["Principal"].get("AWS") == {"Fn::GetAtt": ["SignerRole", "Arn"]}
    ]
    assert len(mine) == 1
    assert set(_list(mine[0]["Action"])) == {"kms:Decrypt", "kms:DescribeKey"}
    assert mine[0]["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"
    }


def test_the_table_expires_the_counters(doc: dict[str, Any]) -> None:
    ttl = doc["Resources"]["CredentialsTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiresAt", "Enabled": True}  # what the counter sets


def test_operators_may_write_only_the_client_roles_inline_policies(doc: dict[str, Any]) -> None:
    statements = doc["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    iam = [s for s in statements if any(str(a).startswith("iam:") for a in _list(s["Action"]))]
    assert iam == [
        {
            "Sid": "DenyDisabledBrowserUsers",
            "Effect": "Allow",
            "Action": ["iam:PutRolePolicy", "iam:DeleteRolePolicy"],
            "Resource": {"Fn::GetAtt": ["IotClientRole", "Arn"]},
        }
    ]
    # The table grant (records and the deny list item) is the table's, already there.
    table = next(s for s in statements if s.get("Sid") == "ManageIdentities")
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"} <= set(table["Action"])


def test_the_client_role_leaves_the_deny_list_its_budget(doc: dict[str, Any]) -> None:
    """IAM counts a role's inline policies together (10,240 characters, no whitespace): the
    template's own must leave DENY_POLICY_BUDGET, even with a long root and partition."""
    role = doc["Resources"]["IotClientRole"]["Properties"]
    assert role["MaxSessionDuration"] == MAX_CREDENTIAL_SECONDS  # the deny list's retention
    long_root = "r" * 60
    for arn in (ARN, ArnContext("aws-us-gov", "us-gov-west-1", "123456789012")):
        template = Template.load(TEMPLATE_PATH, arn, {"WebSharedTopicRoot": long_root})
        policies = template.role_policies("IotClientRole")
        assert list(policies) == ["web-clients"]
        size = sum(len(json.dumps(p, separators=(",", ":"))) for p in policies.values())
        assert size + DENY_POLICY_BUDGET <= ROLE_INLINE_LIMIT, size
