"""WebSocket handshakes at the gateway: the SDK's SigV4 signature (``connection;host``) over
wss on the IoT port, and a verified URL's grant bound to its one connection."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import Callable

import pytest
from awscrt import auth, http

from iotauth.access.scoping import ArnContext
from iotauth.local.stack import StackInfo
from iotauth.wire.sigv4 import presign_mqtt_url
from tests.e2e.conftest import WAIT, Mqtt, unique
from tests.stack_support import assume_client_role

pytestmark = pytest.mark.e2e

ARN = ArnContext("aws", "us-east-1", "123456789012")
MakeClient = Callable[..., Mqtt]


def _policy(client_id: str) -> dict[str, object]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": ARN.resource("client", client_id),
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ARN.resource("topicfilter", f"{client_id}/*"),
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": ARN.resource("topic", f"{client_id}/*"),
            },
        ],
    }


def _crt_signed_path(host: str, creds: dict[str, str], region: str) -> str:
    request = http.HttpRequest(
        "GET", "/mqtt", headers=http.HttpHeaders([("Host", host), ("Connection", "Upgrade")])
    )
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(
            creds["access_key"], creds["secret_key"], creds["session_token"]
        ),
        region=region,
        service="iotdevicegateway",
        omit_session_token=True,
        date=dt.datetime.now(dt.UTC),
    )
    path: str = auth.aws_sign_request(request, config).result(10).path
    return path


@pytest.mark.parametrize("version", [4, 5])
def test_sdk_style_sigv4_over_wss_on_the_iot_port(
    stack: StackInfo, clients: MakeClient, version: int
) -> None:
    client_id = unique("web-sdk")
    creds = assume_client_role(stack, _policy(client_id), client_id)
    path = _crt_signed_path(f"localhost:{stack.iot_port}", creds, stack.region)
    assert "X-Amz-SignedHeaders=connection%3Bhost" in path
    client = clients(client_id, "wss", version)
    assert client.connect(stack.iot_port, ws_path=path, ca_cert=stack.ca_cert_path)
    assert client.subscribe(f"{client_id}/#")
    client.publish(f"{client_id}/x", b"signed by awscrt", qos=1)
    assert client.next_message().payload == b"signed by awscrt"
    assert not client.subscribe("sensor-1/#")


def _broken_upgrade(port: int, path: str) -> bytes:
    """A valid presigned URL in an upgrade that fails after verification (no key)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(request)
        return sock.recv(12)


def test_a_verified_url_is_bound_to_its_one_connection(
    stack: StackInfo, clients: MakeClient
) -> None:
    """The old gateway kept a verified URL's policies under id(connection) until the
    handshake completed: after a handshake that failed, a later anonymous connection that
    reused the id got them (3 of 14 in a probe). Here no anonymous connection ever does."""
    client_id = unique("web-victim")
    creds = assume_client_role(stack, _policy(client_id), client_id)
    for _ in range(14):
        url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
        path = url.split(f"{stack.ws_port}", 1)[1]
        assert not _broken_upgrade(stack.ws_port, path).startswith(b"HTTP/1.1 101")
        anonymous = clients(client_id, "ws")
        assert not anonymous.connect(stack.ws_port, ws_path="/mqtt")  # no URL, no credentials
        anonymous.close()
    # The same URL in a complete handshake works: the refusals above were not the URL's.
    url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
    good = clients(client_id, "ws")
    assert good.connect(stack.ws_port, ws_path=url.split(f"{stack.ws_port}", 1)[1])


def test_other_paths_and_plain_https_are_refused(stack: StackInfo) -> None:
    context = ssl.create_default_context(cafile=str(stack.ca_cert_path))
    with (
        socket.create_connection(("127.0.0.1", stack.iot_port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(12) == b"HTTP/1.1 404"
    with (
        socket.create_connection(("127.0.0.1", stack.iot_port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n")  # no upgrade
        status = tls.recv(12)
        assert status.startswith(b"HTTP/1.1 4")
