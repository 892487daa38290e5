"""mqtt.js 5.16.0 over wss with a JWT in the URL's query string, as a browser connects with a
token straight to the authorizer (issue 17; REFERENCE §3: browsers cannot set WebSocket
headers). ``wss://localhost:<iot port>/mqtt?x-amz-customauthorizer-name=iotauth&
iotauth-token=<JWT>``, client id ``web-<sub>``, no username or password; MQTT 3.1.1 and 5.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.token_support import token_for
from tests.interop.test_mqttjs import events_of


def token_scenario(info: StackInfo, token: str, client_id: str, version: int) -> dict[str, Any]:
    query = urlencode(
        {"x-amz-customauthorizer-name": info.authorizer_name, info.token_key_name: token}
    )
    return {
        "url": f"wss://localhost:{info.iot_port}/mqtt?{query}",
        "caFile": str(info.ca_cert_path),
        "options": {"clientId": client_id, "protocolVersion": version},
    }


@pytest.mark.parametrize("version", [4, 5])
def test_a_token_in_the_websocket_url(stack: StackInfo, version: int) -> None:
    scenario = token_scenario(stack, token_for(stack, "alice"), "web-alice", version)
    scenario["steps"] = [
        {"op": "subscribe", "topic": "web-alice/telemetry"},
        {"op": "publish", "topic": "web-alice/telemetry", "payload": "21.5"},
        {"op": "expect_message"},
        {"op": "subscribe", "topic": "web-bob/telemetry"},
    ]
    seen = events_of(scenario)
    assert seen["connect"] == [{"event": "connect", "reasonCode": 0}]
    own, foreign = seen["suback"]
    assert [(g["topic"], g["qos"]) for g in own["granted"]] == [("web-alice/telemetry", 1)]
    assert seen["puback"][0]["result"] == {"ok": True}
    assert seen["message"][0]["received"] == [{"topic": "web-alice/telemetry", "payload": "21.5"}]
    expected = "Not authorized" if version == 5 else "Unspecified error"
    assert foreign["granted"]["error"] == f"Subscribe error: {expected}"


@pytest.mark.parametrize("version", [4, 5])
def test_another_users_client_id_or_a_forged_token_is_refused(
    stack: StackInfo, version: int
) -> None:
    token = token_for(stack, "alice")
    forged = token.rsplit(".", 1)[0] + "." + token_for(stack, "bob").rsplit(".", 1)[1]
    for token_sent, client_id in ((token, "web-bob"), (forged, "web-alice")):
        seen = events_of(token_scenario(stack, token_sent, client_id, version))
        assert "connect" not in seen
        assert seen["error"][0]["code"] == (5 if version == 4 else 0x87)
