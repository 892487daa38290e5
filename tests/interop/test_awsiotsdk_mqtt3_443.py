"""awsiotsdk's ``mqtt_connection_builder.direct_with_custom_authorizer``: MQTT 3.1.1 over TLS.

The builder overwrites ``port`` with 443 and sets ALPN ``mqtt`` (awsiot 1.31.0,
``_with_custom_authorizer``): it cannot be pointed at a free port, so this module runs
against a stack whose IoT port is 443 (one test run at a time, through a lock file), and
skips only when 443 cannot be bound here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt_connection_builder

from iotauth.local.stack import StackInfo
from tests.interop.conftest import Device, make_device_factory
from tests.interop.crt3 import Crt3, round_trip_and_refusals


@pytest.fixture
def events() -> Iterator[Crt3]:
    made = Crt3()
    yield made
    made.disconnect()


def connection(info: StackInfo, device: Device, events: Crt3, password: str) -> object:
    return mqtt_connection_builder.direct_with_custom_authorizer(
        endpoint="localhost",  # a host name: the SDK sends SNI
        ca_filepath=str(info.ca_cert_path),
        client_id=device.name,
        clean_session=True,
        auth_username=device.name,
        auth_authorizer_name=info.authorizer_name,
        auth_password=password,
        **events.callbacks(),
    )


def test_direct_with_custom_authorizer_on_443(stack_443: StackInfo, events: Crt3) -> None:
    device = make_device_factory(stack_443)()
    assert not events.connect(connection(stack_443, device, events, device.secret))[
        "session_present"
    ]
    error = round_trip_and_refusals(events, device.own_topic, device.foreign_topic)
    assert isinstance(error, AwsCrtError) and error.name == "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"


def test_direct_with_custom_authorizer_wrong_password(stack_443: StackInfo, events: Crt3) -> None:
    device = make_device_factory(stack_443)()
    with pytest.raises(AwsCrtError) as refused:
        events.connect(connection(stack_443, device, events, device.secret + "x"))
    # The wire carries CONNACK return code 5 (as paho and mqtt.js report it); awscrt 0.36.1's
    # MQTT 3.1.1 client surfaces it as a protocol error.
    assert isinstance(refused.value, AwsCrtError)
    assert refused.value.name == "AWS_ERROR_MQTT_PROTOCOL_ERROR"
