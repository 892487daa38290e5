"""Issue 8.2: usernames as real clients send them (REFERENCE §9) are one identity with one
lockout counter, whatever the suffix."""

from __future__ import annotations

import pytest

from iotauth.connect.event import parse_connect_event, split_username
from iotauth.identities.store import MemoryStore
from tests.authorizer_support import NOW, add_password_identity, connect_event, decide

V2_METRICS = (
    "?x-amz-customauthorizer-name=iotauth&SDK=IoTDeviceSDK/Python&Platform=Unix"
    "&Metadata=(CRTVersion=0.36.1;IoTSDKVersion=1.31.0;IoTSDKFeature=0;IoTSDKMetricsVersion=1)"
)
# (suffix as the client appends it, authorizer name IoT would see, SDK parameter)
SUFFIXES = [
    ("", None, None),  # bare name (a default authorizer on the endpoint)
    ("?x-amz-customauthorizer-name=iotauth", "iotauth", None),
    (V2_METRICS, "iotauth", "IoTDeviceSDK/Python"),  # awsiotsdk 1.31.0 builders
    ("?x-amz-customauthorizer-name=iotauth?SDK=Python&Version=1.6.2", "iotauth", "Python"),  # v1
    ("?SDK=IoTDeviceSDK/Python&Platform=Unix", None, "IoTDeviceSDK/Python"),  # v2, no name
    ("?x-amz-customauthorizer-name=iotauth&SDK=PythonV2&Version=1.22.0", "iotauth", "PythonV2"),
]


@pytest.mark.parametrize(("suffix", "authorizer", "sdk"), SUFFIXES)
@pytest.mark.parametrize("name", ["sensor-01", "dev1&a1B2c3D4e5F"])  # LinkKit: dn&pk
def test_one_identity_whatever_the_suffix(
    name: str, suffix: str, authorizer: str | None, sdk: str | None
) -> None:
    event = connect_event(name, "pw", "cid", suffix=suffix)
    request = parse_connect_event(event)
    assert request.problem is None
    assert request.username == name
    assert request.authorizer_name == authorizer
    assert request.sdk == sdk
    assert split_username(name + suffix)[0] == name


def test_one_lockout_counter_whatever_the_suffix() -> None:
    store = MemoryStore()  # chosen passwords are the ones with a lockout counter
    add_password_identity(store, "sensor-01", "correct horse battery")
    for i, (suffix, _, _) in enumerate(SUFFIXES[:5]):  # five failures, five spellings
        event = connect_event("sensor-01", "wrong guess here", "sensor-01", suffix=suffix)
        assert decide(store, event, now=NOW + i).reason == "bad-password"
    assert set(store.lockouts) == {"sensor-01"}
    for suffix, _, _ in SUFFIXES:  # locked under every spelling, even with the password
        event = connect_event("sensor-01", "correct horse battery", "sensor-01", suffix=suffix)
        assert decide(store, event, now=NOW + 10).reason == "locked"
