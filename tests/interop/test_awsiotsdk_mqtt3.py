"""AWS IoT Device SDK v2 for Python, MQTT 3.1.1 over WebSocket: ``awsiot.mqtt_connection_builder``.

``websockets_with_custom_authorizer`` (wss at ``/mqtt``; authorizer name and SDK metrics in
the username, password in CONNECT) and ``websockets_with_default_aws_signing`` (the SDK's
own SigV4 over awscrt, ``X-Amz-SignedHeaders=connection;host``; credentials from moto's
STS) both honour ``port=``: the stand-in's IoT port on a free port. (The direct TLS builder
always dials 443: test_awsiotsdk_mqtt3_443.py.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from awscrt import auth
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt_connection_builder

from iotauth.local.stack import StackInfo
from tests.interop.conftest import Device, iot_port, web_user
from tests.interop.crt3 import Crt3, round_trip_and_refusals


def custom_auth_connection(info: StackInfo, device: Device, events: Crt3, password: str) -> Any:
    return mqtt_connection_builder.websockets_with_custom_authorizer(
        endpoint="localhost",  # a host name: the SDK sends SNI
        port=iot_port(info),
        ca_filepath=str(info.ca_cert_path),
        client_id=device.name,
        clean_session=True,
        auth_username=device.name,
        auth_authorizer_name=info.authorizer_name,
        auth_password=password,
        **events.callbacks(),
    )


def test_websockets_with_custom_authorizer(
    stack: StackInfo, new_device: Callable[[], Device], crt3: Callable[[], Crt3]
) -> None:
    device, events = new_device(), crt3()
    assert not events.connect(custom_auth_connection(stack, device, events, device.secret))[
        "session_present"
    ]
    error = round_trip_and_refusals(events, device.own_topic, device.foreign_topic)
    assert isinstance(error, AwsCrtError) and error.name == "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"


def test_websockets_with_custom_authorizer_wrong_password(
    stack: StackInfo, new_device: Callable[[], Device], crt3: Callable[[], Crt3]
) -> None:
    device, events = new_device(), crt3()
    with pytest.raises(AwsCrtError) as refused:
        events.connect(custom_auth_connection(stack, device, events, device.secret + "x"))
    # The wire carries CONNACK return code 5 (as paho and mqtt.js report it); awscrt 0.36.1's
    # MQTT 3.1.1 client surfaces it as a protocol error.
    assert isinstance(refused.value, AwsCrtError)
    assert refused.value.name == "AWS_ERROR_MQTT_PROTOCOL_ERROR"


def test_websockets_with_default_aws_signing(stack: StackInfo, crt3: Callable[[], Crt3]) -> None:
    user, events = web_user(stack), crt3()
    connection = mqtt_connection_builder.websockets_with_default_aws_signing(
        region=stack.region,
        credentials_provider=auth.AwsCredentialsProvider.new_static(
            user.access_key, user.secret_key, user.session_token
        ),
        endpoint="localhost",  # a host name: the SDK sends SNI
        port=iot_port(stack),
        ca_filepath=str(stack.ca_cert_path),
        client_id=user.client_id,
        clean_session=True,
        **events.callbacks(),
    )
    events.connect(connection)
    error = round_trip_and_refusals(events, user.own_topic, user.foreign_topic)
    assert isinstance(error, AwsCrtError) and error.name == "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"
