"""iotauth.local.iam_principals against moto's IAM and STS (in process): who signed a
presigned URL, and the policy sets that bound it."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest

from iotauth.local.iam_principals import IamPrincipals, find_principal
from iotauth.wire.sigv4 import presign_mqtt_url

REGION = "us-east-1"
HOST = "127.0.0.1:18083"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def doc(action: str, effect: str = "Allow") -> str:
    statement = {"Effect": effect, "Action": action, "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def iam(moto_aws: None) -> Any:
    import boto3

    return boto3.client("iam", region_name=REGION)


@pytest.fixture
def sts(moto_aws: None) -> Any:
    import boto3

    return boto3.client("sts", region_name=REGION)


def role(iam: Any, name: str, boundary: str | None = None) -> str:
    extra = {"PermissionsBoundary": boundary} if boundary else {}
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST, **extra)["Role"][
        "Arn"
    ]
    return arn


def managed(iam: Any, name: str, document: str) -> str:
    arn: str = iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"]
    return arn


def verify(url: str) -> list[list[str]] | None:
    target = url.split(HOST, 1)[1]
    return IamPrincipals(REGION).verify(target, [("Host", HOST)], False)


def test_role_session_sets_identity_boundary_session(iam: Any, sts: Any) -> None:
    boundary = managed(iam, "boundary", doc("iot:Connect"))
    arn = role(iam, "mine", boundary)
    iam.put_role_policy(RoleName="mine", PolicyName="inline", PolicyDocument=doc("iot:Publish"))
    iam.attach_role_policy(RoleName="mine", PolicyArn=managed(iam, "m", doc("iot:Receive")))
    session = doc("iot:*")
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="session", Policy=session)["Credentials"]

    who = find_principal(creds["AccessKeyId"])
    assert who is not None and who.arn == arn
    assert who.session_token == creds["SessionToken"]
    assert who.policy_sets == (
        (doc("iot:Publish"), doc("iot:Receive")),
        (doc("iot:Connect"),),
        (session,),
    )
    assert creds["SecretAccessKey"] not in repr(who)
    assert creds["SessionToken"] not in repr(who)

    url = presign_mqtt_url(
        f"ws://{HOST}",
        REGION,
        creds["AccessKeyId"],
        creds["SecretAccessKey"],
        creds["SessionToken"],
    )
    assert verify(url) == [list(s) for s in who.policy_sets]
    assert verify(url[: url.index("&X-Amz-Security-Token=")]) is None  # token left out


def test_role_session_without_session_policy_has_the_roles_policies(iam: Any, sts: Any) -> None:
    arn = role(iam, "plain")
    iam.put_role_policy(RoleName="plain", PolicyName="p", PolicyDocument=doc("iot:*"))
    key = sts.assume_role(RoleArn=arn, RoleSessionName="session")["Credentials"]["AccessKeyId"]
    who = find_principal(key)
    assert who is not None and who.policy_sets == ((doc("iot:*"),),)


def test_refused_principals(iam: Any, sts: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="iotauth")
    arn = role(iam, "bare")  # no policy
    bare = sts.assume_role(RoleArn=arn, RoleSessionName="session")["Credentials"]
    assert find_principal(bare["AccessKeyId"]) is None
    ghost = "arn:aws:iam::123456789012:role/ghost"  # moto lets anyone assume it
    ghost_key = sts.assume_role(RoleArn=ghost, RoleSessionName="session")["Credentials"]
    assert find_principal(ghost_key["AccessKeyId"]) is None
    assert find_principal("ASIAUNKNOWNKEY000000") is None

    iam.put_role_policy(RoleName="bare", PolicyName="p", PolicyDocument=doc("iot:*"))
    assert find_principal(bare["AccessKeyId"]) is not None
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # past the session's expiry
    assert find_principal(bare["AccessKeyId"], now=later) is None
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("iotauth"))
    assert f"role {arn} has no identity policy" in logged  # ARNs only
    assert bare["SecretAccessKey"] not in logged and bare["SessionToken"] not in logged


def test_iam_user_long_term_keys(iam: Any) -> None:
    iam.create_user(UserName="u")
    iam.attach_user_policy(UserName="u", PolicyArn=managed(iam, "um", doc("iot:Connect")))
    iam.create_group(GroupName="g")
    iam.put_group_policy(GroupName="g", PolicyName="gp", PolicyDocument=doc("iot:*", "Deny"))
    iam.add_user_to_group(GroupName="g", UserName="u")
    key = iam.create_access_key(UserName="u")["AccessKey"]

    who = find_principal(key["AccessKeyId"])
    assert who is not None and who.session_token is None
    assert who.arn.endswith(":user/u")
    assert who.policy_sets == ((doc("iot:Connect"), doc("iot:*", "Deny")),)

    url = presign_mqtt_url(f"ws://{HOST}", REGION, key["AccessKeyId"], key["SecretAccessKey"])
    assert verify(url) == [[doc("iot:Connect"), doc("iot:*", "Deny")]]
    assert verify(url + "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE") is None

    iam.update_access_key(UserName="u", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert find_principal(key["AccessKeyId"]) is None
    assert verify(url) is None
