"""Hypothesis: malformed or mutated events never raise and never authenticate."""

from __future__ import annotations

import base64
import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotauth.connect.event import parse_connect_event
from iotauth.identities.store import MemoryStore
from tests.authorizer_support import add_aliyun_identity, add_secret_identity, decide
from tests.conftest import load_event

STORE = MemoryStore()
ALICE = add_secret_identity(STORE, "alice")
add_aliyun_identity(STORE, "sensor1", "pk1", "s1", allow_no_timestamp=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

FIELDS = [
    ("protocols",),
    ("signatureVerified",),
    ("connectionMetadata",),
    ("connectionMetadata", "id"),
    ("protocolData",),
    ("protocolData", "tls"),
    ("protocolData", "mqtt"),
    ("protocolData", "mqtt", "username"),
    ("protocolData", "mqtt", "password"),
    ("protocolData", "mqtt", "clientId"),
    ("protocolData", "http"),
    ("protocolData", "http", "headers"),
    ("protocolData", "http", "queryString"),
]

credential_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["alice", "bob", "*", "#", "+", "alice*", "sensor1&pk1", "${iot:ClientId}"]),
    st.builds(
        lambda a, b: f"{a}?{b}",
        st.sampled_from(["alice", "sensor1&pk1", ""]),
        st.text(max_size=40),
    ),
)


def _set(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target: Any = event
    for key in path[:-1]:
        if not isinstance(target, dict):
            return
        target = target.setdefault(key, {})
    if isinstance(target, dict):
        target[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_raises_or_authenticates(event: Any) -> None:
    request = parse_connect_event(event)
    assert request.problem is not None or isinstance(event, dict)
    assert not decide(STORE, event).allowed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(FIELDS), json_values | credential_text), min_size=1, max_size=4
    )
)
def test_mutated_events_never_authenticate_without_the_secret(
    mutations: list[tuple[tuple[str, ...], Any]],
) -> None:
    event = copy.deepcopy(load_event("authorizer/connect-mqtt"))
    event["protocolData"]["mqtt"]["password"] = base64.b64encode(b"not the secret").decode()
    for path, value in mutations:
        _set(event, path, value)
    decision = decide(STORE, event)
    assert not decision.allowed


@settings(max_examples=200, deadline=None)
@given(credential_text, st.binary(max_size=64), credential_text)
def test_random_credentials_never_authenticate(
    username: str, password: bytes, client_id: str
) -> None:
    event = copy.deepcopy(load_event("authorizer/connect-mqtt"))
    mqtt = event["protocolData"]["mqtt"]
    mqtt.update(
        username=username,
        password=base64.b64encode(password).decode(),
        clientId=client_id,
    )
    assert not decide(STORE, event).allowed


@settings(max_examples=150, deadline=None)
@given(credential_text)
def test_right_secret_with_any_other_client_id_is_never_wider(client_id: str) -> None:
    event = copy.deepcopy(load_event("authorizer/connect-mqtt"))
    mqtt = event["protocolData"]["mqtt"]
    mqtt.update(
        username="alice", password=base64.b64encode(ALICE.encode()).decode(), clientId=client_id
    )
    STORE.lockouts.clear()  # earlier examples may have locked alice
    decision = decide(STORE, event)
    assert decision.allowed is (client_id == "alice")
