"""Shared fixtures: fake AWS settings, moto, the `events/` fixtures and a Lambda context.

Generic on purpose: every test module may use these. AWS is always faked (moto); no test
talks to a real account.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The `scripted` fixture: a misbehaving HTTP server for fault tests.
pytest_plugins = ["tests.http_stubs"]

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def load_event(name: str) -> dict[str, Any]:
    """An event fixture by path under ``events/`` (``"authorizer/connect-mqtt.json"``)."""
    path = EVENTS / name
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def events() -> Callable[[str], dict[str, Any]]:
    """``events("authorizer/connect-mqtt")`` → a fresh copy of that fixture."""
    return load_event


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region; no profile, no endpoint override from the host."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for key, value in _FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    yield


@pytest.fixture
def moto_aws(aws_env: None) -> Iterator[None]:
    """Every AWS call in the test goes to moto (create boto3 clients inside the test)."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One moto server for the session on 127.0.0.1 (a free port): its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(aws_env: None, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every AWS call goes over real HTTP to the (reset) moto server: ``AWS_ENDPOINT_URL``.

    Unlike ``moto_aws`` this reaches clients that are not botocore (``iotauth.wire.aws_json``).
    """
    import urllib.request

    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def dynamodb_table(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A DynamoDB table with the project's schema in the moto server; ``IOTAUTH_TABLE``
    names it."""
    from iotauth.identities.store import DynamoDBStore

    name = "iotauth-test"
    DynamoDBStore(name).create_table()
    monkeypatch.setenv("IOTAUTH_TABLE", name)
    return name


@dataclass
class FakeLambdaContext:
    function_name: str = "iotauth-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:iotauth-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/iotauth-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 5000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
