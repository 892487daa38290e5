"""Reaching a running local stack's moto (:class:`~iotauth.local.stack.StackInfo`): its AWS
clients, its identity table and its STS. Shared by the e2e and interop suites.

Moto takes any credentials; these are fixed so that nothing from the host is read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iotauth.identities.store import DynamoDBStore
    from iotauth.local.stack import StackInfo


def stack_client(info: StackInfo, service: str) -> Any:
    """A boto3 client for ``service`` at the stack's AWS endpoint (moto)."""
    import boto3

    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=info.aws_endpoint_url,
        region_name=info.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def stack_store(info: StackInfo) -> DynamoDBStore:
    """The stack's identity table."""
    from iotauth.identities.store import DynamoDBStore

    return DynamoDBStore(info.table_name, client=stack_client(info, "dynamodb"))


def assume_client_role(info: StackInfo, policy: dict[str, Any] | str, name: str) -> dict[str, str]:
    """Credentials from moto's STS for the IoT client role, bound by the session ``policy``
    (a document, or its JSON text as it is sent)."""
    answer = stack_client(info, "sts").assume_role(
        RoleArn=info.client_role_arn,
        RoleSessionName=name,
        Policy=policy if isinstance(policy, str) else json.dumps(policy),
        DurationSeconds=900,
    )["Credentials"]
    return {
        "access_key": answer["AccessKeyId"],
        "secret_key": answer["SecretAccessKey"],
        "session_token": answer["SessionToken"],
    }


def point_cli_at(stack: Any, monkeypatch: Any) -> None:
    """The environment ``eval "$(iotauth local env)"`` gives a shell, for an in-process CLI."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "IOTAUTH_IOT_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint_url)
    monkeypatch.setenv("AWS_REGION", stack.region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", stack.region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("IOTAUTH_TABLE", stack.table_name)
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", stack.client_role_arn)
