"""`iotauth devices show|update|list` against moto's DynamoDB (the moto server, so that
`authorize` locks identities out for real), with IoT's DeleteConnection checked by a botocore
Stubber as in test_cli_revocation.py (moto has no IoT data plane)."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from iotauth.cli import main
from iotauth.cli.devices import lifecycle, listing, update
from iotauth.identities.credentials import generate_secret, hash_generated_secret
from iotauth.identities.lockout import LockoutPolicy, LockoutState
from iotauth.identities.paging import decode_token, encode_token
from iotauth.identities.records import IdentityRecord, client_id_key
from iotauth.identities.store import DynamoDBStore
from tests.cli_support import Run, cli_runner
from tests.functional.conftest import stub_disconnects

TABLE = "iotauth-cli"
TOKEN = re.compile(r"--next (\S+)")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def iot_data(moto_endpoint: str) -> Iterator[Stubber]:
    """A stubbed DeleteConnection client, with this module's moto server as AWS."""
    client = boto3.client(
        "iot-data", endpoint_url="https://example-ats.iot.us-east-1.amazonaws.com"
    )
    stub = Stubber(client)
    with stub:
        yield stub
    stub.assert_no_pending_responses()


@pytest.fixture
def run(
    iot_data: Stubber, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.setenv("IOTAUTH_TABLE", TABLE)
    stub_disconnects(monkeypatch, lifecycle, iot_data)
    call = cli_runner(monkeypatch, capsys)
    assert call("devices", "create-table")[0] == 0
    return call


@pytest.fixture
def table(run: Run) -> DynamoDBStore:
    return DynamoDBStore(TABLE, client=boto3.client("dynamodb"))


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


def _authorize(run: Run, username: str, password: str) -> int:
    return run("authorize", "--username", username, "--password-stdin", stdin=password.encode())[0]


def _seed(table: DynamoDBStore, names: list[str], **fields: Any) -> None:
    """Identities (and their client-id registry items) written straight into the table, 25
    items a call: hundreds of `devices add` would only make the test slow."""
    now = int(time.time())
    verifier = hash_generated_secret(generate_secret())
    items: list[dict[str, Any]] = []
    for name in names:
        record = IdentityRecord(
            username=name, kind="secret", verifier=verifier, created_at=now, updated_at=now
        ).replace(**fields)
        items.append(record.to_item())
        items.append({"pk": {"S": client_id_key(name)}, "owner": {"S": name}})
    for start in range(0, len(items), 25):
        chunk = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        table.client.batch_write_item(RequestItems={TABLE: chunk})


def _lock(table: DynamoDBStore, name: str, *, until: int) -> None:
    now = int(time.time())
    state = LockoutState(failures=5, window_start=now - 10, locked_until=until, version=1)
    assert table.save_lockout(name, state, LockoutPolicy(), 0)


def _rows(out: str) -> list[str]:
    """Usernames of the table rows of `devices list` (its header left out)."""
    lines = out.splitlines()
    assert lines and lines[0].startswith("USERNAME")
    return [line.split()[0] for line in lines[1:]]


def _json_rows(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# -- show ----------------------------------------------------------------------------------


def test_show_says_everything_but_the_secret(run: Run, table: DynamoDBStore) -> None:
    code, secret, _ = run(
        "devices",
        "add",
        "sensor-1",
        "--client-id",
        "sensor-1",
        "--client-id",
        "sensor-1-b",
        "--subscribe",
        "broadcast/news",
        "--room",
        "chat/lobby",
        "--disconnect-after",
        "3600",
    )
    assert code == 0
    code, out, _ = run("devices", "show", "sensor-1")
    assert code == 0
    assert secret.strip() not in out and "hmac" not in out
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["status"] == "active" and fields["lock"] == "none"
    assert fields["kind"] == "secret"
    assert fields["secret"].startswith("issued by iotauth")
    assert fields["client ids"] == "sensor-1 (registered), sensor-1-b (registered)"
    assert fields["subscribe"] == "broadcast/news" and fields["rooms"] == "chat/lobby"
    assert fields["publish"] == "-"
    assert fields["disconnect after"] == "3600 s"
    assert fields["refresh after"] == "86400 s (deployment default)"
    assert fields["session bound"].startswith("3600 s")
    assert ISO.fullmatch(fields["created"]) and ISO.fullmatch(fields["updated"])

    code, out, _ = run("devices", "show", "sensor-1", "--json")
    view = json.loads(out)
    assert view["state"] == "active" and view["lock"] == {"state": "none"}
    assert view["clientIdRegistry"] == {"sensor-1": "sensor-1", "sensor-1-b": "sensor-1"}
    assert view["effectiveDisconnectAfterInSeconds"] == 3600
    assert view["effectiveRefreshAfterInSeconds"] == 86400
    assert view["secretOrigin"] == "issued"
    assert "verifier" not in out and secret.strip() not in out


def test_show_uses_the_deployment_default_and_the_aliyun_bound(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTAUTH_DISCONNECT_AFTER_SECONDS", "7200")
    run(
        "devices",
        "add-aliyun",
        "--product-key",
        "pk1",
        "--device-name",
        "dev1",
        "--device-secret-stdin",
        stdin=b"device-secret",
    )
    code, out, _ = run("devices", "show", "dev1&pk1", "--json")
    view = json.loads(out)
    assert code == 0 and "device-secret" not in out
    assert view["effectiveDisconnectAfterInSeconds"] == 7200
    # A timestamped Aliyun session cannot be named: it is bounded by one hour at most.
    assert view["sessionBoundSeconds"] == 3600
    assert view["clientIdRegistry"] == {"pk1&dev1": "dev1&pk1"}
    assert view["clientIdForm"] == "aliyun"


def test_show_a_locked_identity(run: Run) -> None:
    run("devices", "add", "carol", "--password-stdin", stdin=b"the right passphrase")
    for _ in range(2):
        assert _authorize(run, "carol", "a wrong passphrase") == 1
    _, out, _ = run("devices", "show", "carol")
    assert re.search(r"lock:\s+2 failure\(s\) in the window since \S+Z \(locks at 5\)", out)
    for _ in range(3):
        _authorize(run, "carol", "a wrong passphrase")
    code, out, _ = run("devices", "show", "carol")
    assert code == 0
    assert re.search(r"lock:\s+LOCKED until \S+Z \(5 failures\)", out)
    view = json.loads(run("devices", "show", "carol", "--json")[1])
    assert view["state"] == "locked" and view["status"] == "active"
    assert view["lock"]["state"] == "locked" and ISO.fullmatch(view["lock"]["lockedUntil"])
    _, out, _ = run("devices", "list")
    assert re.search(r"^carol\s+password\s+LOCKED", out, re.MULTILINE)
    run("devices", "enable", "carol")  # lifts the lockout
    view = json.loads(run("devices", "show", "carol", "--json")[1])
    assert view["state"] == "active" and view["lock"] == {"state": "none"}


def test_show_unknown_and_registry_mismatches(run: Run, table: DynamoDBStore) -> None:
    code, out, err = run("devices", "show", "nobody")
    assert code == 2 and out == "" and "no identity 'nobody'" in err
    run("devices", "add", "dave", "--client-id", "dave-1", "--client-id", "dave-2")
    table.client.delete_item(TableName=TABLE, Key={"pk": {"S": client_id_key("dave-1")}})
    table.client.put_item(
        TableName=TABLE, Item={"pk": {"S": client_id_key("dave-2")}, "owner": {"S": "erin"}}
    )
    _, out, _ = run("devices", "show", "dave")
    assert "dave-1 (NOT REGISTERED), dave-2 (REGISTERED TO 'erin')" in out


# -- update --------------------------------------------------------------------------------


def test_update_prints_the_diff_and_writes(run: Run, table: DynamoDBStore) -> None:
    secret = run("devices", "add", "sensor-2", "--subscribe", "broadcast/news")[1].strip()
    before = table.get_identity("sensor-2")
    assert before is not None
    code, out, err = run(
        "devices",
        "update",
        "sensor-2",
        "--add-subscribe",
        "broadcast/alerts",
        "--room",
        "chat/lobby",
        "--refresh-after",
        "3600",
    )
    assert code == 0 and out == "", err
    assert 'subscribe: ["broadcast/news"] → ["broadcast/news", "broadcast/alerts"]' in err
    assert 'rooms: [] → ["chat/lobby"]' in err
    assert "refreshAfterInSeconds: (default) → 3600" in err
    assert "access only grew" in err  # and the Stubber saw no DeleteConnection
    after = table.get_identity("sensor-2")
    assert after is not None
    assert after.subscribe == ("broadcast/news", "broadcast/alerts")
    assert after.rooms == ("chat/lobby",) and after.refresh_after == 3600
    assert after.verifier == before.verifier  # secrets are never touched
    assert after.updated_at > before.updated_at
    assert _authorize(run, "sensor-2", secret) == 0

    code, out, err = run("devices", "update", "sensor-2", "--room", "chat/lobby", "--json")
    assert code == 0 and "nothing to change" in err
    assert json.loads(out) == {"username": "sensor-2", "changed": {}, "closed": []}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--add-publish", "bob/inbox"], "pass --allow-broad"),
        (["--add-client-id", "bob"], "'bob' is already bound to identity 'bob'"),
        (["--add-publish", "+/x"], "pass --allow-broad"),
        (["--room", "lobby"], "must lie under a shared root"),
        (["--disconnect-after", "10"], "disconnect-after must be 300-86400"),
        (["--add-client-id", "web-alice"], "reserved for web users"),
        (["--client-id-form", "linkkit"], "only for Aliyun identities"),
        (["--remove-publish", "nothing/here"], "it is not one of them"),
        (["--publish", "a/b", "--add-publish", "c/d"], "replaces the list"),
    ],
)
def test_update_is_refused_as_add_would_be(
    run: Run, table: DynamoDBStore, argv: list[str], message: str
) -> None:
    run("devices", "add", "bob")
    run("devices", "add", "alice")
    before = table.get_identity("alice")
    code, out, err = run("devices", "update", "alice", *argv)
    assert code == 2 and out == "", err
    assert message in err
    assert table.get_identity("alice") == before


def test_update_allow_broad_is_loud_and_kept(
    run: Run, table: DynamoDBStore, iot_data: Stubber
) -> None:
    run("devices", "add", "bob")
    run("devices", "add", "alice")
    code, _, err = run("devices", "update", "alice", "--add-publish", "bob/inbox", "--allow-broad")
    assert code == 0 and "WARNING (--allow-broad)" in err
    record = table.get_identity("alice")
    assert record is not None and record.allow_broad and record.publish == ("bob/inbox",)
    # Withdrawing --allow-broad while the grant stays is refused; with the grant it is not.
    code, _, err = run("devices", "update", "alice", "--no-allow-broad")
    assert code == 2 and "pass --allow-broad" in err
    _expect(iot_data, "alice", live=False)
    code, _, err = run("devices", "update", "alice", "--clear-publish", "--no-allow-broad")
    assert code == 0, err
    record = table.get_identity("alice")
    assert record is not None and not record.allow_broad and record.publish == ()


def test_update_loses_a_race_and_changes_nothing(
    run: Run, table: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another operator's `devices disable` lands between update's read and its write."""
    run("devices", "add", "sensor-3", "--subscribe", "broadcast/news")
    read = update.existing

    def read_then_disable(store: DynamoDBStore, name: str) -> IdentityRecord:
        record = read(store, name)
        monkeypatch.setattr(update, "existing", read)
        assert run("devices", "disable", name, "--no-disconnect")[0] == 0
        return record

    monkeypatch.setattr(update, "existing", read_then_disable)
    code, _, err = run("devices", "update", "sensor-3", "--clear-subscribe")
    assert code == 3 and "changed meanwhile; try again" in err
    stored = table.get_identity("sensor-3")
    assert stored is not None and stored.status == "disabled"
    assert stored.subscribe == ("broadcast/news",)


def test_update_moves_the_registry_and_closes_the_old_ids(
    run: Run, table: DynamoDBStore, iot_data: Stubber
) -> None:
    run("devices", "add", "sensor-4", "--client-id", "old-1", "--client-id", "keep-1")
    _expect(iot_data, "old-1", live=True)
    _expect(iot_data, "keep-1", live=False)
    code, out, err = run(
        "devices",
        "update",
        "sensor-4",
        "--remove-client-id",
        "old-1",
        "--add-client-id",
        "new-1",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["changed"] == {"clientIds": [["old-1", "keep-1"], ["keep-1", "new-1"]]}
    assert result["closed"] == ["old-1"] and result["disconnect"] == "done"
    assert "client ids removed: old-1" in err and "closed live connections: old-1" in err
    assert table.client_id_owner("old-1") is None
    assert table.client_id_owner("new-1") == "sensor-4"
    assert table.client_id_owner("keep-1") == "sensor-4"
    # The released id is free for another identity; the new one is not.
    assert run("devices", "add", "sensor-5", "--client-id", "old-1")[0] == 0
    code, _, err = run("devices", "add", "sensor-6", "--client-id", "new-1")
    assert code == 2 and "already bound to identity 'sensor-4'" in err


def test_update_closes_sessions_when_access_shrinks(
    run: Run, table: DynamoDBStore, iot_data: Stubber
) -> None:
    run("devices", "add", "sensor-7", "--subscribe", "broadcast/news", "--publish", "up/sensor-7")
    # A narrowed grant is a removed one: close.
    _expect(iot_data, "sensor-7", live=True)
    code, _, err = run("devices", "update", "sensor-7", "--remove-subscribe", "broadcast/news")
    assert code == 0 and "subscribe removed: broadcast/news" in err
    assert "closed live connections: sensor-7" in err
    # A shorter session: close.
    _expect(iot_data, "sensor-7", live=False)
    code, _, err = run("devices", "update", "sensor-7", "--disconnect-after", "600")
    assert code == 0 and "sessions shortened" in err and "no live connection found" in err
    # --no-disconnect: the table only (the Stubber would fail on a call).
    code, out, err = run(
        "devices", "update", "sensor-7", "--clear-publish", "--no-disconnect", "--json"
    )
    assert code == 0 and "left open" in err
    assert json.loads(out)["disconnect"] == "skipped"
    record = table.get_identity("sensor-7")
    assert record is not None and record.publish == () and record.disconnect_after == 600


def test_update_dry_run_writes_nothing(run: Run, table: DynamoDBStore) -> None:
    run("devices", "add", "sensor-8", "--subscribe", "broadcast/news")
    before = table.get_identity("sensor-8")
    code, out, err = run(
        "devices", "update", "sensor-8", "--clear-subscribe", "--dry-run", "--json"
    )
    assert code == 0 and "dry run: nothing written" in err
    result = json.loads(out)
    assert result["changed"] == {"subscribe": [["broadcast/news"], []]}
    assert result["dryRun"] is True and result["wouldDisconnect"] is True
    assert table.get_identity("sensor-8") == before  # and no DeleteConnection


def test_update_an_aliyun_identity(run: Run, table: DynamoDBStore, iot_data: Stubber) -> None:
    run(
        "devices",
        "add-aliyun",
        "--product-key",
        "pk1",
        "--device-name",
        "dev1",
        "--allow-no-timestamp",
        "--device-secret-stdin",
        stdin=b"device-secret",
    )
    before = table.get_identity("dev1&pk1")
    assert before is not None
    # Withdrawing --allow-no-timestamp shrinks access: close its (nameable) sessions.
    for client_id in lifecycle._plan(before).client_ids:
        _expect(iot_data, client_id, live=False)
    code, _, err = run(
        "devices", "update", "dev1&pk1", "--require-timestamp", "--client-id-form", "linkkit"
    )
    assert code == 0, err
    assert "allow-no-timestamp withdrawn" in err and "client-id form changed" in err
    after = table.get_identity("dev1&pk1")
    assert after is not None and not after.allow_no_timestamp
    assert after.client_id_form == "linkkit" and after.device_secret == "device-secret"
    code, _, err = run("devices", "update", "dev1&pk1", "--client-id-form", "nonsense{x}")
    assert code == 2


# -- list ----------------------------------------------------------------------------------


def test_list_pages_cover_every_identity_once(run: Run, table: DynamoDBStore) -> None:
    names = [f"dev-{i:03d}" for i in range(250)]
    _seed(table, names)
    seen: list[str] = []
    argv: list[str] = []
    pages = 0
    while True:
        code, out, err = run("devices", "list", "--limit", "100", *argv)
        assert code == 0, err
        rows = _rows(out)
        assert len(rows) <= 100
        seen += rows
        pages += 1
        found = TOKEN.search(err)
        if found is None:
            break
        argv = ["--next", found.group(1)]
    assert pages == 3
    assert sorted(seen) == names  # every identity exactly once

    # The same with JSON Lines.
    seen = []
    argv = []
    while True:
        code, out, err = run("devices", "list", "--limit", "100", "--json", *argv)
        rows_json = _json_rows(out)
        assert all("verifier" not in row and row["locked"] is False for row in rows_json)
        seen += [row["username"] for row in rows_json]
        found = TOKEN.search(err)
        if found is None:
            break
        argv = ["--next", found.group(1)]
    assert sorted(seen) == names


def test_list_prefix_status_and_count(run: Run, table: DynamoDBStore) -> None:
    _seed(table, [f"a-{i}" for i in range(30)])
    _seed(table, [f"b-{i}" for i in range(20)])
    _seed(table, [f"b-off-{i}" for i in range(5)], status="disabled")
    now = int(time.time())
    _lock(table, "b-1", until=now + 600)
    _lock(table, "b-2", until=now + 600)
    _lock(table, "a-1", until=now - 1)  # a lock that has run out
    _lock(table, "b-off-1", until=now + 600)  # disabled wins over locked

    code, out, _ = run("devices", "list", "--prefix", "b-")
    assert code == 0 and len(_rows(out)) == 25
    assert all(name.startswith("b-") for name in _rows(out))
    _, out, _ = run("devices", "list", "--status", "disabled", "--json")
    assert sorted(r["username"] for r in _json_rows(out)) == [f"b-off-{i}" for i in range(5)]
    _, out, _ = run("devices", "list", "--status", "locked")
    assert sorted(_rows(out)) == ["b-1", "b-2"]
    assert all(" LOCKED " in line for line in out.splitlines()[1:])
    _, out, _ = run("devices", "list", "--status", "active", "--prefix", "b-")
    assert sorted(_rows(out)) == sorted({f"b-{i}" for i in range(20)} - {"b-1", "b-2"})

    for argv, expected in (
        ([], 55),
        (["--prefix", "a-"], 30),
        (["--status", "disabled"], 5),
        (["--status", "locked"], 2),
        (["--status", "active"], 48),
        (["--status", "active", "--prefix", "b-"], 18),
    ):
        code, out, _ = run("devices", "list", "--count", *argv)
        assert code == 0 and out == f"{expected}\n", argv
    code, out, _ = run("devices", "list", "--count", "--json", "--prefix", "a-")
    assert json.loads(out) == {"count": 30}


def test_list_refuses_a_bad_token_and_contradictions(run: Run) -> None:
    for token in ("not-a-token", encode_token({"pk": {"N": "1"}}), "e30", "%%%"):
        code, out, err = run("devices", "list", "--next", token)
        assert code == 2 and out == "", token
        assert "--next: not a token that `devices list` printed" in err
    code, _, err = run("devices", "list", "--count", "--limit", "5")
    assert code == 2 and "--count" in err
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        run("devices", "list", "--limit", "0")
    assert exited.value.code == 2
    key = {"pk": {"S": "identity#dev-1"}}
    assert decode_token(encode_token(key)) == key


def test_list_streams_a_page_at_a_time(
    run: Run, table: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that goes away after the first rows (`| head`) ends the listing quietly,
    and the rest of the table is not read: rows are printed as each page arrives."""
    _seed(table, [f"dev-{i:03d}" for i in range(120)])
    monkeypatch.setattr(listing, "DEFAULT_PAGE", 40)
    scans: list[int] = []
    real = DynamoDBStore._call

    def counting(self: DynamoDBStore, operation: str, **kwargs: Any) -> Any:
        if operation == "scan":
            scans.append(kwargs["Limit"])
        return real(self, operation, **kwargs)

    monkeypatch.setattr(DynamoDBStore, "_call", counting)

    class ClosedAfterFirstPage(io.StringIO):
        def flush(self) -> None:
            if self.getvalue():
                raise BrokenPipeError

    monkeypatch.setattr("sys.stdout", ClosedAfterFirstPage())
    assert main(["devices", "list"]) == 0
    assert scans == [40]  # 240 items: six pages, and only the first was read


def test_show_tells_a_restored_secret_from_an_issued_one(run: Run) -> None:
    """A secret handed in with --secret-stdin is not marked issued: show says the lockout
    applies to it and how to get an exempt one."""
    restored = "iotsk_" + "Q" * 43
    assert run("devices", "add", "restored-1", "--secret-stdin", stdin=restored.encode())[0] == 0
    code, out, _ = run("devices", "show", "restored-1")
    assert code == 0 and restored not in out
    line = next(x for x in out.splitlines() if x.startswith("secret:"))
    assert "lockout applies" in line and "devices rotate" in line
    code, out, _ = run("devices", "show", "restored-1", "--json")
    assert json.loads(out)["secretOrigin"] == "restored"
