"""iotauth.wire.sigv4: published vectors, IoT-specific rules, validation, verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotauth.wire import sigv4
from iotauth.wire.sigv4 import (
    canonical_query_string,
    canonical_request,
    credential_scope,
    presign_mqtt_url,
    signing_key,
    string_to_sign,
    verify_presigned_url,
)

SUITE = Path(__file__).resolve().parents[2] / "data" / "aws-signing-test-suite"
# The suite-wide context of aws-c-auth's aws-signing-test-suite (see its README.md).
AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
HOST = "example.amazonaws.com"
ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
REGION = "eu-west-1"


def read(case: str, name: str) -> str:
    return (SUITE / case / name).read_text(encoding="utf-8")


def signature_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]


def base_params(service: str = "service") -> list[tuple[str, str]]:
    return [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{AK}/{credential_scope('20150830', 'us-east-1', service)}"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("X-Amz-SignedHeaders", "host"),
    ]


# -- published vectors ------------------------------------------------------------------


def test_get_vanilla_string_to_sign() -> None:
    query = canonical_query_string(base_params())
    request = canonical_request("GET", "/", query, HOST)
    scope = credential_scope("20150830", "us-east-1", "service")
    assert string_to_sign("20150830T123600Z", scope, request) == read(
        "get-vanilla", "query-string-to-sign.txt"
    )


def test_fast_path_signs_get_vanilla_like_the_suite() -> None:
    # The URL builder's own code path, pointed at the suite's path and service.
    url = sigv4._presign("https", HOST, "/", "service", "us-east-1", AK, SK, None, WHEN, None)
    key = signing_key(SK, "20150830", "us-east-1", "service")
    expected = hmac.new(
        key, read("get-vanilla", "query-string-to-sign.txt").encode(), hashlib.sha256
    ).hexdigest()
    assert signature_of(url) == expected


def test_query_order_key_case_vector() -> None:
    case = "get-vanilla-query-order-key-case"
    params = [("Param2", "value2"), ("Param1", "value1"), *base_params()]
    request = canonical_request("GET", "/", canonical_query_string(params), HOST)
    assert request == read(case, "query-canonical-request.txt")
    scope = credential_scope("20150830", "us-east-1", "service")
    to_sign = string_to_sign("20150830T123600Z", scope, request)
    assert to_sign == read(case, "query-string-to-sign.txt")
    published = read(case, "query-signed-request.txt").split("X-Amz-Signature=")[1][:64]
    key = signing_key(SK, "20150830", "us-east-1", "service")
    assert hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() == published


def test_session_token_is_not_signed_unlike_generic_sigv4() -> None:
    case = "get-vanilla-with-session-token"
    context = json.loads(read(case, "context.json"))
    token = context["credentials"]["token"]
    generic_request = read(case, "query-canonical-request.txt")
    generic_signature = read(case, "query-signed-request.txt").split("X-Amz-Signature=")[1][:64]
    assert token in generic_request  # generic SigV4 signs the token ...

    with_token = sigv4._presign(
        "https", HOST, "/", "service", "us-east-1", AK, SK, token, WHEN, 3600
    )
    without = sigv4._presign("https", HOST, "/", "service", "us-east-1", AK, SK, None, WHEN, 3600)
    # ... IoT mode does not: the signature is the one without a token, the token comes last.
    assert signature_of(with_token) == signature_of(without)
    assert signature_of(with_token) != generic_signature
    assert with_token == without + "&X-Amz-Security-Token=" + token
    query = urlsplit(with_token).query
    assert query.index("X-Amz-Signature=") < query.index("X-Amz-Security-Token=")


# -- the IoT URL ------------------------------------------------------------------------


def test_url_shape_and_canonical_request() -> None:
    url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok/en+=", now=WHEN)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", ENDPOINT, "/mqtt")
    params = parse_qsl(parts.query, strict_parsing=True)
    assert [k for k, _ in params] == [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ]
    values = dict(params)
    assert values["X-Amz-Credential"] == f"{AK}/20150830/{REGION}/iotdevicegateway/aws4_request"
    assert values["X-Amz-Security-Token"] == "tok/en+="
    assert "X-Amz-Security-Token=tok%2Fen%2B%3D" in url
    # Recompute from the generic pieces: service iotdevicegateway, /mqtt, host only.
    signed = [(k, v) for k, v in params if k not in {"X-Amz-Signature", "X-Amz-Security-Token"}]
    request = canonical_request("GET", "/mqtt", canonical_query_string(signed), ENDPOINT)
    assert request.endswith("\nhost\n" + hashlib.sha256(b"").hexdigest())
    to_sign = string_to_sign(
        "20150830T123600Z", credential_scope("20150830", REGION, "iotdevicegateway"), request
    )
    key = signing_key(SK, "20150830", REGION, "iotdevicegateway")
    assert values["X-Amz-Signature"] == hmac.new(key, to_sign.encode(), "sha256").hexdigest()


def test_deterministic_and_time_forms_agree() -> None:
    a = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN)
    b = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN.timestamp())
    c = presign_mqtt_url(
        ENDPOINT, REGION, AK, SK, now=WHEN.astimezone(timezone(timedelta(hours=8)))
    )
    assert a == b == c
    assert presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN + timedelta(seconds=1)) != a


def test_expires_is_signed_when_given() -> None:
    url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN, expires=900)
    assert "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&" in url
    assert signature_of(url) != signature_of(presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN))


@pytest.mark.parametrize(
    ("endpoint", "prefix"),
    [
        (ENDPOINT.upper(), f"wss://{ENDPOINT}/mqtt?"),
        (f"{ENDPOINT}:443", f"wss://{ENDPOINT}/mqtt?"),
        (f"wss://{ENDPOINT}/mqtt", f"wss://{ENDPOINT}/mqtt?"),
        ("ws://localhost:9001", "ws://localhost:9001/mqtt?"),
        ("ws://127.0.0.1:80", "ws://127.0.0.1/mqtt?"),
    ],
)
def test_endpoint_forms(endpoint: str, prefix: str) -> None:
    assert presign_mqtt_url(endpoint, REGION, AK, SK, now=WHEN).startswith(prefix)


def test_host_without_default_port_is_what_is_signed() -> None:
    assert presign_mqtt_url(f"{ENDPOINT}:443", REGION, AK, SK, now=WHEN) == presign_mqtt_url(
        ENDPOINT, REGION, AK, SK, now=WHEN
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": ""},
        {"endpoint": "https://host.example.com"},
        {"endpoint": "host.example.com/other"},
        {"endpoint": "bad host.example.com"},
        {"endpoint": "host.example.com:0"},
        {"endpoint": "host.example.com:99999"},
        {"region": ""},
        {"region": "US-EAST-1"},
        {"region": "us-east-1/x"},
        {"access_key": ""},
        {"access_key": "AKID/EXAMPLE"},
        {"secret_key": ""},
        {"session_token": ""},
        {"session_token": "line\nbreak"},
        {"now": datetime(2015, 8, 30, 12, 36)},  # naive
        {"now": "2015-08-30"},
        {"expires": 0},
        {"expires": 604_801},
        {"expires": 1.5},
    ],
)
def test_invalid_input_raises_value_error(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "endpoint": ENDPOINT,
        "region": REGION,
        "access_key": AK,
        "secret_key": SK,
        "session_token": None,
        "now": WHEN,
    }
    args.update(kwargs)
    with pytest.raises(ValueError):
        presign_mqtt_url(**args)  # type: ignore[arg-type]


def test_import_does_not_load_botocore() -> None:
    code = "import sys, iotauth.wire.sigv4; print(sorted(m for m in sys.modules if 'boto' in m))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_for_session_uses_the_sessions_credentials() -> None:
    class Frozen:
        access_key, secret_key, token = AK, SK, "tok"

    class Creds:
        def get_frozen_credentials(self) -> Frozen:
            return Frozen()

    class Session:
        def get_credentials(self) -> Creds:
            return Creds()

    url = sigv4.presign_mqtt_url_for_session(ENDPOINT, REGION, Session(), now=WHEN)
    assert url == presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok", now=WHEN)

    class Empty:
        def get_credentials(self) -> None:
            return None

    with pytest.raises(ValueError, match="no AWS credentials"):
        sigv4.presign_mqtt_url_for_session(ENDPOINT, REGION, Empty(), now=WHEN)


# -- verification -------------------------------------------------------------------------

SECRETS = {AK: SK, "ASIAOTHER": "other-secret"}


def verify(url: str, now: datetime | float = WHEN, **kwargs: object) -> str | None:
    return verify_presigned_url(url, ENDPOINT, REGION, SECRETS.get, now, **kwargs)  # type: ignore[arg-type]


def test_verify_accepts_own_urls() -> None:
    assert verify(presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok", now=WHEN)) == AK
    later = WHEN + timedelta(seconds=899)
    assert verify(presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN, expires=900), later) == AK
    # A local gateway URL with a port.
    url = presign_mqtt_url("ws://127.0.0.1:9001", REGION, AK, SK, now=WHEN)
    assert verify_presigned_url(url, "127.0.0.1:9001", REGION, SECRETS.get, WHEN) == AK
    assert verify_presigned_url(url, "127.0.0.1:9002", REGION, SECRETS.get, WHEN) is None


def test_verify_rejects_tampering_and_wrong_context() -> None:
    url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok", now=WHEN)
    sig = signature_of(url)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert verify(url.replace(sig, flipped)) is None
    assert verify(url.replace(ENDPOINT, "other-ats.iot.eu-west-1.amazonaws.com")) is None
    assert verify(url.replace("/mqtt?", "/mqtt2?")) is None
    assert verify(url.replace("SignedHeaders=host", "SignedHeaders=host%3Bx")) is None
    assert verify(url + "&X-Amz-Date=20150830T123600Z") is None  # duplicate parameter
    assert verify_presigned_url(url, ENDPOINT, "us-east-1", SECRETS.get, WHEN) is None
    # Signed with the right key id but another secret.
    forged = presign_mqtt_url(ENDPOINT, REGION, AK, "not-the-secret", now=WHEN)
    assert verify(forged) is None
    # Unknown key id.
    assert verify(presign_mqtt_url(ENDPOINT, REGION, "AKIDUNKNOWN", SK, now=WHEN)) is None


def test_verify_time_window() -> None:
    url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN)
    assert verify(url, WHEN + timedelta(seconds=900)) == AK
    assert verify(url, WHEN + timedelta(seconds=901)) is None
    assert verify(url, WHEN - timedelta(seconds=300)) == AK
    assert verify(url, WHEN - timedelta(seconds=301)) is None
    short = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN, expires=60)
    assert verify(short, WHEN + timedelta(seconds=61)) is None
    assert verify(url, WHEN + timedelta(seconds=100), max_age=60) is None


def test_verify_session_token_check() -> None:
    tokens = {AK: "tok"}
    url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, "tok", now=WHEN)
    assert verify(url, expected_token=tokens.get) == AK
    assert verify(url.replace("=tok", "=tok2"), expected_token=tokens.get) is None
    bare = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN)
    assert verify(bare, expected_token=tokens.get) is None
    assert verify(url, expected_token=lambda _: None) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_verify_never_raises_on_junk(junk: str) -> None:
    assert verify(junk) is None
    assert verify("wss://" + ENDPOINT + "/mqtt?" + junk) is None


def test_verify_never_raises_when_lookup_fails() -> None:
    def boom(_: str) -> str:
        raise RuntimeError("store down")

    url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, now=WHEN)
    assert verify_presigned_url(url, ENDPOINT, REGION, boom, WHEN) is None
