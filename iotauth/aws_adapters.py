"""boto3 implementations of the signer's ports (:mod:`iotauth.web_signing`).

Clients are created lazily (boto3 costs ~300 ms to import, and a client must be created
after a test's moto mock is active) with short timeouts: a browser waits on these calls.
boto3 honours ``AWS_ENDPOINT_URL``, which the local stand-in uses to point at moto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iotauth.web_signing import SignerUnavailable, TemporaryCredentials

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_sts import STSClient

__all__ = ["IotEndpointResolver", "StsCredentialIssuer", "client"]


def client(service: str) -> Any:
    import boto3  # noqa: PLC0415 - deferred: see the module docstring
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        connect_timeout=2,
        read_timeout=3,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.client(service, config=config)  # type: ignore[call-overload]


class StsCredentialIssuer:
    def __init__(self, sts: STSClient | None = None) -> None:
        self._sts = sts

    def assume_role(
        self, *, role_arn: str, session_name: str, policy: str, duration_seconds: int
    ) -> TemporaryCredentials:
        try:
            if self._sts is None:
                self._sts = client("sts")
            response = self._sts.assume_role(
                RoleArn=role_arn,
                RoleSessionName=session_name,
                Policy=policy,
                DurationSeconds=duration_seconds,
            )
            creds = response["Credentials"]
            return TemporaryCredentials(
                access_key_id=creds["AccessKeyId"],
                secret_access_key=creds["SecretAccessKey"],
                session_token=creds["SessionToken"],
                expiration=creds["Expiration"],
            )
        except Exception as exc:  # botocore errors, throttling, timeouts, malformed replies
            raise SignerUnavailable("sts:AssumeRole failed") from exc


class IotEndpointResolver:
    """The configured endpoint, else ``iot:DescribeEndpoint`` (``iot:Data-ATS``) once."""

    def __init__(self, configured: str | None = None, iot: IoTClient | None = None) -> None:
        self._endpoint = configured or None
        self._iot = iot

    def data_endpoint(self) -> str:
        if self._endpoint is None:
            try:
                if self._iot is None:
                    self._iot = client("iot")
                address = self._iot.describe_endpoint(endpointType="iot:Data-ATS")
                self._endpoint = address["endpointAddress"]
            except Exception as exc:
                raise SignerUnavailable("iot:DescribeEndpoint failed") from exc
        return self._endpoint
