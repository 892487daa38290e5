"""paho-mqtt 2.2 with a JWT as the MQTT password (issue 17): username ``$jwt`` (with the
authorizer's name on iot:Data-ATS), password the token, client id ``web-<sub>``; TLS with
ALPN ``mqtt`` on the IoT port and plain TCP on the device endpoint, MQTT 3.1.1 and 5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from iotauth.local.stack import StackInfo
from tests.e2e.token_support import JWT_USERNAME, token_for
from tests.interop.conftest import WAIT, username_for
from tests.interop.test_paho import VERSIONS, Paho


@pytest.fixture
def paho_client() -> Iterator[Callable[[str, str, str], Paho]]:
    made: list[Paho] = []

    def make(client_id: str, transport: str, version: str) -> Paho:
        made.append(Paho(client_id, transport, version))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", ["tls", "tcp"])
def test_a_jwt_as_the_password(
    stack: StackInfo, paho_client: Callable[[str, str, str], Paho], transport: str, version: str
) -> None:
    client = paho_client("web-alice", transport, version)
    connack = client.connect(
        stack, username_for(stack, JWT_USERNAME), token_for(stack, "alice", alg="ES256")
    )
    assert connack is not None and not connack.is_failure, connack
    granted = client.subscribe("web-alice/inbox")
    assert not granted.is_failure and granted.value == 1
    assert client.publish("web-alice/inbox", b"hi") is not None
    assert client.messages.get(timeout=WAIT) == ("web-alice/inbox", b"hi")
    refused = client.subscribe("web-bob/inbox")
    assert refused.is_failure


@pytest.mark.parametrize("version", VERSIONS)
def test_another_users_token_is_refused(
    stack: StackInfo, paho_client: Callable[[str, str, str], Paho], version: str
) -> None:
    token = token_for(stack, "bob")
    client = paho_client("web-alice", "tls", version)  # bob's token, alice's client id
    connack = client.connect(stack, username_for(stack, JWT_USERNAME), token)
    assert connack is not None and str(connack) == "Not authorized"
