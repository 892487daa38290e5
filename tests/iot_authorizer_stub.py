"""A stand-in for IoT's ``TestInvokeAuthorizer`` on 127.0.0.1, reached via ``AWS_ENDPOINT_URL``.

moto does not implement that API, and botocore's Stubber would skip the wire: this answers
``POST /authorizer/{name}/test`` over real HTTP, so a test sees the request exactly as
botocore serialized it (the MQTT password a base64 blob) and botocore parses a real answer.
An authorizer is given as the credentials it accepts and the response it then returns;
anything else gets ``isAuthenticated: false``, as a deployed authorizer would answer.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["IotAuthorizerStub", "iot_authorizer"]

_PATH = re.compile(r"^/authorizer/(?P<name>[^/?]+)/test$")


@dataclass
class IotAuthorizerStub:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Each request: ``path``, ``headers`` and the JSON ``body``."""
    accepts: dict[tuple[str, str, bytes, str], dict[str, Any]] = field(default_factory=dict)
    failure: tuple[int, str, str] | None = None

    def accept(
        self,
        authorizer: str,
        username: str,
        password: bytes,
        answer: dict[str, Any],
        client_id: str | None = None,
    ) -> None:
        """``authorizer`` authenticates ``username``/``password`` under ``client_id`` (default:
        the username) and answers ``answer`` (the API's fields but isAuthenticated)."""
        key = (authorizer, username, password, client_id or username)
        self.accepts[key] = {"isAuthenticated": True, **answer}

    def fail(self, status: int, code: str, message: str) -> None:
        """Every later call fails with this API error."""
        self.failure = (status, code, message)

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        match = _PATH.match(path)
        if match is None:
            return _error(404, "UnknownOperationException", f"no route {path}")
        if self.failure is not None:
            return _error(*self.failure)
        if not (isinstance(body.get("mqttContext"), dict) or "token" in body):
            return _error(400, "InvalidRequestException", "no context")
        mqtt = body.get("mqttContext", {})
        try:
            password = base64.b64decode(mqtt.get("password", ""), validate=True)
        except ValueError:
            return _error(400, "InvalidRequestException", "password is not base64")
        key = (match["name"], str(mqtt.get("username")), password, str(mqtt.get("clientId")))
        response = self.accepts.get(key, {"isAuthenticated": False})
        return 200, {"Content-Type": "application/json"}, json.dumps(response).encode()


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    return status, headers, json.dumps({"message": message}).encode()


@pytest.fixture
def iot_authorizer(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[IotAuthorizerStub]:
    """The stub, running; ``AWS_ENDPOINT_URL`` points every AWS client at it."""
    stub = IotAuthorizerStub()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw or b"{}")
            stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, headers, payload = stub.answer(self.path, body)
            self.send_response(status)
            for name, value in {"Content-Length": str(len(payload)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", stub.url)
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
