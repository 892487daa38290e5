"""The chat page's /config.json carries the development tokens: it is served only to the
page's own origin (Host and, when sent, Origin), never with CORS headers."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from iotauth.local.stack import StackInfo

pytestmark = pytest.mark.e2e


def get(info: StackInfo, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    port = urlsplit(info.page_url).port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", "/config.json", skip_host=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_config_json_only_for_the_pages_own_origin(stack: StackInfo) -> None:
    port = urlsplit(stack.page_url).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, headers, body = get(stack, {"Host": host})
        assert status == 200
        assert json.loads(body)["devTokens"] == stack.dev_tokens
        assert not any(name.lower().startswith("access-control-") for name in headers)
        status, _, body = get(stack, {"Host": host, "Origin": f"http://{host}"})
        assert status == 200
    token = stack.dev_tokens["alice"].encode()
    for headers in (
        {"Host": "evil.example"},  # DNS rebinding: the page's port, another name
        {"Host": f"evil.example:{port}"},
        {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"},
        {},
    ):
        status, answer_headers, body = get(stack, headers)
        assert status == 403, headers
        assert token not in body
        assert not any(name.lower().startswith("access-control-") for name in answer_headers)
