"""Browsers' path: the signer's presigned URL, verified by the gateway like IoT Core does.

The URL's SigV4 signature is checked against the credentials moto's STS issued, within 15
minutes of ``X-Amz-Date``; the connection then gets exactly the session policy the signer
passed to ``AssumeRole``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from iotauth.access.scoping import ArnContext
from iotauth.local.stack import StackInfo
from iotauth.wire.sigv4 import presign_mqtt_url
from tests.e2e.conftest import Mqtt, unique, ws_path_of
from tests.stack_support import assume_client_role

pytestmark = pytest.mark.e2e

MakeClient = Callable[..., Mqtt]
ARN = ArnContext("aws", "us-east-1", "123456789012")


def signer_get(
    info: StackInfo, token: str | None, method: str = "GET", origin: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if origin is not None:
        headers["Origin"] = origin
        if method == "OPTIONS":
            headers["Access-Control-Request-Method"] = "GET"
            headers["Access-Control-Request-Headers"] = "authorization"
    request = urllib.request.Request(info.signer_url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def signed_url(info: StackInfo, user: str) -> dict[str, Any]:
    status, headers, body = signer_get(info, info.dev_tokens[user])
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    answer: dict[str, Any] = json.loads(body)
    return answer


def connect_ws(client: Mqtt, info: StackInfo, url: str) -> bool:
    assert url.startswith(f"ws://127.0.0.1:{info.ws_port}/mqtt?")
    return client.connect(info.ws_port, ws_path=ws_path_of(url))


def refused_at_upgrade(client: Mqtt, info: StackInfo, url: str) -> bool:
    try:
        connect_ws(client, info, url)
    except OSError:  # paho: WebsocketConnectionError, the upgrade got HTTP 403
        return True
    return False


def policy(*statements: tuple[str, str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": action, "Resource": ARN.resource(*res.split(":", 1))}
            for action, res in statements
        ],
    }


# --- the signer's HTTP API ---------------------------------------------------------------


def test_signer_requires_a_bearer_token(stack: StackInfo) -> None:
    assert signer_get(stack, None)[0] == 401
    assert signer_get(stack, "not-a-dev-token")[0] == 401


def test_signer_answers_cors_preflight_for_the_page(stack: StackInfo) -> None:
    origin = stack.page_url.rstrip("/")
    status, headers, _ = signer_get(stack, None, method="OPTIONS", origin=origin)
    assert status in (200, 204)
    assert headers["Access-Control-Allow-Origin"] == origin
    status, headers, _ = signer_get(stack, None, "OPTIONS", origin="http://evil.example")
    assert "Access-Control-Allow-Origin" not in headers


def test_signer_returns_a_scoped_url(stack: StackInfo) -> None:
    answer = signed_url(stack, "alice")
    assert answer["clientId"] == "web-alice"
    assert "web-alice/#" in answer["topics"]["subscribe"]
    assert "X-Amz-Signature=" in answer["url"]


# --- presigned URLs at the gateway --------------------------------------------------------


def test_presigned_url_is_accepted_and_scoped(stack: StackInfo, clients: MakeClient) -> None:
    alice_url = signed_url(stack, "alice")
    alice = clients(alice_url["clientId"], "ws")
    assert connect_ws(alice, stack, alice_url["url"])
    assert alice.subscribe("web-alice/#")
    assert not alice.subscribe("web-bob/#")
    assert alice.subscribe(f"{stack.chat_room}/+")  # the room: one level per sender

    bob_url = signed_url(stack, "bob")
    bob = clients(bob_url["clientId"], "ws")
    assert connect_ws(bob, stack, bob_url["url"])
    assert bob.subscribe(f"{stack.chat_room}/+")

    alice.publish("web-alice/notes", b"private", qos=1)
    assert alice.next_message().payload == b"private"
    bob.publish(f"{stack.chat_room}/web-bob", b"hello from bob", qos=1)
    assert alice.next_message().payload == b"hello from bob"
    assert bob.next_message().payload == b"hello from bob"
    assert bob.received() == []  # bob never saw alice's private topic


def test_presigned_url_publishing_elsewhere_disconnects(
    stack: StackInfo, clients: MakeClient
) -> None:
    answer = signed_url(stack, "bob")
    bob = clients(answer["clientId"], "ws")
    assert connect_ws(bob, stack, answer["url"])
    bob.publish("web-alice/inbox", b"forged", qos=1)
    assert bob.disconnected.wait(5)


def test_presigned_url_with_another_client_id_is_refused(
    stack: StackInfo, clients: MakeClient
) -> None:
    answer = signed_url(stack, "bob")
    assert not connect_ws(clients("web-alice", "ws"), stack, answer["url"])


def _tamper(url: str, name: str, value: str) -> str:
    start = url.index(f"{name}=") + len(name) + 1
    end = url.find("&", start)
    return url[:start] + value + (url[end:] if end != -1 else "")


def _param(url: str, name: str) -> str:
    start = url.index(f"{name}=") + len(name) + 1
    end = url.find("&", start)
    return url[start:] if end == -1 else url[start:end]


@pytest.mark.parametrize("part", ["signature", "date", "credential", "token", "no-token"])
def test_tampered_url_is_refused(stack: StackInfo, clients: MakeClient, part: str) -> None:
    alice = signed_url(stack, "alice")
    bob = signed_url(stack, "bob")
    url = alice["url"]
    signature = _param(url, "X-Amz-Signature")
    if part == "signature":
        flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
        url = _tamper(url, "X-Amz-Signature", flipped)
    elif part == "date":
        date = _param(url, "X-Amz-Date")
        url = _tamper(url, "X-Amz-Date", date[:-3] + ("00Z" if date[-3:] != "00Z" else "01Z"))
    elif part == "credential":
        url = _tamper(url, "X-Amz-Credential", _param(bob["url"], "X-Amz-Credential"))
    elif part == "token":
        url = _tamper(url, "X-Amz-Security-Token", _param(bob["url"], "X-Amz-Security-Token"))
    else:
        url = url[: url.index("&X-Amz-Security-Token=")]
    assert url != alice["url"]
    assert refused_at_upgrade(clients(alice["clientId"], "ws"), stack, url)


def test_url_signed_for_another_host_is_refused(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("web-x")
    creds = assume_client_role(stack, policy(("iot:Connect", f"client:{client_id}")), client_id)
    url = presign_mqtt_url(f"ws://localhost:{stack.ws_port}", stack.region, **creds)
    url = url.replace("ws://localhost:", "ws://127.0.0.1:")
    assert refused_at_upgrade(clients(client_id, "ws"), stack, url)


def test_expired_url_is_refused(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("web-x")
    creds = assume_client_role(stack, policy(("iot:Connect", f"client:{client_id}")), client_id)
    endpoint = f"ws://127.0.0.1:{stack.ws_port}"
    stale = presign_mqtt_url(endpoint, stack.region, **creds, now=time.time() - 16 * 60)
    assert refused_at_upgrade(clients(client_id, "ws"), stack, stale)
    fresh = presign_mqtt_url(endpoint, stack.region, **creds)  # same credentials, now
    assert connect_ws(clients(client_id, "ws"), stack, fresh)


def test_url_from_unknown_credentials_is_refused(stack: StackInfo, clients: MakeClient) -> None:
    url = presign_mqtt_url(
        f"ws://127.0.0.1:{stack.ws_port}",
        stack.region,
        "ASIAUNKNOWNKEY000000",
        "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
        "FwoGZXIvYXdzEXAMPLETOKEN",
    )
    assert refused_at_upgrade(clients("web-alice", "ws"), stack, url)


def test_session_policy_without_connect_is_refused(stack: StackInfo, clients: MakeClient) -> None:
    client_id = unique("web-x")
    creds = assume_client_role(
        stack, policy(("iot:Subscribe", f"topicfilter:{client_id}/*")), client_id
    )
    url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
    assert not connect_ws(clients(client_id, "ws"), stack, url)


def test_deliveries_are_filtered_by_receive(stack: StackInfo, clients: MakeClient) -> None:
    """A subscription allowed by a wildcard grant still delivers only what iot:Receive
    allows: subscribed to ``chat/room/#`` with Receive on ``chat/room/web-public`` only
    (``web-…`` last levels: the client role lets browsers publish in the shared root only
    under one)."""
    listener = unique("web-listener")
    creds = assume_client_role(
        stack,
        policy(
            ("iot:Connect", f"client:{listener}"),
            ("iot:Subscribe", "topicfilter:chat/room/*"),
            ("iot:Receive", "topic:chat/room/web-public"),
        ),
        listener,
    )
    url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
    sub = clients(listener, "ws")
    assert connect_ws(sub, stack, url)
    assert sub.subscribe("chat/room/#")

    speaker = unique("web-speaker")
    speaker_creds = assume_client_role(
        stack,
        policy(("iot:Connect", f"client:{speaker}"), ("iot:Publish", "topic:chat/room/*")),
        speaker,
    )
    speaker_url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **speaker_creds)
    pub = clients(speaker, "ws")
    assert connect_ws(pub, stack, speaker_url)
    pub.publish("chat/room/web-secret", b"not for you", qos=1)
    pub.publish("chat/room/web-public", b"for everyone", qos=1)
    message = sub.next_message()
    assert (message.topic, message.payload) == ("chat/room/web-public", b"for everyone")
    assert sub.received() == []  # chat/room/web-secret was published first, never delivered
    assert not sub.disconnected.is_set()


def test_session_policy_cannot_exceed_the_role(stack: StackInfo, clients: MakeClient) -> None:
    """Effective permissions are session policy ∩ role policy, as in AWS: the client role
    allows only ``web-*`` client ids and topics, whatever the session policy says."""
    client_id = unique("device")
    creds = assume_client_role(
        stack,
        policy(("iot:Connect", f"client:{client_id}"), ("iot:Subscribe", "topicfilter:*")),
        client_id,
    )
    url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
    assert not connect_ws(clients(client_id, "ws"), stack, url)

    web_id = unique("web-y")
    creds = assume_client_role(
        stack,
        policy(("iot:Connect", f"client:{web_id}"), ("iot:Subscribe", "topicfilter:*")),
        web_id,
    )
    url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
    browser = clients(web_id, "ws")
    assert connect_ws(browser, stack, url)
    assert browser.subscribe(f"{web_id}/#")
    assert not browser.subscribe("sensor-1/#")  # the session policy allows it; the role not


def test_client_role_never_lets_a_browser_post_as_a_device(
    stack: StackInfo, clients: MakeClient
) -> None:
    """Even a session policy that allows the whole shared root cannot post under a sender
    level that is not a browser's (web-…): the client role caps it (README: Trusting the
    sender)."""
    browser_id = unique("web-wide")
    creds = assume_client_role(
        stack,
        policy(("iot:Connect", f"client:{browser_id}"), ("iot:Publish", "topic:chat/*")),
        browser_id,
    )
    url = presign_mqtt_url(f"ws://127.0.0.1:{stack.ws_port}", stack.region, **creds)
    browser = clients(browser_id, "ws")
    assert connect_ws(browser, stack, url)
    browser.publish(f"{stack.chat_room}/sensor-1", b"forged", qos=1)
    assert browser.disconnected.wait(5)
