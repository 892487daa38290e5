"""Interoperability fixtures: the local stand-in, devices, and the clients' own tools.

Every client library here is used the way its documentation says, through its public
builders and options; only the endpoint (``localhost`` over TLS, a host name, so that every
client sends SNI as IoT Core requires; 127.0.0.1 without TLS), the port and the CA differ
from what a user points at AWS IoT Core. One :class:`~iotauth.local.stack.LocalStack` per
test module (moto's state is per process, so never two at once), on free ports; the one
client that always dials 443 gets a stack whose IoT port is 443, behind a lock across
processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.stack_support import assume_client_role, stack_store

REPO = Path(__file__).resolve().parents[2]
WAIT = 10.0  # seconds: the longest any single step may take (TLS + authorizer + moto)
LOCK_443 = Path("/tmp/iotauth-interop-443.lock")
LOCK_443_WAIT = 300.0  # another run's 443 tests: a few minutes at most
LINKKIT_PYTHON = REPO / ".tools/linkkit/bin/python"
MQTTJS = REPO / "web/node_modules/mqtt"
NODE_CLIENT = Path(__file__).parent / "node/client.mjs"
_names = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.interop)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}x{time.monotonic_ns() % 1000000}"


def iot_port(info: StackInfo) -> int:
    """The IoT-style TLS port (ALPN mqtt → MQTT, otherwise HTTPS + WebSocket at /mqtt)."""
    return info.iot_port


def mqtts_port(info: StackInfo) -> int:
    return info.mqtts_port


def mqtt_port(info: StackInfo) -> int:
    return info.mqtt_port


def username_for(info: StackInfo, name: str) -> str:
    return f"{name}?x-amz-customauthorizer-name={info.authorizer_name}"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackInfo]:
    with LocalStack(LocalPorts.any_free()) as running:
        yield running.info


def _bind_443_problem() -> str | None:
    """Why 127.0.0.1:443 cannot be bound now, or None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", 443))
        except PermissionError:
            return "binding port 443 needs root or CAP_NET_BIND_SERVICE"
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "127.0.0.1:443 is in use by another process (e.g. a running `make run`)"
            return f"cannot bind 127.0.0.1:443: {exc}"
    return None


@pytest.fixture(scope="module")
def stack_443() -> Iterator[StackInfo]:
    """A stack whose IoT port is 443, for clients that dial 443 whatever they are told.

    Concurrent test runs on this machine take turns through an flock on LOCK_443.
    """
    with LOCK_443.open("a") as lock:
        deadline = time.monotonic() + LOCK_443_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{LOCK_443} held by another run for {LOCK_443_WAIT:.0f} s")
                time.sleep(0.5)
        try:
            problem = _bind_443_problem()
            if problem is not None:
                pytest.skip(f"this client always dials port 443: {problem}")
            ports = dataclasses.replace(LocalPorts.any_free(), iot=443)
            with LocalStack(ports) as running:
                yield running.info
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Device:
    """A device with the default scope: client id = name, topics under ``<name>/``."""

    name: str
    secret: str

    @property
    def own_topic(self) -> str:
        return f"{self.name}/telemetry"

    @property
    def foreign_topic(self) -> str:
        return f"someone-else-{self.name}/telemetry"


def make_device_factory(info: StackInfo) -> Callable[[], Device]:
    from iotauth.identities.credentials import issue_secret
    from iotauth.identities.records import IdentityRecord

    store = stack_store(info)

    def add() -> Device:
        name = unique("dev")
        secret, verifier = issue_secret()
        now = int(time.time())
        store.add_identity(
            IdentityRecord(
                username=name,
                kind="secret",
                verifier=verifier,
                created_at=now,
                updated_at=now,
            )
        )
        return Device(name, secret)

    return add


@pytest.fixture(scope="module")
def new_device(stack: StackInfo) -> Callable[[], Device]:
    return make_device_factory(stack)


@dataclass(frozen=True)
class AliyunDevice:
    product_key: str
    device_name: str
    device_secret: str

    @property
    def own_topic(self) -> str:
        return f"/{self.product_key}/{self.device_name}/user/update"

    @property
    def foreign_topic(self) -> str:
        return f"/{self.product_key}/someone-else-{self.device_name}/user/update"


@pytest.fixture(scope="module")
def new_aliyun_device(stack: StackInfo) -> Callable[[], AliyunDevice]:
    from iotauth.identities.records import IdentityRecord

    store = stack_store(stack)

    def add() -> AliyunDevice:
        device = AliyunDevice("a1Interop", unique("sensor"), f"TEST-ONLY-{unique('s')}")
        store.add_identity(
            IdentityRecord(
                username=f"{device.device_name}&{device.product_key}",
                kind="aliyun",
                device_secret=device.device_secret,
                # The '|…|' parameters LinkKit 1.2.13 sends, the one spelling accepted.
                client_id_form="linkkit",
            )
        )
        return device

    return add


@dataclass(frozen=True)
class WebUser:
    """Temporary credentials for the IoT client role, scoped as the signer scopes a browser."""

    client_id: str
    access_key: str
    secret_key: str
    session_token: str

    @property
    def own_topic(self) -> str:
        return f"{self.client_id}/chat"

    @property
    def foreign_topic(self) -> str:
        return f"web-someone-else-{self.client_id}/chat"  # inside the role, outside the session


def web_user(info: StackInfo) -> WebUser:
    """Credentials from moto's STS, as the signer gets them (session policy = one caller)."""
    from iotauth.access.scoping import ArnContext, Scope, session_policy

    client_id = unique("web-user")
    arns = ArnContext("aws", info.region, info.client_role_arn.split(":")[4])
    policy = session_policy(Scope(client_ids=(client_id,), namespaces=(client_id,)), arns)
    return WebUser(client_id, **assume_client_role(info, policy, client_id))


# --- clients run in another process (mqtt.js under node, linkkit in its own venv) -------


def run_script(
    command: list[str], scenario: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """Run a scenario driver; it prints one JSON object per line (its observations)."""
    completed = subprocess.run(
        command,
        input=json.dumps(scenario),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
        env={**os.environ, "NODE_PATH": str(MQTTJS.parent)},
    )
    events = []
    for line in completed.stdout.splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    if completed.returncode != 0 and not events:
        raise AssertionError(f"{command[0]} failed: {completed.stderr[-2000:]}")
    return events


def node_binary() -> str:
    found = shutil.which("node")
    if found is None or not MQTTJS.is_dir():
        pytest.fail("node and web/node_modules/mqtt are needed: run `make interop-deps`")
    return found


# -- awscrt clients (imported when a test asks: the other clients' tests need no awscrt) ------


@pytest.fixture
def crt3() -> Iterator[Callable[[], Any]]:
    """Makes :class:`tests.interop.crt3.Crt3` wrappers; disconnects each after the test."""
    from tests.interop.crt3 import Crt3

    made: list[Crt3] = []

    def make() -> Crt3:
        made.append(Crt3())
        return made[-1]

    yield make
    for events in made:
        events.disconnect()


@pytest.fixture
def crt5() -> Iterator[Callable[[], Any]]:
    """Makes :class:`tests.interop.crt5.Crt5` wrappers; stops each after the test."""
    from tests.interop.crt5 import Crt5

    made: list[Crt5] = []

    def make() -> Crt5:
        made.append(Crt5())
        return made[-1]

    yield make
    for client in made:
        client.stop()
