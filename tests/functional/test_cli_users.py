"""`iotauth users disable|enable|show|list`: the record the signer reads, the client role's
deny list, the sessions closed; ``--json`` and exit codes.

The table and IAM are moto's; moto has no IoT data plane, so DeleteConnection goes to
botocore's own iot-data client with a Stubber that checks every request (the e2e test,
tests/e2e/test_web_revocation.py, runs the same CLI against the local stand-in)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from iotauth.cli import users
from iotauth.identities.store import DynamoDBStore
from iotauth.identities.web_users import (
    DENY_LIST_KEY,
    DENY_POLICY_BUDGET,
    DENY_POLICY_NAME,
    RETAIN_SECONDS,
    DenyList,
    capacity,
)
from tests.cli_support import Run, cli_runner
from tests.functional.conftest import stub_disconnects

TABLE = "iotauth-users"


@pytest.fixture
def role(moto_aws: None) -> str:
    iam = boto3.client("iam")
    arn = iam.create_role(
        RoleName="iotauth-web-client",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        MaxSessionDuration=3600,
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="iotauth-web-client",
        PolicyName="web-clients",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
            }
        ),
    )
    return str(arn)


@pytest.fixture
def run(
    iot_data: Stubber,
    role: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    monkeypatch.setenv("IOTAUTH_TABLE", TABLE)
    monkeypatch.setenv("IOTAUTH_CLIENT_ROLE_ARN", role)
    stub_disconnects(monkeypatch, users, iot_data)
    DynamoDBStore(TABLE).create_table()
    return cli_runner(monkeypatch, capsys)


def _expect(stub: Stubber, client_id: str, *, live: bool) -> None:
    params = {"clientId": client_id, "cleanSession": False, "preventWillMessage": True}
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


def _item(key: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        boto3.client("dynamodb")
        .get_item(TableName=TABLE, Key={"pk": {"S": key}}, ConsistentRead=True)
        .get("Item")
    )
    return found


def _deny_policy() -> dict[str, Any] | None:
    iam = boto3.client("iam")
    names = iam.list_role_policies(RoleName="iotauth-web-client")["PolicyNames"]
    if DENY_POLICY_NAME not in names:
        return None
    document = iam.get_role_policy(RoleName="iotauth-web-client", PolicyName=DENY_POLICY_NAME)[
        "PolicyDocument"
    ]
    return document if isinstance(document, dict) else json.loads(document)


def test_disable_writes_the_record_denies_connect_and_closes_the_session(
    run: Run, iot_data: Stubber
) -> None:
    _expect(iot_data, "web-alice", live=True)
    _expect(iot_data, "web-alice", live=False)  # the second pass finds it gone
    code, out, err = run(
        "users", "disable", "alice", "--reason", "left the team", "--settle-seconds", "0.01",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["username"] == "web-alice" and result["subject"] == "alice"
    assert result["status"] == "disabled" and result["reason"] == "left the team"
    assert result["by"].startswith("arn:aws:")  # who did it (moto's caller identity)
    assert result["deny"] == "applied" and result["denyListSize"] == 1
    assert result["disconnect"] == "done" and result["closed"] == ["web-alice"]
    assert "is now disabled" in err and "closed live connections: web-alice" in err

    item = _item("webuser#web-alice")
    assert item is not None and item["status"] == {"S": "disabled"}
    assert abs(int(item["since"]["N"]) - time.time()) < 60
    assert _deny_policy() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DisabledWebUsers",
                "Effect": "Deny",
                "Action": "iot:Connect",
                "Resource": ["arn:aws:iot:*:123456789012:client/web-alice"],
            }
        ],
    }


def test_show_list_and_enable(run: Run, iot_data: Stubber) -> None:
    for sub in ("alice", "bob"):
        _expect(iot_data, f"web-{sub}", live=False)
        assert run("users", "disable", sub, "--settle-seconds", "0")[0] == 0
    code, out, _ = run("users", "show", "alice", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["status"] == "disabled" and shown["inDenyList"] is True
    code, out, _ = run("users", "list", "--json")
    listed = json.loads(out)
    assert [u["username"] for u in listed["users"]] == ["web-alice", "web-bob"]
    assert set(listed["denyList"]) == {"web-alice", "web-bob"}
    assert listed["denyListRetainSeconds"] == RETAIN_SECONDS
    code, out, _ = run("users", "list")
    assert code == 0 and "web-alice\talice\tdisabled since" in out

    code, out, err = run("users", "enable", "alice", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "subject": "alice",
        "username": "web-alice",
        "status": "active",
        "deny": "removed",
        "denyListSize": 1,
    }
    assert _item("webuser#web-alice") is None
    policy = _deny_policy()
    assert policy is not None
    assert policy["Statement"][0]["Resource"] == ["arn:aws:iot:*:123456789012:client/web-bob"]
    shown = json.loads(run("users", "show", "alice", "--json")[1])
    assert shown["status"] == "active" and shown["inDenyList"] is False
    # The last entry gone: the role has no deny policy left at all (stack deletion needs it).
    assert run("users", "enable", "bob")[0] == 0
    assert _deny_policy() is None
    assert run("users", "show", "alice")[1].startswith("subject: alice\n")


def test_without_a_client_role_nothing_is_written(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IOTAUTH_CLIENT_ROLE_ARN")
    code, out, err = run("users", "disable", "alice")
    assert code == 2 and out == ""
    assert "no client role" in err and "IotClientRoleArn" in err
    assert _item("webuser#web-alice") is None
    code, _, err = run("users", "disable", "alice", "--client-role", "iotauth-web-client")
    assert code == 2 and "IAM role ARN" in err
    assert run("users", "disable", "", "--settle-seconds", "0")[0] == 2  # no subject


def test_expired_entries_are_compacted_and_a_full_list_still_stops_new_urls(
    run: Run, iot_data: Stubber
) -> None:
    old = int(time.time()) - RETAIN_SECONDS - 10
    stale = {f"web-old-{i}": old for i in range(50)}
    boto3.client("dynamodb").put_item(
        TableName=TABLE, Item=DenyList(stale).to_item(version=3)
    )  # from an earlier run: no URL from before them can still be valid
    _expect(iot_data, "web-carol", live=False)
    code, out, _ = run("users", "disable", "carol", "--settle-seconds", "0", "--json")
    assert code == 0 and json.loads(out)["denyListSize"] == 1
    stored = DenyList.from_item(_item(DENY_LIST_KEY))
    assert list(stored.entries) == ["web-carol"] and stored.version == 4

    # Fill it with recent entries up to the budget: the next user does not fit.
    now = int(time.time())
    fits = capacity(len("web-user-0000"))
    recent = {f"web-user-{i:04d}": now for i in range(fits)}
    assert len(DenyList(recent).policy("aws", "123456789012") or "") <= DENY_POLICY_BUDGET
    boto3.client("dynamodb").put_item(TableName=TABLE, Item=DenyList(recent).to_item(version=5))
    _expect(iot_data, "web-user-9999", live=True)
    code, out, err = run("users", "disable", "user-9999", "--settle-seconds", "0", "--json")
    assert code == 3
    result = json.loads(out)
    assert result["deny"] == "full" and "over its 8192" in result["error"]
    assert result["closed"] == ["web-user-9999"]  # the sessions are closed all the same
    assert _item("webuser#web-user-9999") is not None  # and the signer refuses new URLs
    assert "URLs issued before stay usable until they expire" in err


def test_two_operators_at_once_lose_no_entry(
    run: Run, iot_data: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another operator stores its version after ours and writes the role policy before ours
    lands: whoever writes the policy last re-reads the list and writes the latest."""
    real = users._DenyListSync._apply
    calls: list[int] = []

    def interleaved(self: Any, deny: DenyList) -> None:
        if not calls:  # the other operator's disable, all done while ours is in flight
            latest = self.read()
            other = latest.with_entry("web-zed", int(time.time()))
            boto3.client("dynamodb").put_item(
                TableName=TABLE, Item=other.to_item(latest.version + 1)
            )
            real(self, other)
        calls.append(len(deny.entries))
        real(self, deny)  # ours lands last, with only our entry

    monkeypatch.setattr(users._DenyListSync, "_apply", interleaved)
    _expect(iot_data, "web-alice", live=False)
    assert run("users", "disable", "alice", "--settle-seconds", "0")[0] == 0
    assert calls == [1, 2]  # ours, then the latest (both entries) after the re-read
    policy = _deny_policy()
    assert policy is not None
    assert policy["Statement"][0]["Resource"] == [
        "arn:aws:iot:*:123456789012:client/web-alice",
        "arn:aws:iot:*:123456789012:client/web-zed",
    ]


def test_a_failed_delete_connection_exits_3_and_keeps_the_revocation(
    run: Run, iot_data: Stubber
) -> None:
    iot_data.add_client_error("delete_connection", "ThrottlingException", http_status_code=429)
    code, out, err = run("users", "disable", "dave", "--settle-seconds", "0", "--json")
    assert code == 3
    result = json.loads(out)
    assert result["disconnect"] == "failed" and result["deny"] == "applied"
    assert "users disable dave" in err
    assert _item("webuser#web-dave") is not None
