"""AWS IoT Device SDK v2 for Python (awsiotsdk 1.31.0, awscrt 0.36.1), MQTT 5 builders.

``awsiot.mqtt5_client_builder`` honours ``port=``, so each test runs against the stand-in's
IoT port on a free port: ``direct_with_custom_authorizer`` (TLS, ALPN ``mqtt``, set by the
builder), ``websockets_with_custom_authorizer`` (wss at ``/mqtt``; the authorizer name rides
in the username) and ``websockets_with_default_aws_signing`` (wss with the SDK's own SigV4,
credentials from moto's STS). Only endpoint, port and CA differ from what one points at
IoT Core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from awscrt import auth, mqtt5
from awsiot import mqtt5_client_builder

from iotauth.local.stack import StackInfo
from tests.interop.conftest import WAIT, Device, WebUser, iot_port, web_user
from tests.interop.crt5 import ConnectRefused, Crt5


def custom_auth_client(
    info: StackInfo, device: Device, events: Crt5, transport: str, password: str | None = None
) -> Any:
    builder = {
        "tls": mqtt5_client_builder.direct_with_custom_authorizer,
        "wss": mqtt5_client_builder.websockets_with_custom_authorizer,
    }[transport]
    return builder(
        endpoint="localhost",  # a host name: the SDK sends SNI
        port=iot_port(info),
        ca_filepath=str(info.ca_cert_path),
        client_id=device.name,
        auth_username=device.name,
        auth_authorizer_name=info.authorizer_name,
        auth_password=device.secret if password is None else password,
        connack_timeout_ms=int(WAIT * 1000),
        **events.callbacks(),
    )


def sigv4_client(info: StackInfo, user: WebUser, events: Crt5) -> Any:
    credentials = auth.AwsCredentialsProvider.new_static(
        user.access_key, user.secret_key, user.session_token
    )
    return mqtt5_client_builder.websockets_with_default_aws_signing(
        region=info.region,
        credentials_provider=credentials,
        endpoint="localhost",  # a host name: the SDK sends SNI
        port=iot_port(info),
        ca_filepath=str(info.ca_cert_path),
        client_id=user.client_id,
        connack_timeout_ms=int(WAIT * 1000),
        **events.callbacks(),
    )


def round_trip_and_refusals(events: Crt5, own: str, foreign: str) -> None:
    assert events.subscribe(own) == mqtt5.SubackReasonCode.GRANTED_QOS_1
    assert events.publish(own, b"21.5") == mqtt5.PubackReasonCode.SUCCESS
    assert events.messages.get(timeout=WAIT) == (own, b"21.5")
    assert events.subscribe(foreign) == mqtt5.SubackReasonCode.NOT_AUTHORIZED
    assert events.publish(foreign, b"x") == mqtt5.PubackReasonCode.NOT_AUTHORIZED
    assert events.messages.empty()


@pytest.mark.parametrize("transport", ["tls", "wss"])
def test_custom_authorizer_round_trip_and_refusals(
    stack: StackInfo, new_device: Callable[[], Device], crt5: Callable[[], Crt5], transport: str
) -> None:
    device, events = new_device(), crt5()
    connack = events.start(custom_auth_client(stack, device, events, transport))
    assert connack.reason_code == mqtt5.ConnectReasonCode.SUCCESS
    round_trip_and_refusals(events, device.own_topic, device.foreign_topic)


@pytest.mark.parametrize("transport", ["tls", "wss"])
def test_custom_authorizer_wrong_password_is_refused_in_the_connack(
    stack: StackInfo, new_device: Callable[[], Device], crt5: Callable[[], Crt5], transport: str
) -> None:
    device, events = new_device(), crt5()
    client = custom_auth_client(stack, device, events, transport, password=device.secret + "x")
    with pytest.raises(ConnectRefused) as refused:
        events.start(client)
    assert refused.value.connack is not None
    assert refused.value.connack.reason_code == mqtt5.ConnectReasonCode.NOT_AUTHORIZED


def test_sigv4_round_trip_and_refusals(stack: StackInfo, crt5: Callable[[], Crt5]) -> None:
    user, events = web_user(stack), crt5()
    connack = events.start(sigv4_client(stack, user, events))
    assert connack.reason_code == mqtt5.ConnectReasonCode.SUCCESS
    round_trip_and_refusals(events, user.own_topic, user.foreign_topic)


def test_sigv4_with_a_wrong_secret_is_refused_at_the_handshake(
    stack: StackInfo, crt5: Callable[[], Crt5]
) -> None:
    user, events = web_user(stack), crt5()
    forged = WebUser(
        user.client_id, user.access_key, user.secret_key[:-1] + "x", user.session_token
    )
    with pytest.raises(ConnectRefused) as refused:
        events.start(sigv4_client(stack, forged, events))
    # IoT Core answers a bad signature with an HTTP error before any MQTT: no CONNACK.
    assert refused.value.connack is None
    assert "WEBSOCKET_UPGRADE_FAILURE" in str(refused.value.exception)
