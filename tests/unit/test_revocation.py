"""Which client ids an operator's revocation closes, and the DeleteConnection adapter's shape."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from iotauth.credentials import hash_generated_secret
from iotauth.records import IdentityRecord
from iotauth.revocation import (
    IotDataDisconnector,
    RevocationError,
    RevocationPlan,
    describe,
    plan_for,
    revoke,
)

VERIFIER = hash_generated_secret("iotsk_" + "A" * 43)


def _device(**fields: Any) -> IdentityRecord:
    return IdentityRecord(username="sensor-1", kind="secret", verifier=VERIFIER, **fields)


def _aliyun(**fields: Any) -> IdentityRecord:
    return IdentityRecord(username="dev1&pk1", kind="aliyun", device_secret="s3cret", **fields)


def test_password_identity_closes_exactly_its_client_ids() -> None:
    assert plan_for(_device()) == RevocationPlan(("sensor-1",))
    plan = plan_for(_device(client_ids=("sensor-1-a", "sensor-1-b")))
    assert plan.client_ids == ("sensor-1-a", "sensor-1-b")
    assert plan.bounded_seconds == 0  # nothing it can connect with is left out


def test_timestamped_aliyun_is_bounded_by_its_session() -> None:
    plan = plan_for(_aliyun(client_ids=("AA:BB:CC",)))
    assert plan.client_ids == ("pk1&dev1", "AA:BB:CC")
    assert plan.bounded_seconds == 3600 and "timestamp" in plan.why_bounded
    assert plan_for(_aliyun(disconnect_after=600)).bounded_seconds == 600
    short = plan_for(_aliyun(), deployment_disconnect_seconds=900)
    assert short.bounded_seconds == 900


def test_aliyun_without_timestamp_closes_the_spellings_sdks_send() -> None:
    plan = plan_for(_aliyun(allow_no_timestamp=True))
    assert "pk1&dev1|securemode=2,signmethod=hmacsha1|" in plan.client_ids
    assert "pk1&dev1|securemode=3,signmethod=hmacsha256|" in plan.client_ids
    assert len(plan.client_ids) == len(set(plan.client_ids)) == 1 + 2 * 3


class _Port:
    def __init__(self, live: set[str], fail_on: str | None = None) -> None:
        self.live, self.fail_on, self.asked = live, fail_on, []

    def disconnect(self, client_id: str) -> bool:
        self.asked.append(client_id)
        if client_id == self.fail_on:
            raise RevocationError("boom")
        if client_id in self.live:
            self.live.discard(client_id)
            return True
        return False


def test_revoke_reports_closed_and_absent() -> None:
    port = _Port({"b"})
    report = revoke(RevocationPlan(("a", "b")), port)
    assert (report.closed, report.not_connected) == (["b"], ["a"])
    lines = list(describe(report))
    assert lines == ["closed live connections: b"]
    bounded = revoke(RevocationPlan(("a",), 3600, "why"), _Port(set()))
    lines = list(describe(bounded))
    assert lines[0] == "no live connection found for its client ids"
    assert "3600 s" in lines[1]
    with pytest.raises(RevocationError):
        revoke(RevocationPlan(("a", "b")), _Port(set(), fail_on="a"))


@pytest.fixture
def iot_data(aws_env: None) -> tuple[Any, Stubber]:
    client = boto3.client(
        "iot-data", endpoint_url="https://example-ats.iot.us-east-1.amazonaws.com"
    )
    return client, Stubber(client)


def test_adapter_sends_deleteconnection_as_iot_expects(iot_data: tuple[Any, Stubber]) -> None:
    client, stub = iot_data
    params = {
        "clientId": "pk1&dev1|securemode=2,signmethod=hmacsha1|",
        "cleanSession": False,
        "preventWillMessage": True,
    }
    stub.add_response("delete_connection", {}, params)
    stub.add_client_error(
        "delete_connection",
        "ResourceNotFoundException",
        http_status_code=404,
        expected_params={**params, "clientId": "gone"},
    )
    stub.add_client_error("delete_connection", "ForbiddenException", http_status_code=403)
    made: list[str | None] = []

    def factory(url: str | None) -> Any:
        made.append(url)
        return client

    port = IotDataDisconnector(factory, "https://h")
    with stub:
        assert port.disconnect(params["clientId"]) is True
        assert port.disconnect("gone") is False
        with pytest.raises(RevocationError, match="ForbiddenException"):
            port.disconnect("x")
        stub.assert_no_pending_responses()
    assert made == ["https://h"]  # one client, created on first use


def test_client_id_is_percent_encoded_in_the_path(aws_env: None) -> None:
    """What goes on the wire (the stand-in and IoT read the id from the path)."""
    client = boto3.client("iot-data", endpoint_url="https://h.example")
    sent: list[str] = []

    def capture(request: Any, **_: Any) -> Any:
        sent.append(request.url)
        raise RuntimeError("stop before sending")

    client.meta.events.register("before-send.iot-data.DeleteConnection", capture)
    with pytest.raises(RuntimeError):
        client.delete_connection(
            clientId="pk&dn|securemode=2,signmethod=hmacsha1|",
            cleanSession=False,
            preventWillMessage=True,
        )
    assert sent == [
        "https://h.example/connections/pk%26dn%7Csecuremode%3D2%2Csignmethod%3Dhmacsha1%7C"
        "?cleanSession=false&preventWillMessage=true"
    ]


def test_identities_allowed_any_client_id_are_bounded() -> None:
    """identity's `any_client_id` records (COORDINATION §5): their ids cannot be named."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class AnyId(IdentityRecord):
        any_client_id: bool = True

    aliyun_any = AnyId(username="dev1&pk1", kind="aliyun", device_secret="s3cret")
    plan = plan_for(aliyun_any)
    assert plan.bounded_seconds == 3600 and "any client id" in plan.why_bounded
    device_any = AnyId(username="sensor-1", kind="secret", verifier=VERIFIER)
    plan = plan_for(device_any, deployment_disconnect_seconds=7200)
    assert plan.client_ids == ("sensor-1",) and plan.bounded_seconds == 7200
