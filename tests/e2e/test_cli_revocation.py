"""`iotauth devices disable|rotate|remove|disconnect` against the local stack, as an operator
runs them (AWS_ENDPOINT_URL = the stack's AWS endpoint, which answers IoT's DeleteConnection):
the device's live connection is gone within a second, and it cannot come back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from iotauth.wire import aliyun
from tests.cli_support import Run, cli_runner
from tests.e2e.conftest import Mqtt, unique, username_for
from tests.stack_support import point_cli_at

pytestmark = pytest.mark.e2e
Cli = Run


@pytest.fixture(scope="module")
def running() -> Iterator[LocalStack]:
    with LocalStack(LocalPorts.any_free()) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(running: LocalStack) -> StackInfo:
    """This module's stack (the object too: its gateway's live client ids)."""
    return running.info


@pytest.fixture
def cli(
    stack: StackInfo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    point_cli_at(stack, monkeypatch)

    yield cli_runner(monkeypatch, capsys)


def _connect(stack: StackInfo, clients: Callable[..., Mqtt], name: str, secret: str) -> Mqtt:
    device = clients(name)
    assert device.connect(stack.mqtt_port, username=username_for(stack, name), password=secret)
    return device


def test_disable_closes_the_live_connection_within_a_second(
    stack: StackInfo, running: LocalStack, cli: Cli, clients: Callable[..., Mqtt]
) -> None:
    name = unique("revoked")
    code, secret, _ = cli("devices", "add", name)
    assert code == 0
    device = _connect(stack, clients, name, secret.strip())
    assert name in running.live_client_ids()
    code, _, err = cli("devices", "disable", name)
    assert code == 0, err
    assert device.disconnected.wait(1.0), "still connected a second after disable"
    assert f"closed live connections: {name}" in err
    assert name not in running.live_client_ids()
    again = clients(name)
    assert not again.connect(
        stack.mqtt_port, username=username_for(stack, name), password=secret.strip()
    )


def test_rotate_closes_and_only_the_new_secret_reconnects(
    stack: StackInfo, cli: Cli, clients: Callable[..., Mqtt]
) -> None:
    name = unique("rotated")
    old = cli("devices", "add", name)[1].strip()
    device = _connect(stack, clients, name, old)
    code, new, err = cli("devices", "rotate", name)
    assert code == 0, err
    assert device.disconnected.wait(1.0)
    assert not clients(name).connect(
        stack.mqtt_port, username=username_for(stack, name), password=old
    )
    assert _connect(stack, clients, name, new.strip()) is not None


def test_remove_and_disconnect(stack: StackInfo, cli: Cli, clients: Callable[..., Mqtt]) -> None:
    name = unique("removed")
    secret = cli("devices", "add", name)[1].strip()
    device = _connect(stack, clients, name, secret)
    code, _, err = cli("devices", "remove", name)
    assert code == 0 and f"closed live connections: {name}" in err
    assert device.disconnected.wait(1.0)
    code, _, err = cli("devices", "disconnect", name, "--client-id", name)
    assert code == 0 and "no live connection found" in err


def test_timestamped_aliyun_session_is_bounded_and_closable_by_its_full_id(
    stack: StackInfo, cli: Cli, clients: Callable[..., Mqtt]
) -> None:
    """Its client id carries the signed timestamp: `disable` cannot name it and says how long
    the session lasts; the session's full id (from the gateway, or IoT's logs) closes it."""
    device_name = unique("dev")
    code, _, _ = cli(
        "devices",
        "add-aliyun",
        "--product-key",
        "a1Revoke",
        "--device-name",
        device_name,
        "--device-secret-stdin",
        stdin=b"TEST-ONLY-revoke-secret",
    )
    assert code == 0
    creds = aliyun.mqtt_credentials(
        "a1Revoke",
        device_name,
        "TEST-ONLY-revoke-secret",
        f"a1Revoke&{device_name}",
        timestamp=str(int(time.time() * 1000)),
        securemode=3,
    )
    device = clients(creds.client_id)
    assert device.connect(stack.mqtt_port, username=creds.username, password=creds.password)
    code, _, err = cli("devices", "disable", f"{device_name}&a1Revoke")
    assert code == 0
    assert "no live connection found" in err and "ends within 3600 s" in err
    assert not device.disconnected.is_set()
    code, _, err = cli("devices", "disconnect", "x", "--client-id", creds.client_id)
    assert code == 0 and "closed live connections" in err
    assert device.disconnected.wait(1.0)
