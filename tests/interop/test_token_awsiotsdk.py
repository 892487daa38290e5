"""AWS IoT Device SDK v2 for Python: custom authentication with a signed token (issue 17).

The stand-in's authorizer has token signing on (``SigningDisabled: false``, TokenKeyName
``iotauth-token``, one RSA public key), as IoT Core's signed-token flow: the token is a JWT
from the local OIDC issuer, signed (RSA SHA-256, base64) with the private key whose public
half the authorizer holds. The SDK builders are called as their docs say, with
``auth_authorizer_name``, ``auth_token_key_name``, ``auth_token_value`` and
``auth_authorizer_signature`` (it URL-encodes the signature into the username); only the
endpoint (``localhost``), port and CA differ from IoT Core. The MQTT 3.1.1 builder over wss
and the MQTT 5 direct builder (TLS, ALPN ``mqtt``) both honour ``port=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from awscrt import mqtt5
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt5_client_builder, mqtt_connection_builder

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo
from tests.e2e.token_support import SigningKey, token_for
from tests.interop.conftest import iot_port
from tests.interop.crt3 import Crt3, round_trip_and_refusals
from tests.interop.crt5 import ConnectRefused, Crt5

KEY = SigningKey()
TOKEN_KEY_NAME = "iotauth-token"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackInfo]:
    with LocalStack(LocalPorts.any_free(), token_signing=KEY.signing(TOKEN_KEY_NAME)) as running:
        yield running.info


def mqtt3_connection(info: StackInfo, events: Crt3, token: str, signature: str) -> Any:
    return mqtt_connection_builder.websockets_with_custom_authorizer(
        endpoint="localhost",
        port=iot_port(info),
        ca_filepath=str(info.ca_cert_path),
        client_id="web-alice",
        clean_session=True,
        auth_authorizer_name=info.authorizer_name,
        auth_token_key_name=TOKEN_KEY_NAME,
        auth_token_value=token,
        auth_authorizer_signature=signature,
        **events.callbacks(),
    )


def test_mqtt3_websockets_with_a_signed_token(stack: StackInfo, crt3: Callable[[], Crt3]) -> None:
    token, events = token_for(stack, "alice"), crt3()
    events.connect(mqtt3_connection(stack, events, token, KEY.sign(token)))
    error = round_trip_and_refusals(events, "web-alice/telemetry", "web-bob/telemetry")
    assert isinstance(error, AwsCrtError) and error.name == "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"


def test_mqtt3_a_wrong_signature_is_refused(stack: StackInfo, crt3: Callable[[], Crt3]) -> None:
    token, events = token_for(stack, "alice"), crt3()
    with pytest.raises(AwsCrtError) as refused:
        events.connect(mqtt3_connection(stack, events, token, SigningKey().sign(token)))
    assert refused.value.name == "AWS_ERROR_MQTT_PROTOCOL_ERROR"  # CONNACK 5 on the wire


def mqtt5_client(info: StackInfo, events: Crt5, token: str, signature: str) -> Any:
    return mqtt5_client_builder.direct_with_custom_authorizer(
        endpoint="localhost",
        port=iot_port(info),
        ca_filepath=str(info.ca_cert_path),
        client_id="web-bob",
        auth_authorizer_name=info.authorizer_name,
        auth_token_key_name=TOKEN_KEY_NAME,
        auth_token_value=token,
        auth_authorizer_signature=signature,
        **events.callbacks(),
    )


def test_mqtt5_direct_with_a_signed_es256_token(stack: StackInfo, crt5: Callable[[], Crt5]) -> None:
    token, events = token_for(stack, "bob", alg="ES256"), crt5()
    events.start(mqtt5_client(stack, events, token, KEY.sign(token)))
    assert events.subscribe("web-bob/#") == mqtt5.SubackReasonCode.GRANTED_QOS_1
    assert events.publish("web-bob/telemetry", b"21.5") in (
        mqtt5.PubackReasonCode.SUCCESS,
        mqtt5.PubackReasonCode.NO_MATCHING_SUBSCRIBERS,
    )
    assert events.messages.get(timeout=10) == ("web-bob/telemetry", b"21.5")
    assert events.subscribe("web-alice/#") == mqtt5.SubackReasonCode.NOT_AUTHORIZED
    assert events.publish("web-alice/x", b"x") == mqtt5.PubackReasonCode.NOT_AUTHORIZED


def test_mqtt5_an_unsigned_token_is_refused(stack: StackInfo, crt5: Callable[[], Crt5]) -> None:
    token, events = token_for(stack, "bob"), crt5()
    garbled = KEY.sign(token)[:-8] + "AAAAAAA="
    with pytest.raises(ConnectRefused) as refused:
        events.start(mqtt5_client(stack, events, token, garbled))
    assert refused.value.connack is not None
    assert refused.value.connack.reason_code == mqtt5.ConnectReasonCode.NOT_AUTHORIZED
