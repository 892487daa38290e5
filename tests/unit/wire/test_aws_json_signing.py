"""SigV4 header signing (iotauth.wire.sigv4.sign_request_headers, iotauth.wire.aws_json)
against botocore.

The oracle is botocore's ``SigV4Auth`` on an ``AWSRequest`` with the same method, URL,
headers, body and time (a dev dependency only). First the signing function over varied
inputs, then the requests the transport really puts on the wire, captured by a local
HTTP server: the Authorization header must agree byte for byte.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from iotauth.wire.aws_json import DYNAMODB, KMS, AwsJsonClient, AwsTransport, Credentials, Endpoint
from iotauth.wire.sigv4 import canonical_query_string, sign_request_headers

AK = "ASIAQEXAMPLEKEYID123"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
TOKEN = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def=" * 11)[:690]
WHEN = dt.datetime(2026, 12, 1, 8, 30, 15, tzinfo=dt.UTC)
AMZ_DATE = WHEN.strftime("%Y%m%dT%H%M%SZ")


def botocore_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    service: str,
    region: str,
    token: str | None,
    when: dt.datetime = WHEN,
) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    auth = SigV4Auth(BotoCredentials(AK, SK, token), service, region)
    naive = when.astimezone(dt.UTC).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        auth.add_auth(request)
    return {k: v for k, v in request.headers.items()}


CASES: list[tuple[str, str, str, str, dict[str, str], bytes, str, str]] = [
    # method, host, path, query, headers, body, service, region
    (
        "POST",
        "dynamodb.eu-west-1.amazonaws.com",
        "/",
        "",
        {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.BatchGetItem",
        },
        b'{"RequestItems":{"t":{"Keys":[{"pk":{"S":"identity#alice"}}]}}}',
        "dynamodb",
        "eu-west-1",
    ),
    (
        "POST",
        "kms.cn-north-1.amazonaws.com.cn",
        "/",
        "",
        {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Decrypt"},
        b'{"CiphertextBlob":"AQIDBA=="}',
        "kms",
        "cn-north-1",
    ),
    (
        "POST",
        "127.0.0.1:4566",
        "/",
        "",
        {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.PutItem"},
        '{"Item":{"pk":{"S":"ünïcode ✓"}}}'.encode(),
        "dynamodb",
        "us-east-1",
    ),
    (
        "GET",
        "iot.us-west-2.amazonaws.com",
        "/endpoint",
        canonical_query_string([("endpointType", "iot:Data-ATS")]),
        {},
        b"",
        "iot",
        "us-west-2",
    ),
    (
        "POST",
        "sts.ap-southeast-2.amazonaws.com",
        "/",
        "",
        {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Custom": "  spaced   out value ",
        },
        b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr",
        "sts",
        "ap-southeast-2",
    ),
]


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[6]}-{c[0]}" for c in CASES])
def test_signature_equals_botocore(case: tuple[Any, ...], token: str | None) -> None:
    method, host, path, query, headers, body, service, region = case
    ours = sign_request_headers(
        method, host, path, query, headers, body, service, region, AK, SK, token, AMZ_DATE
    )
    scheme = "http" if host.startswith("127.") else "https"
    url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
    theirs = botocore_headers(method, url, headers, body, service, region, token)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"] == AMZ_DATE
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token")


def test_a_different_secret_gives_a_different_signature() -> None:
    method, host, path, query, headers, body, service, region = CASES[0]
    one = sign_request_headers(
        method, host, path, query, headers, body, service, region, AK, SK, None, AMZ_DATE
    )
    other = sign_request_headers(
        method, host, path, query, headers, body, service, region, AK, SK + "x", None, AMZ_DATE
    )
    assert one["Authorization"] != other["Authorization"]


# -- what the transport sends ----------------------------------------------------------------


class _Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.seen.append((self.command, self.path, dict(self.headers.items()), body))
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[int, list[tuple[str, str, dict[str, str], bytes]]]]:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    handler = type("Capture", (_Capture,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("service", [DYNAMODB, KMS], ids=["dynamodb", "kms"])
def test_requests_on_the_wire_are_signed_as_botocore_signs_them(
    capture: tuple[int, list[Any]], token: str | None, service: Any
) -> None:
    port, seen = capture
    transport = AwsTransport(
        service,
        region="eu-central-1",
        endpoint=Endpoint("http", "127.0.0.1", port),
        credentials=Credentials(AK, SK, token),
        connect_timeout=2,
        read_timeout=2,
        max_attempts=1,
    )
    transport._clock = WHEN.timestamp  # a fixed signing time
    client = AwsJsonClient(transport)
    params = {"TableName": "t", "Key": {"pk": {"S": "lockout#bob"}}, "n": [1, 2.5, None]}
    assert client.call("DeleteItem", params) == {}
    assert client.call("DeleteItem", params) == {}  # again, on the kept-alive connection
    assert len(seen) == 2
    method, path, headers, body = seen[-1]
    assert json.loads(body) == params
    assert headers["X-Amz-Target"] == f"{service.target_prefix}.DeleteItem"
    assert headers["Content-Type"] == f"application/x-amz-json-{service.json_version}"
    signed = {k: headers[k] for k in ("Content-Type", "X-Amz-Target")}
    theirs = botocore_headers(
        method,
        f"http://127.0.0.1:{port}{path}",
        signed,
        body,
        service.signing_name,
        "eu-central-1",
        token,
    )
    assert headers["Host"] == f"127.0.0.1:{port}"
    assert headers["Authorization"] == theirs["Authorization"]
    assert headers["X-Amz-Date"] == theirs["X-Amz-Date"]
    assert headers.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token")
