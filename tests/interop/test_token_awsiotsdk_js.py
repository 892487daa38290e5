"""AWS IoT Device SDK v2 for JavaScript: custom authentication with a signed token (issue 17).

The JavaScript counterpart of test_token_awsiotsdk.py. ``aws-iot-device-sdk-v2`` (pinned,
with its aws-crt and aws-crt's prebuilt native addon, in tests/interop/node-sdkv2; `make
interop-deps`) runs under node in tests/interop/node-sdkv2/client.mjs, which builds the
connection with the SDK's public builders as its docs and samples do:
``AwsIotMqttConnectionConfigBuilder.new_default_builder()`` / ``new_with_websockets()`` +
``with_custom_authorizer(username, authorizerName, signature, password, tokenKeyName,
tokenValue)`` (MQTT 3.1.1) and ``AwsIotMqtt5ClientConfigBuilder.
newDirectMqttBuilderWithCustomAuth`` / ``newWebsocketMqttBuilderWithCustomAuth`` (MQTT 5).
Only the endpoint (``localhost``: SNI), the port and the CA differ from IoT Core; every one
of these builders honours the port it is given afterwards (``with_port`` / ``withPort``;
``with_custom_authorizer`` sets 443 and ``build()`` prints a warning when it is not 443), so
no stack on port 443 is needed.

The stand-in's authorizer has token signing on, as in test_token_awsiotsdk.py: the token is
a JWT from the local OIDC issuer, signed (RSA SHA-256, base64) with the private key whose
public half the authorizer holds. A signature made with another key is refused before the
authorizer is invoked (IoT Core's signed-token flow), which an AuthorizerSpy shows.
``with_custom_authorizer`` and ``newDirectMqttBuilderWithCustomAuth`` URL-encode the
signature into the username; ``newWebsocketMqttBuilderWithCustomAuth`` (1.28.0) does not
(it skips ``canonicalizeCustomAuthConfig``), so ``+`` and ``/`` arrive raw, and the
stand-in accepts that too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.e2e.token_support import AuthorizerSpy, SigningKey, token_for
from tests.interop.conftest import iot_port, run_script

KEY = SigningKey()
TOKEN_KEY_NAME = "iotauth-token"
SDK_DIR = Path(__file__).parent / "node-sdkv2"
DRIVER = SDK_DIR / "client.mjs"
DRIVER_TIMEOUT_MS = 25000  # the driver stops itself; the subprocess gets a little more
GRANTED_QOS_1 = 1
MQTT5_NOT_AUTHORIZED = 0x87  # SUBACK and CONNACK reason code


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack(LocalPorts.any_free(), token_signing=KEY.signing(TOKEN_KEY_NAME)) as running:
        yield running


@pytest.fixture(scope="module")
def stack(local_stack: LocalStack) -> StackInfo:
    return local_stack.info


@pytest.fixture(scope="module")
def spy(local_stack: LocalStack) -> Iterator[AuthorizerSpy]:
    recorder = AuthorizerSpy(local_stack)
    yield recorder
    recorder.restore()


def node_with_sdk() -> str:
    found = shutil.which("node")
    if found is None or not (SDK_DIR / "node_modules/aws-iot-device-sdk-v2").is_dir():
        pytest.fail(
            "node and tests/interop/node-sdkv2/node_modules are needed: `make interop-deps`"
        )
    return found


def drive(
    info: StackInfo,
    api: str,
    transport: str,
    client_id: str,
    token: str,
    signature: str,
    foreign_topic: str | None = None,
) -> dict[str, Any]:
    scenario = {
        "api": api,
        "transport": transport,
        "host": "localhost",  # a host name: the SDK sends SNI
        "port": iot_port(info),
        "caFile": str(info.ca_cert_path),
        "clientId": client_id,
        "authorizerName": info.authorizer_name,
        "tokenKeyName": TOKEN_KEY_NAME,
        "token": token,
        "signature": signature,
        "topic": f"{client_id}/telemetry",
        "payload": "21.5",
        "foreignTopic": foreign_topic,
        "timeoutMs": DRIVER_TIMEOUT_MS,
    }
    events = run_script(
        [node_with_sdk(), str(DRIVER)], scenario, timeout=DRIVER_TIMEOUT_MS / 1000 + 10
    )
    results = [event for event in events if event.get("event") == "result"]
    assert len(results) == 1, events
    return results[0]


@pytest.mark.parametrize("transport", ["direct", "websocket"])
def test_mqtt3_with_custom_authorizer_and_a_signed_token(
    stack: StackInfo, spy: AuthorizerSpy, transport: str
) -> None:
    token = token_for(stack, "alice")
    spy.take()
    seen = drive(
        stack, "mqtt3", transport, "web-alice", token, KEY.sign(token), "web-bob/telemetry"
    )
    assert seen.get("error") is None, seen
    assert seen["connected"] is True and seen["sessionPresent"] is False
    assert seen["suback"] == {"topic": "web-alice/telemetry", "qos": GRANTED_QOS_1}
    assert seen["puback"] is True
    assert seen["received"] == [{"topic": "web-alice/telemetry", "payload": "21.5"}]
    assert seen["foreignSuback"]["qos"] == 128  # SUBACK 0x80: outside the token's scope
    (event,) = spy.take()
    assert event["token"] == token and event["signatureVerified"] is True
    assert event["protocolData"]["mqtt"]["clientId"] == "web-alice"


def test_mqtt3_a_signature_by_another_key_is_refused_without_calling_the_authorizer(
    stack: StackInfo, spy: AuthorizerSpy
) -> None:
    token = token_for(stack, "alice")
    spy.take()
    seen = drive(stack, "mqtt3", "direct", "web-alice", token, SigningKey().sign(token))
    assert seen["connected"] is False, seen
    # CONNACK return code 5 on the wire; aws-crt's MQTT 3.1.1 client reports a protocol error
    # (as awscrt does in Python).
    assert seen["connectionFailure"]["name"] == "AWS_ERROR_MQTT_PROTOCOL_ERROR", seen
    assert spy.take() == []  # IoT never invokes the authorizer for it


@pytest.mark.parametrize("transport", ["direct", "websocket"])
def test_mqtt5_custom_auth_builder_and_a_signed_es256_token(
    stack: StackInfo, spy: AuthorizerSpy, transport: str
) -> None:
    token = token_for(stack, "bob", alg="ES256")
    signature = KEY.sign(token)
    spy.take()
    seen = drive(stack, "mqtt5", transport, "web-bob", token, signature, "web-alice/telemetry")
    assert seen.get("error") is None, seen
    assert seen["connected"] is True and seen["connack"] == {"reasonCode": 0}
    assert seen["suback"] == {"reasonCodes": [GRANTED_QOS_1]}
    assert seen["puback"]["reasonCode"] in (0, 0x10)  # success / no matching subscribers
    assert seen["received"] == [{"topic": "web-bob/telemetry", "payload": "21.5"}]
    assert seen["foreignSuback"] == {"reasonCodes": [MQTT5_NOT_AUTHORIZED]}
    (event,) = spy.take()
    assert event["token"] == token and event["signatureVerified"] is True
    # The direct builder URL-encodes the base64 signature into the username (as
    # with_custom_authorizer does); 1.28.0's websocket builder passes it as given.
    sent = quote(signature, safe="") if transport == "direct" else signature
    username = event["protocolData"]["mqtt"]["username"]
    assert f"x-amz-customauthorizer-signature={sent}" in username.split("?", 1)[1].split("&")


def test_mqtt5_a_garbled_signature_is_refused_without_calling_the_authorizer(
    stack: StackInfo, spy: AuthorizerSpy
) -> None:
    token = token_for(stack, "bob")
    garbled = KEY.sign(token)[:-8] + "AAAAAAA="
    spy.take()
    seen = drive(stack, "mqtt5", "direct", "web-bob", token, garbled)
    assert seen["connected"] is False, seen
    assert seen["connack"] == {"reasonCode": MQTT5_NOT_AUTHORIZED}, seen
    assert spy.take() == []
