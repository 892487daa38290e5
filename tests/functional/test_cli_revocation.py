"""`iotauth devices disable|rotate|remove|disconnect` close live connections.

The table is moto's; moto has no IoT data plane, so the iot-data client is botocore's own with
a Stubber that checks every DeleteConnection request's shape (the e2e test runs the same CLI
against the local stand-in's endpoint).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from iotauth.cli.devices import lifecycle
from iotauth.identities.store import DynamoDBStore
from tests.cli_support import Run


@pytest.fixture
def run(cli_with_table: Run) -> Run:
    return cli_with_table


def _expect(stub: Stubber, client_id: str, *, live: bool, clean: bool = False) -> None:
    params = {"clientId": client_id, "cleanSession": clean, "preventWillMessage": True}
    if live:
        stub.add_response("delete_connection", {}, params)
    else:
        stub.add_client_error(
            "delete_connection",
            "ResourceNotFoundException",
            "No connection",
            http_status_code=404,
            expected_params=params,
        )


def test_disable_closes_its_client_ids(run: Run, iot_data: Stubber) -> None:
    run("devices", "add", "sensor-1", "--client-id", "sensor-1", "--client-id", "sensor-1-b")
    _expect(iot_data, "sensor-1", live=True)
    _expect(iot_data, "sensor-1-b", live=False)
    code, out, err = run("devices", "disable", "sensor-1")
    assert code == 0 and out == ""
    assert "'sensor-1' is now disabled" in err
    assert "closed live connections: sensor-1\n" in err


def test_rotate_prints_the_secret_then_closes(run: Run, iot_data: Stubber) -> None:
    run("devices", "add", "sensor-2")
    _expect(iot_data, "sensor-2", live=False, clean=True)
    code, out, err = run("devices", "rotate", "sensor-2", "--clean-session")
    assert code == 0 and out.startswith("iotsk_")
    assert "no live connection found" in err


def test_remove_plans_before_the_record_is_gone(run: Run, iot_data: Stubber) -> None:
    run(
        "devices",
        "add-aliyun",
        "--product-key",
        "pk1",
        "--device-name",
        "dev1",
        "--device-secret-stdin",
        stdin=b"s3cret",
    )
    _expect(iot_data, "pk1&dev1", live=False)
    code, _, err = run("devices", "remove", "dev1&pk1")
    assert code == 0
    assert "removed 'dev1&pk1'" in err
    # Timestamped Aliyun client ids cannot be named: the CLI says how long a session lasts.
    assert "ends within 3600 s" in err


def test_disconnect_named_client_ids_without_a_record(run: Run, iot_data: Stubber) -> None:
    _expect(iot_data, "gone-1", live=True)
    code, _, err = run("devices", "disconnect", "gone", "--client-id", "gone-1")
    assert code == 0 and "closed live connections: gone-1" in err
    code, _, err = run("devices", "disconnect", "nobody")
    assert code == 2 and "no identity 'nobody'" in err


def test_a_failed_deleteconnection_is_reported_and_the_table_change_kept(
    run: Run, iot_data: Stubber
) -> None:
    run("devices", "add", "sensor-3")
    iot_data.add_client_error(
        "delete_connection", "ForbiddenException", "not allowed", http_status_code=403
    )
    code, _, err = run("devices", "disable", "sensor-3")
    assert code == 3  # EXIT_AWS
    assert "ForbiddenException" in err and "iotauth devices disconnect sensor-3" in err
    record = DynamoDBStore("iotauth-cli").get_identity("sensor-3")
    assert record is not None and record.status == "disabled"


def test_no_disconnect_leaves_connections(run: Run) -> None:
    run("devices", "add", "sensor-4")
    code, _, err = run("devices", "disable", "sensor-4", "--no-disconnect")
    assert code == 0 and "left open" in err  # and the Stubber saw no call


def test_endpoint_resolution(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """--iot-endpoint, then AWS_ENDPOINT_URL (boto3's own), then iot:DescribeEndpoint."""
    import argparse

    session = boto3.Session(region_name="us-east-1")
    args = argparse.Namespace(iot_endpoint="abc-ats.iot.eu-west-1.amazonaws.com")
    assert (
        lifecycle._data_endpoint_url(args, session) == "https://abc-ats.iot.eu-west-1.amazonaws.com"
    )
    args = argparse.Namespace(iot_endpoint=None)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert lifecycle._data_endpoint_url(args, session) is None
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    found = lifecycle._data_endpoint_url(args, session)  # moto answers a random host each time
    assert found is not None and found.startswith("https://")
    assert found.endswith("-ats.iot.us-east-1.amazonaws.com")


def test_a_disable_landing_during_a_rotate_is_not_lost(
    run: Run, iot_data: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 09:53: `devices rotate` read the record, another operator's `devices disable`
    wrote it, then the rotate wrote status=active back. Now the rotate fails and says why."""
    run("devices", "add", "sensor-3")
    _expect(iot_data, "sensor-3", live=False)
    read = lifecycle.existing

    def read_then_disable(store: DynamoDBStore, name: str) -> object:
        record = read(store, name)  # what the rotate read, before the disable
        monkeypatch.setattr(lifecycle, "existing", read)
        assert run("devices", "disable", name)[0] == 0  # the other operator
        return record

    monkeypatch.setattr(lifecycle, "existing", read_then_disable)
    code, out, err = run("devices", "rotate", "sensor-3")
    assert code != 0 and out == ""  # no new secret was issued
    assert "changed meanwhile; try again" in err
    stored = DynamoDBStore("iotauth-cli").get_identity("sensor-3")
    assert stored is not None and stored.status == "disabled"
