"""SigV4 WebSocket handshakes as IoT Core accepts them (iotauth.local.handshake).

awscrt (what the AWS IoT Device SDK v2 signs with) is the oracle for what real clients
send: ``X-Amz-SignedHeaders=connection;host``, the token after signing.
"""

from __future__ import annotations

import datetime as dt

import pytest
from awscrt import auth, http
from hypothesis import given
from hypothesis import strategies as st

from iotauth.local.handshake import verify_handshake
from iotauth.wire.sigv4 import presign_mqtt_url

REGION = "us-east-1"
KEY, SECRET, TOKEN = (
    "ASIAEXAMPLEKEY000001",
    "c2VjcmV0LWtleS1mb3ItdGVzdHM",
    "FwoGZXIvYXdzEXAMPLE/TOKEN+=",
)
NOW = 1_790_000_000.0
WS_HEADERS = [
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Protocol", "mqtt"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
]


def secret(access_key: str) -> str | None:
    return SECRET if access_key == KEY else None


def token(access_key: str) -> str | None:
    return TOKEN if access_key == KEY else None


def crt_sign(host: str, *, omit_token: bool = True, when: float = NOW) -> str:
    """The request target awscrt produces, as the SDK's websockets_with_default_aws_signing."""
    request = http.HttpRequest(
        "GET",
        "/mqtt",
        headers=http.HttpHeaders([("Host", host), ("Connection", "Upgrade"), *WS_HEADERS]),
    )
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(KEY, SECRET, TOKEN),
        region=REGION,
        service="iotdevicegateway",
        omit_session_token=omit_token,
        date=dt.datetime.fromtimestamp(when, dt.UTC),
    )
    signed: str = auth.aws_sign_request(request, config).result(10).path
    return signed


def verify(
    target: str, host: str, *, connection: str = "Upgrade", secure: bool = True, now: float = NOW
) -> str | None:
    headers = [("Host", host), ("Connection", connection), *WS_HEADERS]
    return verify_handshake(target, headers, REGION, secret, token, now, secure)


def test_sdk_signature_over_connection_and_host_is_accepted() -> None:
    target = crt_sign("example-ats.iot.us-east-1.amazonaws.com")
    assert "X-Amz-SignedHeaders=connection%3Bhost" in target
    assert verify(target, "example-ats.iot.us-east-1.amazonaws.com") == KEY


def test_host_with_or_without_the_default_port() -> None:
    signed_without = crt_sign("localhost")
    signed_with = crt_sign("localhost:443")
    for target in (signed_without, signed_with):
        assert verify(target, "localhost") == KEY
        assert verify(target, "localhost:443") == KEY
    # Another port is another host.
    assert verify(signed_without, "localhost:8443") is None
    assert verify(crt_sign("localhost:8443"), "localhost:8443") == KEY
    # ws://: the default port is 80.
    ws = crt_sign("localhost:80")
    assert verify(ws, "localhost", secure=False) == KEY
    assert verify(ws, "localhost", secure=True) is None


def test_signed_headers_are_recomputed_as_sent() -> None:
    target = crt_sign("localhost")
    assert verify(target, "localhost", connection="  Upgrade ") == KEY  # trimmed, as SigV4
    assert verify(target, "localhost", connection="keep-alive, Upgrade") is None
    # A signed header that was not sent.
    headers = [("Host", "localhost"), *WS_HEADERS]
    assert verify_handshake(target, headers, REGION, secret, token, NOW, True) is None


def test_iotauths_own_host_only_urls_are_accepted() -> None:
    url = presign_mqtt_url("wss://localhost/mqtt", REGION, KEY, SECRET, TOKEN, now=NOW)
    target = url.split("localhost", 1)[1]
    assert verify(target, "localhost") == KEY
    assert verify(target, "localhost:443") == KEY


def test_signed_headers_must_include_host() -> None:
    target = crt_sign("localhost").replace("connection%3Bhost", "connection")
    assert verify(target, "localhost") is None


def test_token_signed_like_generic_sigv4_is_refused() -> None:
    generic = crt_sign("localhost", omit_token=False)
    assert verify(generic, "localhost") is None
    # And a URL without its token, or with another one, is refused.
    target = crt_sign("localhost")
    start = target.index("&X-Amz-Security-Token=")
    end = target.index("&", start + 1)
    assert verify(target[:start] + target[end:], "localhost") is None
    assert verify(target.replace("TOKEN", "TOKEX"), "localhost") is None


@pytest.mark.parametrize(
    ("signed_at", "accepted"),
    [(NOW + 299, True), (NOW + 301, False), (NOW - 899, True), (NOW - 901, False)],
)
def test_clock_skew_and_age(signed_at: float, accepted: bool) -> None:
    target = crt_sign("localhost", when=signed_at)
    assert (verify(target, "localhost") == KEY) is accepted


def test_unknown_key_region_or_path_is_refused() -> None:
    target = crt_sign("localhost")
    assert (
        verify_handshake(
            target,
            [("Host", "localhost"), ("Connection", "Upgrade")],
            "eu-west-1",
            secret,
            token,
            NOW,
            True,
        )
        is None
    )
    assert (
        verify_handshake(
            target,
            [("Host", "localhost"), ("Connection", "Upgrade")],
            REGION,
            lambda _: None,
            token,
            NOW,
            True,
        )
        is None
    )
    assert verify("/mqtt2" + target[5:], "localhost") is None
    assert verify(target + "&X-Amz-Date=20200101T000000Z", "localhost") is None  # repeated


@given(st.text(max_size=300), st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40))))
def test_never_raises(target: str, headers: list[tuple[str, str]]) -> None:
    assert verify_handshake(target, headers, REGION, secret, token, NOW, True) is None
