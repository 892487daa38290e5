"""`iotauth devices import --apply` writes several identities per transaction (issue 14):
the same items as one transaction per identity, and every failure still reported for the
identity that caused it and rolled back exactly. Against the moto server, with real
conditional failures where the table can produce them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.import_rate import mosquitto_lines
from iotauth.identities import bulk
from iotauth.identities.dynamodb_admin import GroupContended
from iotauth.identities.records import IdentityRecord, client_id_key
from iotauth.identities.store import DynamoDBStore, StoreError
from tests.functional.test_cli_devices import Run, authorize

pytest_plugins = ["tests.functional.test_cli_devices"]


@pytest.fixture(autouse=True)
def _serializable_transactions() -> Iterator[None]:
    """DynamoDB's transactions are serializable; moto's are not safe under concurrent
    requests (the imports here have several in flight): one at a time, as DynamoDB."""
    from bench.import_rate import serialized_moto_transactions
    from iotauth.local.moto_fleet import installed

    with installed(), serialized_moto_transactions():
        yield


def _users(tmp_path: Path, count: int = 4) -> Path:
    """A CSV export of ``count`` users with chosen passwords: user-i on row i + 2."""
    path = tmp_path / "users.csv"
    rows = "".join(f"user-{i},,a long passphrase {i},,,\n" for i in range(count))
    path.write_text("name,hash,secret,publish,subscribe,client_ids\n" + rows)
    return path


_WRITE_TIMES = ("createdAt", "updatedAt", "writtenAt")


def _items(store: DynamoDBStore, table: str) -> dict[str, dict[str, Any]]:
    """Every item of ``table`` by key, without the write times (they differ between runs)."""
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = store.client.scan(**kwargs)
        for item in page["Items"]:
            kept = {k: v for k, v in item.items() if k not in _WRITE_TIMES}
            items[item["pk"]["S"]] = kept
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _count_groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the groups sent as one transaction (``add_identities`` calls)."""
    sizes: list[int] = []
    real = DynamoDBStore.add_identities

    def counting(self: DynamoDBStore, records: Sequence[IdentityRecord]) -> None:
        sizes.append(len(records))
        real(self, records)

    monkeypatch.setattr(DynamoDBStore, "add_identities", counting)
    return sizes


@pytest.mark.parametrize("grant", ["broadcast/news", "fleet/in"])
def test_groups_write_the_same_items_as_one_identity_per_transaction(
    run: Run,
    table: DynamoDBStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    grant: str,
) -> None:
    """120 identities in 5 transactions hold exactly the items 120 transactions write, the
    reach item every one of them files its grant under included (one action per group adds
    them up: ``n`` counts all 120, ``owners`` names the first 16)."""
    export = tmp_path / "passwd"
    export.write_text(mosquitto_lines(120))
    sizes = _count_groups(monkeypatch)
    argv = ("devices", "import", str(export), "--format", "mosquitto", "--apply")
    argv += ("--subscribe", grant, "--workers", "1")  # one at a time: the same 16 named
    code, out, err = run(*argv)
    assert code == 0 and "imported 120 identities" in out, err
    assert sizes == [25, 25, 25, 25, 20]
    assert "importing: 120/120" in err
    grouped = _items(table, table.table)

    assert run("devices", "create-table", "--table", "singly")[0] == 0
    monkeypatch.setattr(bulk, "GROUP_IDENTITIES", 1)
    code, out, _ = run(*argv, "--table", "singly")
    assert code == 0 and "imported 120 identities" in out
    assert len(sizes) == 5  # one at a time: add_identity, never a group
    assert grouped == _items(table, "singly")
    assert len([k for k in grouped if k.startswith("identity#")]) == 120
    reach = grouped[f"reach#{grant.partition('/')[0]}"]
    assert reach["n"] == {"N": "120"}
    assert sorted(reach["owners"]["SS"]) == [f"dev-{i:06d}" for i in range(16)]


def test_a_refused_group_names_the_identity_that_failed_and_rolls_back(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone adds user-2 between the judging and the writing: the group's transaction is
    cancelled (moto's own condition check), written again one identity at a time, and
    user-2's refusal is reported for user-2, with exactly what this run wrote removed."""
    from iotauth.cli.devices import importing

    path = _users(tmp_path)
    real_judge = importing.judge_import

    def judge_then_someone_adds(store: DynamoDBStore, *args: Any) -> list[str]:
        warnings = real_judge(store, *args)
        assert run("devices", "add", "user-2")[0] == 0  # another operator, meanwhile
        return warnings

    monkeypatch.setattr(importing, "judge_import", judge_then_someone_adds)
    sizes = _count_groups(monkeypatch)
    code, _, err = run("devices", "import", str(path), "--format", "csv", "--apply")
    assert sizes == [4]  # the group was sent, and refused as a whole
    assert code == 2 and "writing 'user-2' (row 4) failed: identity 'user-2'" in err, err
    assert "rolled back: the 2 identities it had added were removed again" in err
    assert [r.username for r in table.list_identities()] == ["user-2"]  # the other's
    assert table.get_identity("user-2").kind == "secret"  # type: ignore[union-attr]
    assert table.client_id_owner("user-0") is None and table.client_id_owner("user-2") == "user-2"


def test_a_group_whose_answer_was_lost_is_finished_one_identity_at_a_time(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group was written but its answer lost (a timeout): one at a time, each identity is
    found already written by this run (its version) and counted, not refused."""
    real = DynamoDBStore.add_identities

    def written_then_lost(self: DynamoDBStore, records: Sequence[IdentityRecord]) -> None:
        real(self, records)
        raise StoreError("DynamoDB transact_write_items failed: ReadTimeoutError")

    monkeypatch.setattr(DynamoDBStore, "add_identities", written_then_lost)
    code, out, err = run("devices", "import", str(_users(tmp_path)), "--format", "csv", "--apply")
    assert code == 0 and "imported 4 identities" in out, err
    assert len(table.list_identities()) == 4
    assert authorize(run, "user-3", "a long passphrase 3")[0] == 0


def test_a_lost_group_then_a_failure_rolls_back_the_whole_group(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a lost answer, user-2's own write fails and the import stops before user-3 is
    sent again: user-3 may have been written by the group, so the rollback removes it too."""
    real_group = DynamoDBStore.add_identities
    real_add = DynamoDBStore.add_identity

    def written_then_lost(self: DynamoDBStore, records: Sequence[IdentityRecord]) -> None:
        real_group(self, records)
        raise StoreError("DynamoDB transact_write_items failed: ReadTimeoutError")

    def failing_add(self: DynamoDBStore, record: IdentityRecord) -> None:
        if record.username == "user-2":
            raise StoreError("DynamoDB transact_write_items failed: ValidationException")
        real_add(self, record)

    monkeypatch.setattr(DynamoDBStore, "add_identities", written_then_lost)
    monkeypatch.setattr(DynamoDBStore, "add_identity", failing_add)
    code, _, err = run("devices", "import", str(_users(tmp_path)), "--format", "csv", "--apply")
    assert code == 2 and "writing 'user-2' (row 4) failed: DynamoDB" in err, err
    assert "rolled back: the 4 identities it had added were removed again" in err
    assert table.list_identities() == []
    keys = [i["pk"]["S"] for i in table.client.scan(TableName=table.table)["Items"]]
    assert not [k for k in keys if k.startswith(("identity#", "clientid#"))]


def test_a_contended_group_is_sent_again_as_a_group(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "_BACKOFF_BASE", 0.001)
    real = DynamoDBStore.add_identities
    calls: list[int] = []

    def contended_once(self: DynamoDBStore, records: Sequence[IdentityRecord]) -> None:
        calls.append(len(records))
        if len(calls) == 1:
            raise GroupContended("DynamoDB transact_write_items: ['TransactionConflict']")
        real(self, records)

    def never(self: DynamoDBStore, record: IdentityRecord) -> None:
        raise AssertionError("written one at a time")

    monkeypatch.setattr(DynamoDBStore, "add_identities", contended_once)
    monkeypatch.setattr(DynamoDBStore, "add_identity", never)
    code, out, err = run("devices", "import", str(_users(tmp_path)), "--format", "csv", "--apply")
    assert code == 0 and "imported 4 identities" in out, err
    assert calls == [4, 4]
    assert len(table.list_identities()) == 4


def test_ctrl_c_during_grouped_writes_rolls_back_every_group(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C arrives while the second group's transaction is answering (it was written):
    both groups are removed again, and the bystander stays."""
    assert run("devices", "add", "bystander")[0] == 0
    monkeypatch.setattr(bulk, "GROUP_IDENTITIES", 2)
    real = DynamoDBStore.add_identities

    def interrupted(self: DynamoDBStore, records: Sequence[IdentityRecord]) -> None:
        real(self, records)
        if "user-2" in [r.username for r in records]:
            raise KeyboardInterrupt

    monkeypatch.setattr(DynamoDBStore, "add_identities", interrupted)
    argv = ("devices", "import", str(_users(tmp_path)), "--format", "csv", "--apply")
    code, _, err = run(*argv, "--workers", "1")
    assert code == 130
    assert "rolled back: the 4 identities it had added were removed again" in err, err
    assert [r.username for r in table.list_identities()] == ["bystander"]
    assert table.client_id_owner("user-3") is None
    assert table.client_id_owner("bystander") == "bystander"


def test_a_group_with_a_record_refused_before_sending_is_written_one_at_a_time(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client id claimed twice inside one group (the judging should have refused it: the
    grouping must not rely on it) is not sent as a group; one at a time, the second
    claimant's refusal is its own and the first is rolled back. The two groups run at the
    same time, so either claimant may be the one refused; the other is named as the holder."""
    path = tmp_path / "users.csv"
    path.write_text(
        "name,hash,secret,publish,subscribe,client_ids\n"
        "user-0,,a long passphrase 0,,,shared-id\n"
        "user-1,,a long passphrase 1,,,shared-id\n"
    )
    from iotauth.cli.devices import importing

    monkeypatch.setattr(importing, "judge_import", lambda store, *args: [])  # judged: none
    code, _, err = run("devices", "import", str(path), "--format", "csv", "--apply")
    refusals = {
        "writing 'user-1' (row 3) failed: client id 'shared-id' is already bound to identity"
        " 'user-0'",
        "writing 'user-0' (row 2) failed: client id 'shared-id' is already bound to identity"
        " 'user-1'",
    }
    assert code == 2 and sum(r in err for r in refusals) == 1, err
    assert "rolled back: the 1 identities it had added were removed again" in err
    assert table.list_identities() == []
    assert table.client_id_owner("shared-id") is None
    assert client_id_key("shared-id") == "clientid#shared-id"
