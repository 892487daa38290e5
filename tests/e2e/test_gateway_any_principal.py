"""Presigned URLs from any IAM principal of the AWS stand-in, as IoT Core accepts them.

A user's own role (created with boto3 at the stand-in's AWS endpoint) or IAM user signs a
URL; the gateway evaluates its identity policies (inline, managed, a user's groups'), the
role's permissions boundary and the session policy, and an explicit Deny in any of them
wins. URLs are signed with the project's signer (``iotauth.wire.sigv4``) and, as oracles,
with botocore (``SigV4QueryAuth``) and awscrt (what the AWS IoT Device SDK signs with).
Real paho-mqtt clients connect over ws and over wss (TLS with SNI ``localhost``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from awscrt import auth, http

from iotauth.access.scoping import ArnContext
from iotauth.local.stack import StackInfo
from iotauth.wire.sigv4 import presign_mqtt_url
from tests.e2e.conftest import Mqtt, unique
from tests.stack_support import stack_client

pytestmark = pytest.mark.e2e

MakeClient = Callable[..., Mqtt]
ACCOUNT = "123456789012"
ARN = ArnContext("aws", "us-east-1", ACCOUNT)
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}
Creds = dict[str, Any]


# --- IAM in the stand-in, as a user would set it up ----------------------------------------


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": list(resources)}


def deny(action: str | list[str], *resources: str) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": list(resources)}


def own_topics(client_id: str) -> dict[str, Any]:
    """``iot:*`` on the client id and its own topics only."""
    return allow(
        "iot:*",
        ARN.resource("client", client_id),
        ARN.resource("topic", f"{client_id}/*"),
        ARN.resource("topicfilter", f"{client_id}/*"),
    )


def managed_policy(info: StackInfo, *statements: dict[str, Any]) -> str:
    answer = stack_client(info, "iam").create_policy(
        PolicyName=unique("policy"), PolicyDocument=document(*statements)
    )
    arn: str = answer["Policy"]["Arn"]
    return arn


def new_role(
    info: StackInfo,
    *,
    inline: tuple[dict[str, Any], ...] = (),
    managed: tuple[dict[str, Any], ...] = (),
    boundary: tuple[dict[str, Any], ...] = (),
) -> str:
    iam = stack_client(info, "iam")
    name = unique("my-role")
    extra = {"PermissionsBoundary": managed_policy(info, *boundary)} if boundary else {}
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST), **extra)[
        "Role"
    ]["Arn"]
    if inline:
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=document(*inline))
    if managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=managed_policy(info, *managed))
    return arn


def assume(info: StackInfo, role_arn: str, session_policy: str | None = None) -> Creds:
    extra = {"Policy": session_policy} if session_policy else {}
    answer = stack_client(info, "sts").assume_role(
        RoleArn=role_arn, RoleSessionName=unique("session"), DurationSeconds=900, **extra
    )["Credentials"]
    return {
        "access_key": answer["AccessKeyId"],
        "secret_key": answer["SecretAccessKey"],
        "session_token": answer["SessionToken"],
    }


def new_user(
    info: StackInfo,
    *,
    managed: tuple[dict[str, Any], ...] = (),
    group_inline: tuple[dict[str, Any], ...] = (),
) -> Creds:
    """An IAM user with an access key (long-term: no session token)."""
    iam = stack_client(info, "iam")
    name = unique("my-user")
    iam.create_user(UserName=name)
    if managed:
        iam.attach_user_policy(UserName=name, PolicyArn=managed_policy(info, *managed))
    if group_inline:
        group = unique("my-group")
        iam.create_group(GroupName=group)
        iam.put_group_policy(
            GroupName=group, PolicyName="inline", PolicyDocument=document(*group_inline)
        )
        iam.add_user_to_group(GroupName=group, UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA")
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"], "user": name}


# --- signing: the project's signer and two oracles ----------------------------------------


def signed(info: StackInfo, creds: Creds, secure: bool = False) -> str:
    """The project's signer: ``ws://127.0.0.1:<ws>`` or ``wss://localhost:<iot>``."""
    endpoint = f"wss://localhost:{info.iot_port}" if secure else f"ws://127.0.0.1:{info.ws_port}"
    return presign_mqtt_url(
        endpoint,
        info.region,
        creds["access_key"],
        creds["secret_key"],
        creds.get("session_token"),
    )


def botocore_signed(info: StackInfo, creds: Creds) -> str:
    """botocore's ``SigV4QueryAuth`` (the token, if any, appended after signing)."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"https://localhost:{info.iot_port}/mqtt")
    SigV4QueryAuth(
        Credentials(creds["access_key"], creds["secret_key"]),
        "iotdevicegateway",
        info.region,
        expires=300,
    ).add_auth(request)
    url: str = request.prepare().url
    if creds.get("session_token"):
        url += "&X-Amz-Security-Token=" + quote(creds["session_token"], safe="")
    return url.replace("https://", "wss://", 1)


def crt_signed_path(info: StackInfo, creds: Creds) -> str:
    """awscrt, as the Device SDK signs: ``connection;host``, the token left out."""
    request = http.HttpRequest(
        "GET",
        "/mqtt",
        headers=http.HttpHeaders(
            [("Host", f"localhost:{info.iot_port}"), ("Connection", "Upgrade")]
        ),
    )
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(
            creds["access_key"], creds["secret_key"], creds.get("session_token")
        ),
        region=info.region,
        service="iotdevicegateway",
        omit_session_token=True,
        date=dt.datetime.now(dt.UTC),
    )
    path: str = auth.aws_sign_request(request, config).result(10).path
    return path


# --- connecting -----------------------------------------------------------------------------


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def connects(client: Mqtt, info: StackInfo, url_or_path: str) -> bool:
    """True: CONNACK accepted. False: the upgrade (HTTP 403) or the CONNECT was refused."""
    path = url_or_path if url_or_path.startswith("/") else path_of(url_or_path)
    port = info.iot_port if client.transport == "wss" else info.ws_port
    try:
        return client.connect(port, ws_path=path, ca_cert=info.ca_cert_path)
    except OSError:  # paho: WebsocketConnectionError, the upgrade got HTTP 403
        return False


def round_trip(client: Mqtt, topic: str) -> None:
    assert client.subscribe(topic)
    client.publish(topic, b"mine", qos=1)
    assert client.next_message().payload == b"mine"


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["managed", "inline"])
def test_own_role_connects_and_keeps_to_its_topics(
    stack: StackInfo, clients: MakeClient, how: str
) -> None:
    client_id = unique("my-device")
    policies = {how: (own_topics(client_id),)}
    creds = assume(stack, new_role(stack, **policies))  # no session policy

    client = clients(client_id, "ws")
    assert connects(client, stack, signed(stack, creds))
    round_trip(client, f"{client_id}/telemetry")
    client.publish(f"someone-else/{client_id}", b"not mine", qos=1)
    assert client.disconnected.wait(5)  # a refused PUBLISH ends an MQTT 3.1.1 connection


@pytest.mark.parametrize("signer", ["project", "botocore", "awscrt"])
def test_own_role_over_wss_with_each_signer(
    stack: StackInfo, clients: MakeClient, signer: str
) -> None:
    client_id = unique("my-device")
    creds = assume(stack, new_role(stack, managed=(own_topics(client_id),)))
    url = {
        "project": lambda: signed(stack, creds, secure=True),
        "botocore": lambda: botocore_signed(stack, creds),
        "awscrt": lambda: crt_signed_path(stack, creds),
    }[signer]()
    client = clients(client_id, "wss", 5)
    assert connects(client, stack, url)
    round_trip(client, f"{client_id}/telemetry")
    assert not client.subscribe("someone-else/#")


def test_role_without_an_iot_policy_is_refused(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("my-device")
    bare = assume(stack, new_role(stack))  # no policy at all: refused at the upgrade
    assert not connects(clients(client_id, "ws"), stack, signed(stack, bare))
    other = assume(stack, new_role(stack, managed=(allow("s3:*", "*"),)))
    assert not connects(clients(client_id, "ws"), stack, signed(stack, other))
    # A policy for another client id: the CONNECT is refused (iot:Connect), as IoT does.
    elsewhere = assume(stack, new_role(stack, inline=(own_topics("not-this-one"),)))
    assert not connects(clients(client_id, "ws"), stack, signed(stack, elsewhere))


def test_assumed_role_that_iam_does_not_hold_is_refused(
    stack: StackInfo, clients: MakeClient
) -> None:
    """moto's STS lets anyone assume any ARN; IAM would not have issued these credentials."""
    creds = assume(stack, f"arn:aws:iam::{ACCOUNT}:role/{unique('no-such-role')}")
    assert not connects(clients(unique("my-device"), "ws"), stack, signed(stack, creds))


def test_session_policy_narrows_the_role(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("my-device")
    role = new_role(stack, managed=(allow("iot:*", "*"),))
    wide = clients(client_id, "ws")
    assert connects(wide, stack, signed(stack, assume(stack, role)))
    assert wide.subscribe("anything/#")
    wide.close()

    narrow = clients(client_id, "ws")
    creds = assume(stack, role, document(own_topics(client_id)))
    assert connects(narrow, stack, signed(stack, creds))
    assert narrow.subscribe(f"{client_id}/#")
    assert not narrow.subscribe("anything/#")


def test_permissions_boundary_caps_the_role(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("my-device")
    role = new_role(stack, managed=(allow("iot:*", "*"),), boundary=(own_topics(client_id),))
    client = clients(client_id, "ws")
    assert connects(client, stack, signed(stack, assume(stack, role)))
    round_trip(client, f"{client_id}/telemetry")
    assert not client.subscribe("anything/#")
    # The boundary grants nothing for another client id, whatever the role allows.
    other = clients(unique("my-device"), "ws")
    assert not connects(other, stack, signed(stack, assume(stack, role)))


def test_explicit_deny_wins(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("my-device")
    locked = f"{client_id}/locked"
    role = new_role(
        stack,
        managed=(allow("iot:*", "*"),),
        inline=(deny("iot:Publish", ARN.resource("topic", locked)),),
    )
    client = clients(client_id, "ws")
    assert connects(client, stack, signed(stack, assume(stack, role)))
    round_trip(client, f"{client_id}/open")
    client.publish(locked, b"denied", qos=1)
    assert client.disconnected.wait(5)

    # A Deny in the session policy wins over the role's Allow.
    creds = assume(
        stack,
        role,
        document(allow("iot:*", "*"), deny("iot:Connect", ARN.resource("client", client_id))),
    )
    assert not connects(clients(client_id, "ws"), stack, signed(stack, creds))


# --- IAM users: long-term access keys ----------------------------------------------------


@pytest.mark.parametrize("signer", ["project", "botocore"])
def test_iam_user_with_an_attached_policy_connects(
    stack: StackInfo, clients: MakeClient, signer: str
) -> None:
    client_id = unique("my-device")
    creds = new_user(stack, managed=(own_topics(client_id),))
    if signer == "project":
        url = signed(stack, creds, secure=True)
    else:
        url = botocore_signed(stack, creds)
    assert "X-Amz-Security-Token" not in url
    client = clients(client_id, "wss")
    assert connects(client, stack, url)
    round_trip(client, f"{client_id}/telemetry")
    client.publish(f"someone-else/{client_id}", b"not mine", qos=1)
    assert client.disconnected.wait(5)


def test_iam_user_keys_refused_when_they_should_be(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("my-device")
    creds = new_user(stack, managed=(own_topics(client_id),))
    # Long-term keys carry no session token: a URL with one is not theirs.
    with_token = signed(stack, {**creds, "session_token": "FwoGZXIvYXdzEXAMPLETOKEN"})
    assert not connects(clients(client_id, "ws"), stack, with_token)
    # A user without any policy, and a deactivated key.
    assert not connects(clients(client_id, "ws"), stack, signed(stack, new_user(stack)))
    stack_client(stack, "iam").update_access_key(
        UserName=creds["user"], AccessKeyId=creds["access_key"], Status="Inactive"
    )
    assert not connects(clients(client_id, "ws"), stack, signed(stack, creds))


def test_iam_user_gets_its_groups_policies_and_their_deny(
    stack: StackInfo, clients: MakeClient
) -> None:
    client_id = unique("my-device")
    creds = new_user(stack, group_inline=(own_topics(client_id),))
    client = clients(client_id, "ws")
    assert connects(client, stack, signed(stack, creds))
    round_trip(client, f"{client_id}/telemetry")

    denied = new_user(
        stack,
        managed=(allow("iot:*", "*"),),
        group_inline=(deny("iot:*", ARN.resource("client", client_id)),),
    )
    assert not connects(clients(client_id, "ws"), stack, signed(stack, denied))
