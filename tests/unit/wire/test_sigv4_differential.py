"""iotauth.wire.sigv4 against three independent implementations, at fixed times.

Oracles (dev dependencies only): botocore ``SigV4QueryAuth`` signing with credentials
*without* the token (the token is appended afterwards), awscrt with
``omit_session_token=True``, and aws-signv4-mqtt (clock patched). Parameter order differs
between them; the signatures must agree byte for byte.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from iotauth.wire.sigv4 import presign_mqtt_url

ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.ap-northeast-1.amazonaws.com"
REGION = "ap-northeast-1"
AK = "ASIAQEXAMPLEKEYID123"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
# A token shaped like STS's (base64, '+', '/', '='), long as real ones are.
TOKEN = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def=" * 11)[:690]
TIMES = [
    dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC),
    dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.UTC),
    dt.datetime(2031, 1, 1, 0, 0, 0, tzinfo=dt.UTC),
]
CASES = [(when, token) for when in TIMES for token in (None, TOKEN)]


def params(url: str) -> dict[str, str]:
    pairs = parse_qsl(urlsplit(url).query, strict_parsing=True, keep_blank_values=True)
    out = dict(pairs)
    assert len(out) == len(pairs)
    return out


def botocore_url(when: dt.datetime, token: str | None, expires: int) -> str:
    from unittest import mock

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"https://{ENDPOINT}/mqtt")
    auth = SigV4QueryAuth(Credentials(AK, SK), "iotdevicegateway", REGION, expires=expires)
    naive = when.astimezone(dt.UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        auth.add_auth(request)
    url = request.prepare().url
    if token:
        url += "&X-Amz-Security-Token=" + quote(token, safe="")
    return url


def awscrt_url(when: dt.datetime, token: str | None, expires: int | None) -> str:
    from awscrt import auth, http

    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(AK, SK, token),
        region=REGION,
        service="iotdevicegateway",
        date=when,
        omit_session_token=True,
        expiration_in_seconds=expires,
    )
    request = http.HttpRequest("GET", "/mqtt", http.HttpHeaders([("host", ENDPOINT)]))
    signed = auth.aws_sign_request(request, config).result(timeout=10)
    return f"wss://{ENDPOINT}{signed.path}"


def signv4_mqtt_url(when: dt.datetime, token: str | None) -> str:
    from unittest import mock

    import aws_signv4_mqtt

    class FrozenClock(dt.datetime):
        @classmethod
        def utcnow(cls) -> dt.datetime:  # type: ignore[override]
            return when.astimezone(dt.UTC).replace(tzinfo=None)

    with mock.patch.object(aws_signv4_mqtt.datetime, "datetime", FrozenClock):
        url: str = aws_signv4_mqtt.generate_signv4_mqtt(ENDPOINT, REGION, AK, SK, token)
    return url


@pytest.mark.parametrize(("when", "token"), CASES)
def test_agrees_with_botocore(when: dt.datetime, token: str | None) -> None:
    ours = params(presign_mqtt_url(ENDPOINT, REGION, AK, SK, token, now=when, expires=3600))
    theirs = params(botocore_url(when, token, 3600))
    assert ours == theirs
    assert ours["X-Amz-SignedHeaders"] == "host"


@pytest.mark.parametrize(("when", "token"), CASES)
@pytest.mark.parametrize("expires", [None, 900])
def test_agrees_with_awscrt(when: dt.datetime, token: str | None, expires: int | None) -> None:
    ours = params(presign_mqtt_url(ENDPOINT, REGION, AK, SK, token, now=when, expires=expires))
    theirs = params(awscrt_url(when, token, expires))
    assert ours == theirs
    if token:
        assert theirs["X-Amz-Security-Token"] == token


@pytest.mark.parametrize(("when", "token"), CASES)
def test_agrees_with_aws_signv4_mqtt(when: dt.datetime, token: str | None) -> None:
    ours_url = presign_mqtt_url(ENDPOINT, REGION, AK, SK, token, now=when)
    theirs = params(signv4_mqtt_url(when, token))
    assert params(ours_url) == theirs
    assert urlsplit(ours_url)[:3] == ("wss", ENDPOINT, "/mqtt")


def test_awscrt_without_omit_would_differ() -> None:
    # The trap REFERENCE §5 warns about: generic SigV4 signs the token.
    from awscrt import auth, http

    when = TIMES[0]
    config = auth.AwsSigningConfig(
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(AK, SK, TOKEN),
        region=REGION,
        service="iotdevicegateway",
        date=when,
    )
    request = http.HttpRequest("GET", "/mqtt", http.HttpHeaders([("host", ENDPOINT)]))
    generic = auth.aws_sign_request(request, config).result(timeout=10)
    ours = params(presign_mqtt_url(ENDPOINT, REGION, AK, SK, TOKEN, now=when))
    assert params(f"wss://{ENDPOINT}{generic.path}")["X-Amz-Signature"] != ours["X-Amz-Signature"]
