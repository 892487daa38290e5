"""IoT's data-plane DeleteConnection on the stack's AWS endpoint, called with boto3's
``iot-data`` client exactly as a user (or ``iotauth devices disconnect``) would."""

from __future__ import annotations

import queue
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from iotauth.local.stack import LocalStack, StackInfo
from tests.e2e.conftest import Mqtt, unique, username_for
from tests.stack_support import stack_client

pytestmark = pytest.mark.e2e


def iot_data(info: StackInfo) -> object:
    return stack_client(info, "iot-data")


@pytest.mark.parametrize("version", [4, 5])
def test_delete_connection_closes_the_live_connection(
    local_stack: LocalStack,
    stack: StackInfo,
    add_device: Callable[..., str],
    clients: Callable[..., Mqtt],
    version: int,
) -> None:
    name = unique("revoked")
    secret = add_device(name)
    device = clients(name, "tcp", version)
    assert device.connect(stack.mqtt_port, username=username_for(stack, name), password=secret)
    assert name in local_stack.live_client_ids()
    client = iot_data(stack)
    answer = client.delete_connection(clientId=name)  # type: ignore[attr-defined]
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert device.disconnected.wait(1.0)  # "within a second"
    if version == 5:
        assert device.disconnect_reason is not None
        assert device.disconnect_reason.value == 0x98  # Administrative action
    with pytest.raises(ClientError) as refused:
        client.delete_connection(clientId=name)  # type: ignore[attr-defined]
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert name not in local_stack.live_client_ids()


def test_client_ids_are_percent_encoded_and_options_accepted(
    stack: StackInfo, add_device: Callable[..., str], clients: Callable[..., Mqtt]
) -> None:
    # A client id that needs encoding in a URL path: Aliyun's "pk&dn" form has '&'.
    name = unique("pk")
    secret = add_device(name)
    device = clients(name)
    assert device.connect(stack.mqtt_port, username=username_for(stack, name), password=secret)
    client = iot_data(stack)
    for other in (name + "&other", f"{name}/sub", f"{name}-ü", f"{name}?x=1"):
        with pytest.raises(ClientError) as refused:
            client.delete_connection(clientId=other)  # type: ignore[attr-defined]
        assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException", other
    assert not device.disconnected.is_set()
    client.delete_connection(  # type: ignore[attr-defined]
        clientId=name, cleanSession=True, preventWillMessage=True
    )
    assert device.disconnected.wait(1.0)


def test_other_requests_still_reach_moto(stack: StackInfo) -> None:
    dynamodb = stack_client(stack, "dynamodb")
    assert stack.table_name in dynamodb.list_tables()["TableNames"]


@pytest.mark.parametrize("prevent_will", [False, True])
def test_prevent_will_message(
    stack: StackInfo,
    add_device: Callable[..., str],
    clients: Callable[..., Mqtt],
    prevent_will: bool,
) -> None:
    name = unique("willing")
    secret = add_device(name)
    watcher_name = unique("watcher")
    watcher = clients(watcher_name)
    watcher_secret = add_device(watcher_name, subscribe=(f"{name}/status",))
    assert watcher.connect(
        stack.mqtt_port, username=username_for(stack, watcher_name), password=watcher_secret
    )
    assert watcher.subscribe(f"{name}/status")
    device = clients(name)
    device.client.will_set(f"{name}/status", b"gone", qos=1)
    assert device.connect(stack.mqtt_port, username=username_for(stack, name), password=secret)
    iot_data(stack).delete_connection(  # type: ignore[attr-defined]
        clientId=name, preventWillMessage=prevent_will
    )
    assert device.disconnected.wait(1.0)
    if prevent_will:
        # Nothing within a second (mosquitto publishes a will at once when it is due).
        with pytest.raises(queue.Empty):
            watcher.next_message(timeout=1.0)
    else:
        assert watcher.next_message().payload == b"gone"
