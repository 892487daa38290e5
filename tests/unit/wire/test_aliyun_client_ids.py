"""Aliyun client ids: one spelling per signature (issue 9.6) and devices that sign any safe
client id of their own (issue 8.3)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from iotauth.access.policy import PolicySet
from iotauth.identities.store import MemoryStore
from iotauth.wire import aliyun
from tests.authorizer_support import (
    ARN,
    NOW,
    SETTINGS,
    add_aliyun_identity,
    add_secret_identity,
    aliyun_event,
    decide,
)
from tests.unit.wire.test_aliyun_credentials import linkkit_connect_parameters


def _with_client_id(event: dict[str, Any], client_id: str) -> dict[str, Any]:
    event["protocolData"]["mqtt"]["clientId"] = client_id
    return event


def _plain_tcp(event: dict[str, Any]) -> dict[str, Any]:
    event["protocols"] = ["mqtt"]
    event["protocolData"].pop("tls", None)
    return event


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    return store


def test_the_documented_form_is_accepted(store: MemoryStore) -> None:
    assert decide(store, aliyun_event("sensor1", "pk1", "s3cret")).allowed


@pytest.mark.parametrize(
    "params",
    [
        "securemode=3,signmethod=hmacsha1,timestamp={ts}",  # securemode says TCP, but it is TLS
        "signmethod=hmacsha1,securemode=2,timestamp={ts}",  # another order
        "securemode=2,signmethod=hmacSHA1,timestamp={ts}",  # another spelling of the method
        "securemode=2,signmethod=hmacsha1,timestamp={ts},_v=x",  # an extra unsigned parameter
        "securemode=2,signmethod=hmacsha1,_v=1,timestamp={ts}",
    ],
)
def test_a_replay_under_another_spelling_is_refused(store: MemoryStore, params: str) -> None:
    """The same signature (same password) under another client id would be a second IoT
    client beside the device: refused, so a replay must collide with the device."""
    ts = str(NOW * 1000)
    event = aliyun_event("sensor1", "pk1", "s3cret")
    assert decide(store, event).allowed
    replay = _with_client_id(event, f"pk1&sensor1|{params.format(ts=ts)}|")
    assert decide(store, replay).reason == "client-id-not-canonical"


def test_securemode_is_bound_to_the_transport(store: MemoryStore) -> None:
    # The local stand-in's plain ports carry securemode 3 (TCP/ws); IoT Core is always TLS.
    assert decide(
        store, _plain_tcp(aliyun_event("sensor1", "pk1", "s3cret", securemode="3"))
    ).allowed
    decision = decide(store, _plain_tcp(aliyun_event("sensor1", "pk1", "s3cret")))
    assert decision.reason == "client-id-not-canonical"


def _linkkit_event(parameters: dict[str, str]) -> dict[str, Any]:
    return {
        "protocols": ["tls", "mqtt"],
        "signatureVerified": False,
        "protocolData": {
            "tls": {"serverName": "x-ats.iot.us-east-1.amazonaws.com"},
            "mqtt": {
                "username": parameters["username"],  # LinkKit sends no authorizer name
                "password": base64.b64encode(parameters["password"].encode()).decode(),
                "clientId": parameters["client_id"],
            },
        },
        "connectionMetadata": {"id": "11111111-2222-4333-8444-555555555555"},
    }


def test_linkkit_connects_unmodified_with_its_form() -> None:
    """What aliyun-iot-linkkit 1.2.13 itself builds (captured from its own code path)."""
    store = MemoryStore()
    add_aliyun_identity(store, "dev1", "a1B2c3D4e5F", "linkkit-secret", client_id_form="linkkit")
    theirs = linkkit_connect_parameters("a1B2c3D4e5F", "dev1", "linkkit-secret", NOW)
    assert ",_v=1.2.13," in theirs["client_id"]  # what the form pins
    assert decide(store, _linkkit_event(theirs)).allowed
    # The same capture under another _v (another SDK version's spelling) is refused …
    replay = dict(theirs, client_id=theirs["client_id"].replace("_v=1.2.13", "_v=1.2.14"))
    assert decide(store, _linkkit_event(replay)).reason == "client-id-not-canonical"
    # … and a record on the documented form refuses LinkKit's spelling.
    store2 = MemoryStore()
    add_aliyun_identity(store2, "dev1", "a1B2c3D4e5F", "linkkit-secret")
    assert decide(store2, _linkkit_event(theirs)).reason == "client-id-not-canonical"


def test_client_id_forms_render_and_validate() -> None:
    rendered = aliyun.canonical_client_id(
        "id", form="linkkit", tls=True, signmethod="hmacsha1", timestamp="17"
    )
    assert (
        rendered
        == "id|securemode=2,signmethod=hmacsha1,ext=1,_ss=1,lan=Python,_v=1.2.13,timestamp=17|"
    )
    assert (
        aliyun.canonical_client_id(
            "id", form=None, tls=True, signmethod="HMACSHA256", timestamp=None
        )
        == "id|securemode=2,signmethod=hmacsha256|"
    )
    for bad in (
        "signmethod={signmethod}",
        "securemode=2,signmethod={signmethod}",
        "securemode={securemode},signmethod={signmethod},x=${iot:ClientId}",
        "securemode={securemode},signmethod={signmethod},a=1,a=2",
        "securemode={securemode},signmethod={signmethod},timestamp=5",
    ):
        with pytest.raises(ValueError):
            aliyun.client_id_form(bad)


# -- any client id it signs (issue 8.3) ------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "reason"),
    [
        ("AABBCCDDEEFF", "allowed"),  # a MAC
        ("SN-2024-000123", "allowed"),  # a serial number
        ("web-alice", "client-id-not-allowed"),  # a browser user's
        ("pk2&other", "client-id-not-allowed"),  # another device's default (pk&dn shape)
        ("x" * 65, "malformed-client-id"),  # Aliyun's 64-character limit
    ],
)
def test_any_client_id_when_the_record_allows_it(client_id: str, reason: str) -> None:
    store = MemoryStore()
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret", any_client_id=True)
    event = aliyun_event("sensor1", "pk1", "s3cret", client_id=client_id)
    assert decide(store, event).reason == reason
    plain = MemoryStore()
    add_aliyun_identity(plain, "sensor1", "pk1", "s3cret")
    if reason == "allowed":
        assert decide(plain, event).reason == "client-id-not-allowed"


def test_product_wide_any_client_id_and_the_policy_names_that_client_id_only() -> None:
    store = MemoryStore()
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret")
    settings = SETTINGS.__class__(table="t", aliyun_any_client_id_products=frozenset({"pk1"}))
    event = aliyun_event("sensor1", "pk1", "s3cret", client_id="AABBCCDDEEFF")
    decision = decide(store, event, settings=settings)
    assert decision.allowed
    policy = PolicySet(decision.policy_documents)
    full = event["protocolData"]["mqtt"]["clientId"]
    assert policy.allows("iot:Connect", ARN.resource("client", full))
    # Its IoT client id is the whole '<id>|…|' string; the bare id is not granted.
    assert not policy.allows("iot:Connect", ARN.resource("client", "AABBCCDDEEFF"))
    other = SETTINGS.__class__(table="t", aliyun_any_client_id_products=frozenset({"pk2"}))
    assert decide(store, event, settings=other).reason == "client-id-not-allowed"


def test_any_client_id_never_takes_a_registered_one() -> None:
    store = MemoryStore()
    add_aliyun_identity(store, "sensor1", "pk1", "s3cret", any_client_id=True)
    add_aliyun_identity(store, "other", "pk1", "s2", client_ids=("MAC-B",))
    add_secret_identity(store, "SN-7")  # its default client id is its name
    for taken in ("MAC-B", "SN-7"):
        event = aliyun_event("sensor1", "pk1", "s3cret", client_id=taken)
        assert decide(store, event).reason == "client-id-not-allowed", taken
    assert decide(store, aliyun_event("sensor1", "pk1", "s3cret", client_id="SN-8")).allowed
    # Its own registered ids and its default stay usable.
    add_aliyun_identity(store, "dev3", "pk1", "s3", any_client_id=True, client_ids=("MAC-3",))
    assert decide(store, aliyun_event("dev3", "pk1", "s3", client_id="MAC-3")).allowed
    assert decide(store, aliyun_event("dev3", "pk1", "s3")).allowed
