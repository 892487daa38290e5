"""Helpers for the authorizer tests: identities in a store, events, a fixed clock."""

from __future__ import annotations

import base64
from typing import Any

from iotauth.access.scoping import ArnContext
from iotauth.connect.authenticate import Decision, Settings, authenticate
from iotauth.connect.event import parse_connect_event
from iotauth.identities.credentials import (
    generate_secret,
    hash_chosen_password,
    hash_generated_secret,
    issue_secret,
)
from iotauth.identities.records import IdentityRecord
from iotauth.identities.store import CredentialStore, IdentityAdmin
from iotauth.wire import aliyun

ARN = ArnContext(partition="aws", region="us-east-1", account="123456789012")
NOW = 1_700_000_000  # the clock of the tests (2023-11-14T22:13:20Z)
SETTINGS = Settings(table="iotauth-test")


def add_secret_identity(store: IdentityAdmin, username: str, **fields: Any) -> str:
    """A secret iotauth issued (as `devices add` makes one: lockout-exempt)."""
    secret, verifier = issue_secret()
    store.add_identity(
        IdentityRecord(username=username, kind="secret", verifier=verifier, **fields)
    )
    return secret


def add_restored_secret_identity(
    store: IdentityAdmin, username: str, secret: str | None = None, **fields: Any
) -> str:
    """A generated-shaped secret iotauth did not issue here (`--secret-stdin`, an import):
    the lockout applies to it."""
    secret = secret or generate_secret()
    verifier = hash_generated_secret(secret)
    store.add_identity(
        IdentityRecord(username=username, kind="secret", verifier=verifier, **fields)
    )
    return secret


def add_password_identity(
    store: IdentityAdmin, username: str, password: str, **fields: Any
) -> None:
    verifier = hash_chosen_password(password.encode())
    store.add_identity(
        IdentityRecord(username=username, kind="password", verifier=verifier, **fields)
    )


def add_aliyun_identity(
    store: IdentityAdmin, device_name: str, product_key: str, secret: str, **fields: Any
) -> None:
    store.add_identity(
        IdentityRecord(
            username=f"{device_name}&{product_key}",
            kind="aliyun",
            device_secret=secret,
            **fields,
        )
    )


def connect_event(
    username: str | None,
    password: bytes | str | None,
    client_id: str | None,
    *,
    suffix: str = "?x-amz-customauthorizer-name=iotauth&SDK=PythonV2&Version=1.22.0",
) -> dict[str, Any]:
    mqtt: dict[str, Any] = {}
    if username is not None:
        mqtt["username"] = username + suffix
    if password is not None:
        raw = password.encode() if isinstance(password, str) else password
        mqtt["password"] = base64.b64encode(raw).decode()
    if client_id is not None:
        mqtt["clientId"] = client_id
    return {
        "protocols": ["tls", "mqtt"],
        "signatureVerified": False,
        "protocolData": {"tls": {"serverName": "x-ats.iot.us-east-1.amazonaws.com"}, "mqtt": mqtt},
        "connectionMetadata": {"id": "11111111-2222-4333-8444-555555555555"},
    }


def aliyun_event(
    device_name: str,
    product_key: str,
    secret: str,
    *,
    client_id: str | None = None,
    timestamp: str | None = str(NOW * 1000),
    signmethod: str = "hmacsha1",
    securemode: str = "2",
    upper: bool = False,
) -> dict[str, Any]:
    inner = client_id or f"{product_key}&{device_name}"
    password = aliyun.sign(
        secret,
        client_id=inner,
        device_name=device_name,
        product_key=product_key,
        timestamp=timestamp,
        signmethod=signmethod,
    )
    params = f"securemode={securemode},signmethod={signmethod}"
    if timestamp is not None:
        params += f",timestamp={timestamp}"
    return connect_event(
        f"{device_name}&{product_key}",
        password.upper() if upper else password,
        f"{inner}|{params}|",
        suffix="?x-amz-customauthorizer-name=iotauth",
    )


def decide(
    store: CredentialStore,
    event: object,
    *,
    now: float = NOW,
    settings: Settings = SETTINGS,
) -> Decision:
    return authenticate(parse_connect_event(event), store, now=now, settings=settings, arn=ARN)
