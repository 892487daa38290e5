"""The local stack's AWS endpoint (moto + IoT's DeleteConnection) answers SDKs only.

It holds every verifier and Aliyun device secret of the stack, and moto by itself answers any
origin with CORS headers, so while ``make run`` is up any web page the developer visits could
read the table or add itself an identity. SDKs never send ``Origin`` and always name the
endpoint's own host; browsers always send ``Origin`` on a cross-site (or non-GET) request and
a DNS-rebinding page names another host. Both are refused, without CORS headers.
"""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import boto3
import pytest

from iotauth.local.stack import StackInfo

pytestmark = pytest.mark.e2e

SCAN = json.dumps({"TableName": "iotauth-local"}).encode()


def request(
    info: StackInfo, method: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    port = urlsplit(info.aws_endpoint_url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, "/", skip_host=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_sdk_requests_still_reach_moto(stack: StackInfo) -> None:
    client = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name=stack.region)
    assert stack.table_name in client.list_tables()["TableNames"]


def test_browsers_and_other_hosts_get_nothing(stack: StackInfo) -> None:
    port = urlsplit(stack.aws_endpoint_url).port
    scan = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.Scan",
        "Authorization": (
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=00"
        ),
    }
    refused = [
        ("POST", {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example", **scan}, SCAN),
        ("POST", {"Host": f"evil.example:{port}", **scan}, SCAN),  # DNS rebinding
        ("POST", {"Host": "evil.example", **scan}, SCAN),
        (
            "OPTIONS",  # a CORS preflight
            {
                "Host": f"127.0.0.1:{port}",
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-amz-target,content-type",
            },
            b"",
        ),
        ("DELETE", {"Host": f"127.0.0.1:{port}", "Origin": "null"}, b""),
    ]
    for method, headers, body in refused:
        status, answer, payload = request(stack, method, headers, body)
        assert status == 403, (method, headers)
        assert not any(name.startswith("access-control-") for name in answer), answer
        assert b"verifier" not in payload and b"Items" not in payload
    # The same scan from the endpoint's own host and no Origin is what an SDK sends: answered.
    status, _, payload = request(stack, "POST", {"Host": f"127.0.0.1:{port}", **scan}, SCAN)
    assert status == 200
    assert b"Items" in payload
