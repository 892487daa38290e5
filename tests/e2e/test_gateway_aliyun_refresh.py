"""Aliyun-signed devices through the local gateway, and what a refresh would do to them.

IoT Core re-runs the authorizer every ``refreshAfterInSeconds`` with the credentials of the
original CONNECT (the gateway replays that event). An Aliyun password signs a timestamp
that is stale after ±15 minutes, so the authorizer answers ``refreshAfterInSeconds`` =
``disconnectAfterInSeconds`` (one hour by default) for such devices: the connection is not
refreshed with stale credentials; it ends at disconnect time and the device reconnects with
a fresh timestamp.

The first tests use the local stack as it runs (real clock). The others run the real
authorizer handler against the stack's moto table behind a second gateway whose clock, and
the handler's, the test moves: an hour passes in no time.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.connect.authenticate import Settings
from iotauth.identities.records import ALIYUN_TIMED_DISCONNECT_SECONDS, IdentityRecord
from iotauth.local.certs import generate_certificates
from iotauth.local.gateway import GatewayConfig, GatewayPorts, LocalGateway
from iotauth.local.lambda_host import load_handler_module
from iotauth.local.stack import StackInfo
from iotauth.wire import aliyun
from tests.conftest import FakeLambdaContext
from tests.e2e.conftest import Mqtt, port_of, unique
from tests.stack_support import stack_store

pytestmark = pytest.mark.e2e

PRODUCT_KEY = "a1RefreshPK"
DEVICE_SECRET = "TEST-ONLY-aliyun-refresh-secret"
MakeClient = Callable[..., Mqtt]


@pytest.fixture(scope="module")
def add_aliyun(stack: StackInfo) -> Callable[[], str]:
    """``add_aliyun()`` → the device name of a new Aliyun identity (product PRODUCT_KEY)."""
    table = stack_store(stack)

    def add() -> str:
        device_name = unique("sensor")
        table.add_identity(
            IdentityRecord(
                username=f"{device_name}&{PRODUCT_KEY}", kind="aliyun", device_secret=DEVICE_SECRET
            )
        )
        return device_name

    return add


def _credentials(device_name: str, timestamp_seconds: float) -> aliyun.MqttCredentials:
    """What a device SDK sends: default client id productKey&deviceName, ms timestamp."""
    return aliyun.mqtt_credentials(
        PRODUCT_KEY,
        device_name,
        DEVICE_SECRET,
        f"{PRODUCT_KEY}&{device_name}",
        timestamp=int(timestamp_seconds * 1000),
        signmethod="hmacsha256",
        securemode=3,  # over the plain TCP port: securemode is bound to the transport
    )


def _connect(client: Mqtt, port: int, authorizer_name: str, creds: aliyun.MqttCredentials) -> bool:
    return client.connect(
        port,
        username=f"{creds.username}?x-amz-customauthorizer-name={authorizer_name}",
        password=creds.password,
    )


def _round_trip(client: Mqtt, device_name: str, payload: bytes) -> bytes:
    client.publish(f"/{PRODUCT_KEY}/{device_name}/user/update", payload, qos=1)
    return client.next_message().payload


# -- the local stack as it runs --------------------------------------------------------------


def test_aliyun_device_connects_with_a_fresh_timestamp(
    stack: StackInfo, add_aliyun: Callable[[], str], clients: MakeClient
) -> None:
    device_name = add_aliyun()
    creds = _credentials(device_name, time.time())
    client = clients(creds.client_id)
    assert _connect(client, port_of(stack, "tcp"), stack.authorizer_name, creds)
    assert client.subscribe(f"/{PRODUCT_KEY}/{device_name}/user/#")
    assert _round_trip(client, device_name, b"fresh") == b"fresh"
    assert not client.subscribe(f"/{PRODUCT_KEY}/other-device/user/#")


def test_aliyun_device_with_a_20_minute_old_timestamp_is_refused(
    stack: StackInfo, add_aliyun: Callable[[], str], clients: MakeClient
) -> None:
    device_name = add_aliyun()
    creds = _credentials(device_name, time.time() - 20 * 60)
    client = clients(creds.client_id)
    assert not _connect(client, port_of(stack, "tcp"), stack.authorizer_name, creds)


# -- an hour on a moved clock ----------------------------------------------------------------


@dataclass
class MovedClock:
    """The wall clock of both the gateway and the authorizer handler, moved by the tests."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class Timed:
    clock: MovedClock
    ports: GatewayPorts
    authorizer_name: str
    events: list[dict[str, Any]]
    handler: Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def timed(stack: StackInfo) -> Iterator[Timed]:
    clock = MovedClock()
    context = FakeLambdaContext()
    app = load_handler_module("authorizer")  # a private copy of the real handler
    app._clock = clock
    # The stack's environment (IOTAUTH_* from the template) and its moto table, with a
    # refresh every 300 s (IoT's minimum; the template's default is a day) for the contrast.
    settings = Settings.from_env().replace(refresh_after_seconds=300)
    app._container.update(settings=settings, store=stack_store(stack))
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = app.lambda_handler(event, context)
        return response

    def authorizer(event: dict[str, Any]) -> dict[str, Any]:
        events.append(event)
        return handler(event)

    name = "timed-authorizer"
    gateway = LocalGateway(
        GatewayConfig(
            authorizer=authorizer,
            authorizer_name=name,
            arn=ArnContext.from_function_arn(context.invoked_function_arn),
            certificates=generate_certificates(Path(tempfile.mkdtemp(prefix="iotauth-test-"))),
            clock=clock,
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ports = asyncio.run_coroutine_threadsafe(gateway.start(), loop).result(10)
    yield Timed(clock, ports, name, events, handler)
    asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_aliyun_connection_outlives_the_refresh_time_and_ends_at_disconnect(
    timed: Timed, add_aliyun: Callable[[], str], clients: MakeClient
) -> None:
    device_name = add_aliyun()
    connected_at = timed.clock.now
    creds = _credentials(device_name, connected_at)
    client = clients(creds.client_id)
    calls = len(timed.events)
    assert _connect(client, timed.ports.tcp, timed.authorizer_name, creds)
    assert client.subscribe(f"/{PRODUCT_KEY}/{device_name}/user/#")
    assert _round_trip(client, device_name, b"at connect") == b"at connect"
    connect_event = timed.events[calls]

    # 20 minutes on: past the usual refresh (300 s) and past the timestamp's ±15 minutes.
    timed.clock.now = connected_at + 20 * 60
    assert timed.handler(connect_event) == {"isAuthenticated": False}  # what a refresh gets
    assert _round_trip(client, device_name, b"20 minutes on") == b"20 minutes on"
    assert not client.disconnected.is_set()

    # Just before the disconnect time the connection still works, refreshed never.
    timed.clock.now = connected_at + ALIYUN_TIMED_DISCONNECT_SECONDS - 5
    assert _round_trip(client, device_name, b"59 minutes on") == b"59 minutes on"
    assert len(timed.events) == calls + 1  # the CONNECT only: no refresh was made

    # At disconnect time the session ends; the device reconnects with a fresh timestamp.
    timed.clock.now = connected_at + ALIYUN_TIMED_DISCONNECT_SECONDS + 1
    client.publish(f"/{PRODUCT_KEY}/{device_name}/user/update", b"too late", qos=1)
    assert client.disconnected.wait(5)
    fresh = _credentials(device_name, timed.clock.now)
    again = clients(fresh.client_id)  # the timestamp is part of the full client id
    assert _connect(again, timed.ports.tcp, timed.authorizer_name, fresh)
    assert again.subscribe(f"/{PRODUCT_KEY}/{device_name}/user/#")
    assert _round_trip(again, device_name, b"reconnected") == b"reconnected"


def test_password_device_is_still_refreshed_on_the_moved_clock(
    timed: Timed, add_device: Callable[..., str], clients: MakeClient
) -> None:
    """The contrast: other identities are re-checked every refreshAfterInSeconds (300 s)."""
    name = unique("dev")
    secret = add_device(name)
    client = clients(name)
    assert client.connect(
        timed.ports.tcp,
        username=f"{name}?x-amz-customauthorizer-name={timed.authorizer_name}",
        password=secret,
    )
    assert client.subscribe(f"{name}/#")
    calls = len(timed.events)
    timed.clock.now += 301
    client.publish(f"{name}/x", b"1", qos=1)
    assert client.next_message().payload == b"1"
    assert len(timed.events) == calls + 1  # the refresh
    assert not client.disconnected.is_set()
