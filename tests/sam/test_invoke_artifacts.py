"""The ``sam build`` artifacts, run behind the Lambda Runtime Interface Emulator, answer every
``events/`` fixture exactly as the in-process handlers do.

This catches packaging mistakes the in-process tests cannot see: a module missing from the
artifact, a dependency only the development venv has, a handler path that does not resolve.
The emulated function gets only its artifact, awslambdaric and boto3 on its path
(``tools/lambda_invoke.py``). Both sides talk to the same moto server on 127.0.0.1, seeded
with the identities the fixtures use, and get the same environment (the template's, plus the
table name, endpoint and fake credentials).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from iotauth.wire import aliyun
from tests.conftest import EVENTS, FakeLambdaContext, load_event

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD = ROOT / ".aws-sam" / "build"
REGION = "us-east-1"
TABLE = "iotauth-artifacts"
DEMO_SECRET = "iotsk_TEST-ONLY_demo-device_secret_not-for-prod01"
ALIYUN_SECRET = "TEST-ONLY-aliyun-device-secret"
ORIGIN = "https://app.example.com"  # the Origin of the signer fixtures
# The emulator invokes functions as arn:aws:lambda:<region>:012345678912:function:<name>;
# the in-process side uses the same ARN, so policies name the same account.
EMULATOR_ACCOUNT = "012345678912"

pytestmark = [
    pytest.mark.sam,
    pytest.mark.skipif(
        not (BUILD / "template.yaml").is_file(),
        reason=".aws-sam/build is missing: run `sam build` (make build; make test builds first)",
    ),
]

AUTHORIZER_EVENTS = sorted(p.name for p in (EVENTS / "authorizer").glob("*.json"))
SIGNER_EVENTS = sorted(p.name for p in (EVENTS / "signer").glob("*.json"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, str]]:
    """A seeded moto server, and the AWS environment both sides use to reach it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        _seed()
        try:
            yield env
        finally:
            server.stop()


def _seed() -> None:
    import boto3

    from iotauth.identities.credentials import hash_generated_secret
    from iotauth.identities.records import IdentityRecord
    from iotauth.identities.store import DynamoDBStore

    store = DynamoDBStore(TABLE, client=boto3.client("dynamodb"))
    store.create_table()
    store.add_identity(
        IdentityRecord(
            username="demo-device", kind="secret", verifier=hash_generated_secret(DEMO_SECRET)
        )
    )
    store.add_identity(
        IdentityRecord(username="demo-sensor&a1DemoPK", kind="aliyun", device_secret=ALIYUN_SECRET)
    )


def _function(logical_id: str, aws: dict[str, str], extra: dict[str, str]) -> Iterator[Any]:
    """The emulated function (one warm container per module) and the env it was given."""
    from tools.lambda_invoke import Emulator, ensure_runtime, function_spec

    spec = function_spec(logical_id, region=REGION)
    env = {**aws, **extra}
    with Emulator(spec, env=env, runtime_python=ensure_runtime()) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def emulated_authorizer(aws: dict[str, str]) -> Iterator[Any]:
    yield from _function("AuthorizerFunction", aws, {"IOTAUTH_TABLE": TABLE})


@pytest.fixture(scope="module")
def emulated_signer(aws: dict[str, str]) -> Iterator[Any]:
    extra = {"IOTAUTH_ALLOWED_ORIGINS": f"{ORIGIN},http://localhost:8000", "IOTAUTH_TABLE": TABLE}
    yield from _function("SignerFunction", aws, extra)


def in_process(
    emulator: Any, module_name: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[[dict[str, Any]], Any]:
    """The same handler imported in this process, with the emulated function's environment."""
    import importlib

    for key, value in {**emulator.spec.environment, **emulator.extra_env}.items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module(module_name)
    monkeypatch.setattr(module, "_container", {})  # a cold container
    name = emulator.spec.function_name
    context = FakeLambdaContext(
        function_name=name,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{EMULATOR_ACCOUNT}:function:{name}",
    )
    return lambda event: module.lambda_handler(event, context)


def emulate(emulator: Any, event: dict[str, Any]) -> Any:
    result = emulator.invoke(json.dumps(event).encode())
    assert result.status == 200 and result.function_error is None, result.body[:500]
    return result.json()


def aliyun_event_now() -> dict[str, Any]:
    """``aliyun-signed.json`` re-signed with the current time, so that it is allowed now."""
    event = load_event("authorizer/aliyun-signed.json")
    mqtt = event["protocolData"]["mqtt"]
    client_id = aliyun.parse_mqtt_client_id(mqtt["clientId"])
    timestamp = str(int(time.time() * 1000))
    password = aliyun.sign(
        ALIYUN_SECRET,
        client_id=client_id.client_id,
        device_name="demo-sensor",
        product_key="a1DemoPK",
        timestamp=timestamp,
        signmethod=client_id.signmethod,
    )
    mqtt["clientId"] = mqtt["clientId"].replace(str(client_id.timestamp), timestamp)
    mqtt["password"] = base64.b64encode(password.encode()).decode()
    return event


@pytest.mark.parametrize("name", AUTHORIZER_EVENTS)
def test_authorizer_artifact_answers_like_the_handler(
    emulated_authorizer: Any, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    handler = in_process(emulated_authorizer, "authorizer.app", monkeypatch)
    event = load_event(f"authorizer/{name}")
    emulated = emulate(emulated_authorizer, event)
    assert emulated == handler(event)
    assert isinstance(emulated["isAuthenticated"], bool)


def test_authorizer_artifact_allows_a_fresh_aliyun_signature(
    emulated_authorizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = in_process(emulated_authorizer, "authorizer.app", monkeypatch)
    event = aliyun_event_now()
    emulated = emulate(emulated_authorizer, event)
    assert emulated["isAuthenticated"] is True
    assert emulated == handler(event)


def test_authorizer_fixtures_cover_allow_and_deny(emulated_authorizer: Any) -> None:
    answers = {
        name: emulate(emulated_authorizer, load_event(f"authorizer/{name}"))["isAuthenticated"]
        for name in ("connect-mqtt.json", "connect-wss.json", "wrong-password.json")
    }
    assert answers == {
        "connect-mqtt.json": True,
        "connect-wss.json": True,
        "wrong-password.json": False,
    }


def _comparable_signer_answer(response: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs per call: the credentials, signature and times."""
    answer = dict(response)
    body = json.loads(answer.pop("body") or "null")
    if isinstance(body, dict) and "url" in body:
        url = urlsplit(body.pop("url"))
        query = dict(parse_qsl(url.query))
        credential = query.pop("X-Amz-Credential").split("/", 1)[1]  # scope, not the key
        for key in ("X-Amz-Signature", "X-Amz-Security-Token", "X-Amz-Date"):
            assert query.pop(key)
        # moto's DescribeEndpoint makes up a new endpoint prefix on every call.
        host = re.sub(r"^[a-z0-9]+(?=-ats\.iot\.)", "<prefix>", url.netloc)
        body["url"] = (url.scheme, host, url.path, credential, sorted(query.items()))
        assert body.pop("expiresAt").endswith("Z")
    answer["body"] = body
    return answer


@pytest.mark.parametrize("name", SIGNER_EVENTS)
def test_signer_artifact_answers_like_the_handler(
    emulated_signer: Any, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    handler = in_process(emulated_signer, "signer.app", monkeypatch)
    event = load_event(f"signer/{name}")
    emulated = emulate(emulated_signer, event)
    expected = handler(event)
    assert _comparable_signer_answer(emulated) == _comparable_signer_answer(expected)
    if event["requestContext"]["http"]["method"] == "GET":
        assert emulated["headers"]["Cache-Control"] == "no-store"


def test_signer_artifact_issues_a_url(emulated_signer: Any) -> None:
    response = emulate(emulated_signer, load_event("signer/mqtt-url.json"))
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["url"].startswith("wss://") and "/mqtt?" in body["url"]
    assert body["clientId"].startswith("web-")


def test_emulator_refuses_a_function_that_is_not_in_the_template() -> None:
    from tools.lambda_invoke import InvokeError, function_spec

    with pytest.raises(InvokeError, match="no function 'NoSuchFunction'"):
        function_spec("NoSuchFunction")


def test_template_environment_reaches_the_function(emulated_authorizer: Any) -> None:
    spec = emulated_authorizer.spec
    assert spec.code_dir == BUILD / "AuthorizerFunction"
    assert spec.function_name == "iotauth-local-authorizer"  # !Sub ${AWS::StackName}-authorizer
    assert spec.environment["IOTAUTH_LOCKOUT_THRESHOLD"] == "5"  # a parameter's default
    assert spec.environment["IOTAUTH_TABLE"] == "CredentialsTable"  # a resource's Ref
