"""`iotauth devices import` against the moto server: dry run first, all or nothing, and the
imported users keep their passwords through the authorizer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iotauth.identities.records import client_id_key
from iotauth.identities.store import DynamoDBStore, StoreError
from tests.functional.test_cli_devices import Run, authorize
from tests.unit.identities.test_imported_hashes import MOSQUITTO_FILE, PASSWORDS

pytest_plugins = ["tests.functional.test_cli_devices"]


@pytest.fixture(autouse=True)
def _serializable_transactions() -> Iterator[None]:
    """DynamoDB's transactions are serializable; moto's are not safe under concurrent
    requests (the imports here have several in flight): one at a time, as DynamoDB."""
    from bench.import_rate import serialized_moto_transactions
    from iotauth.local.moto_fleet import installed

    with installed(), serialized_moto_transactions():
        yield


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text(MOSQUITTO_FILE)
    return path


def test_dry_run_writes_nothing_then_apply_imports(
    run: Run, table: DynamoDBStore, passwd: Path
) -> None:
    code, out, _ = run("devices", "import", str(passwd), "--format", "mosquitto")
    assert code == 0 and "dry run: 2 identities would be imported" in out
    assert "dev6" in out and "mosquitto $7$ (101 iterations)" in out
    assert table.list_identities() == []
    code, out, _ = run(
        "devices", "import", str(passwd), "--format", "mosquitto", "--apply",
        "--subscribe", "broadcast/news",
    )  # fmt: skip
    assert code == 0 and "imported 2 identities" in out
    assert MOSQUITTO_FILE.split("$")[2] not in out  # no hash echoed
    for name, password in PASSWORDS.items():
        assert authorize(run, name, password.decode(), "--client-id", name)[0] == 0
        assert authorize(run, name, "a wrong password")[0] == 1
    record = table.get_identity("dev6")
    assert record is not None and record.subscribe == ("broadcast/news",)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto not installed")
def test_a_file_mosquitto_passwd_made_imports_and_authorizes(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    path = tmp_path / "passwd"
    path.write_text("")
    for name, password in (("m-1", "first passphrase"), ("m-2", "second passphrase")):
        subprocess.run(
            ["mosquitto_passwd", "-b", str(path), name, password], check=True, timeout=30
        )
    assert run("devices", "import", str(path), "--format", "mosquitto", "--apply")[0] == 0
    assert authorize(run, "m-1", "first passphrase")[0] == 0
    assert authorize(run, "m-2", "first passphrase")[0] == 1


def test_imported_passwords_are_locked_out_like_chosen_ones(
    run: Run, table: DynamoDBStore, passwd: Path
) -> None:
    run("devices", "import", str(passwd), "--format", "mosquitto", "--apply")
    for i in range(5):
        assert authorize(run, "dev7", f"guess {i} for dev7")[0] == 1
    assert authorize(run, "dev7", PASSWORDS["dev7"].decode())[0] == 1  # locked


def test_an_invalid_entry_or_an_existing_name_writes_nothing(
    run: Run, table: DynamoDBStore, passwd: Path
) -> None:
    bad = passwd.parent / "bad"
    bad.write_text(MOSQUITTO_FILE + "oops:not-a-hash\n")
    code, out, err = run("devices", "import", str(bad), "--format", "mosquitto", "--apply")
    assert code == 2 and out == "" and "line 3: hash: not hashed" in err
    assert "nothing was written" in err and "not-a-hash" not in err
    assert table.list_identities() == []
    assert run("devices", "add", "dev7")[0] == 0
    code, _, err = run("devices", "import", str(passwd), "--format", "mosquitto", "--apply")
    assert code == 2 and "1 identities already exist with other contents ('dev7')" in err
    assert [r.username for r in table.list_identities()] == ["dev7"]


def _four_users(tmp_path: Path) -> Path:
    path = tmp_path / "many.csv"
    rows = "".join(f"user-{i},,a long passphrase {i},,,\n" for i in range(4))
    path.write_text("name,hash,secret,publish,subscribe,client_ids\n" + rows)
    return path


def test_a_write_failure_rolls_back_what_this_run_added(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _four_users(tmp_path)
    real_add = DynamoDBStore.add_identity

    def failing_add(self: DynamoDBStore, record: Any) -> None:
        if record.username == "user-2":
            raise StoreError("DynamoDB transact_write_items failed: ValidationException")
        real_add(self, record)

    monkeypatch.setattr(DynamoDBStore, "add_identity", failing_add)
    monkeypatch.setattr("iotauth.identities.bulk.GROUP_IDENTITIES", 1)  # add_identity per record
    argv = ("devices", "import", str(path), "--format", "csv", "--apply", "--workers", "1")
    code, _, err = run(*argv)
    assert code == 2 and "writing 'user-2' (row 4) failed: DynamoDB" in err
    assert "rolled back: the 2 identities it had added were removed again" in err
    assert "nothing was written" in err
    assert table.list_identities() == []

    # The table stops answering during the rollback: say what may remain, and how to finish.
    monkeypatch.setattr("iotauth.identities.bulk.remove_if_ours", lambda store, r: "failed")
    code, _, err = run(*argv)
    # user-2's write failed without a refusal from the table: it too "may" remain.
    assert code == 2 and "these 3 may remain: 'user-0', 'user-1', 'user-2'" in err
    assert "re-run the same import with --apply to finish it" in err
    assert sorted(r.username for r in table.list_identities()) == ["user-0", "user-1"]
    monkeypatch.setattr(DynamoDBStore, "add_identity", real_add)
    code, out, err = run("devices", "import", str(path), "--format", "csv", "--apply")
    assert code == 0 and "imported 2 identities" in out  # the re-run finished it
    assert "2 identities were already imported identically and are skipped" in err
    assert len(table.list_identities()) == 4
    assert authorize(run, "user-3", "a long passphrase 3")[0] == 0


def test_throttled_writes_are_retried(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _four_users(tmp_path)
    real_add = DynamoDBStore.add_identity
    throttled: list[str] = []

    def throttling_add(self: DynamoDBStore, record: Any) -> None:
        if record.username not in throttled:
            throttled.append(record.username)
            raise StoreError("DynamoDB transact_write_items failed: ThrottlingException")
        real_add(self, record)

    monkeypatch.setattr(DynamoDBStore, "add_identity", throttling_add)
    monkeypatch.setattr("iotauth.identities.bulk.GROUP_IDENTITIES", 1)  # add_identity per record
    monkeypatch.setattr("iotauth.identities.bulk._BACKOFF_BASE", 0.001)
    code, out, _ = run("devices", "import", str(path), "--format", "csv", "--apply")
    assert code == 0 and "imported 4 identities" in out
    assert sorted(throttled) == [f"user-{i}" for i in range(4)]
    assert len(table.list_identities()) == 4


def test_a_rerun_skips_identical_identities_and_refuses_changed_ones(
    run: Run, table: DynamoDBStore, passwd: Path, tmp_path: Path
) -> None:
    argv = ("devices", "import", str(passwd), "--format", "mosquitto", "--apply", "--json")
    code, out, _ = run(*argv)
    assert code == 0 and json.loads(out)["imported"] == 2
    code, out, _ = run(*argv)
    result = json.loads(out)
    assert code == 0 and result["imported"] == 0 and result["alreadyImported"] == ["dev6", "dev7"]
    # Same name, other grants: an import never overwrites an identity.
    code, _, err = run(*argv, "--subscribe", "broadcast/news")
    assert code == 2 and "1 identities" not in err and "2 identities already exist" in err
    record = table.get_identity("dev6")
    assert record is not None and record.subscribe == ()


def _mallory_export(tmp_path: Path) -> Path:
    export = tmp_path / "users.json"
    export.write_text(
        json.dumps(
            [
                {"name": "bob", "secret": "bob's passphrase"},
                {
                    "name": "mallory",
                    "secret": "mallory passphrase",
                    "subscribe": "alice/#",
                    "publish": "alice/cmd",
                },
            ]
        )
    )
    return export


def test_an_import_is_judged_like_devices_add_against_the_table(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    """Review 09:46: an import must not give one identity another's topics."""
    assert run("devices", "add", "alice")[0] == 0
    export = _mallory_export(tmp_path)
    for apply in ((), ("--apply",)):  # the dry run says so too
        code, out, err = run("devices", "import", str(export), "--format", "json", *apply)
        assert code == 2 and "dry run" not in out and "nothing was written" in err
        # By its line and fields (issue 16, item 10); alice is the table's, so named.
        assert "entry 2: grant <publish>" in err and "<subscribe>" in err and "--allow-broad" in err
        assert "mallory" not in err and "bob" not in err  # no value of the export
        assert [r.username for r in table.list_identities()] == ["alice"]
    assert authorize(run, "mallory", "mallory passphrase")[0] == 1

    csv_export = tmp_path / "users.csv"
    csv_export.write_text("name,secret\nmallory,mallory passphrase\n")
    code, _, err = run(
        "devices", "import", str(csv_export), "--format", "csv", "--apply",
        "--subscribe", "alice/#",
    )  # fmt: skip
    assert code == 2 and "nothing was written" in err
    assert [r.username for r in table.list_identities()] == ["alice"]


def test_pairings_within_one_export_are_refused(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    export = tmp_path / "users.json"
    export.write_text(
        json.dumps(
            [
                {"name": "bob", "secret": "bob's passphrase", "subscribe": "carol/#"},
                {"name": "carol", "secret": "carol's passphrase"},
            ]
        )
    )
    code, _, err = run("devices", "import", str(export), "--format", "json")
    assert code == 2 and "2 problem(s)" in err  # bob's grant, and carol named under it
    assert "entry 1: " in err and "entry 2: " in err and "<the name at entry 2>" in err
    assert "'bob'" not in err and "'carol'" not in err
    code, _, err = run("devices", "import", str(export), "--format", "json", "--apply")
    assert code == 2 and table.list_identities() == []


def test_allow_broad_imports_them_and_the_records_remember_it(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    assert run("devices", "add", "alice")[0] == 0
    export = _mallory_export(tmp_path)
    code, out, err = run(
        "devices", "import", str(export), "--format", "json", "--apply", "--allow-broad"
    )
    assert code == 0 and "imported 2 identities" in out
    assert "WARNING (--allow-broad): entry 2:" in err and "alice" in err
    mallory, bob = table.get_identity("mallory"), table.get_identity("bob")
    assert mallory is not None and mallory.allow_broad and mallory.subscribe == ("alice/#",)
    assert bob is not None and bob.allow_broad  # as `devices add --allow-broad` stores it
    assert authorize(run, "mallory", "mallory passphrase")[0] == 0


def test_the_dry_run_finds_client_id_clashes_and_registry_owners(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    """Review 09:53: a dry run that says "N would be imported" must not then fail on --apply."""
    assert run("devices", "add", "alice", "--client-id", "sensor-1")[0] == 0
    export = tmp_path / "users.csv"
    export.write_text(
        "name,secret,client_ids\n"
        "dave,dave's passphrase,sensor-1\n"  # alice's (record and registry)
        "erin,erin's passphrase,shared-9\n"
        "frank,frank's passphrase,shared-9\n"  # clashes within the export
    )
    code, out, err = run("devices", "import", str(export), "--format", "csv")
    assert code == 2 and "dry run" not in out and "nothing was written" in err
    assert "row 2: client id <client_ids>" in err and "'alice'" in err  # the table's
    assert "row 3: " in err and "row 4: " in err and "<the name at row 4>" in err
    for value in ("sensor-1", "dave", "erin", "frank", "shared-9"):
        assert value not in err  # no value of the export (issue 16, item 10)
    assert [r.username for r in table.list_identities()] == ["alice"]
    # A registry item whose owner has no record (the registry is what --apply's writes check).
    table.client.put_item(
        TableName=table.table,
        Item={"pk": {"S": client_id_key("orphan-1")}, "owner": {"S": "zed"}},
    )
    export.write_text("name,secret,client_ids\ngina,gina's passphrase,orphan-1\n")
    code, out, err = run("devices", "import", str(export), "--format", "csv")
    assert code == 2 and "dry run" not in out
    assert "row 2: one of its client ids" in err and "registered to identity 'zed'" in err
    assert "orphan-1" not in err and "gina" not in err


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_apply_rolls_back_what_it_wrote(
    run: Run,
    table: DynamoDBStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    """Review 09:53: Ctrl-C or SIGTERM during --apply leaves nothing behind."""
    path = _four_users(tmp_path)
    real_add = DynamoDBStore.add_identity

    def interrupted_add(self: DynamoDBStore, record: Any) -> None:
        real_add(self, record)
        if record.username == "user-2":  # written, then Ctrl-C / systemd stops it
            if how == "ctrl-c":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises in this thread long before

    monkeypatch.setattr(DynamoDBStore, "add_identity", interrupted_add)
    monkeypatch.setattr("iotauth.identities.bulk.GROUP_IDENTITIES", 1)  # add_identity per record
    before = signal.getsignal(signal.SIGTERM)
    argv = ("devices", "import", str(path), "--format", "csv", "--apply", "--workers", "1")
    if how == "ctrl-c":
        code, _, err = run(*argv)
        assert code == 130  # main's answer to Ctrl-C, after the rollback
    else:
        with pytest.raises(SystemExit) as stopped:
            run(*argv)
        assert stopped.value.code == 128 + signal.SIGTERM
        err = capsys.readouterr().err
    assert "import interrupted after" in err  # 2 (Ctrl-C) or 3 (SIGTERM, user-2 finishes)
    assert "rolled back: the 3 identities it had added were removed again" in err
    assert table.list_identities() == []
    assert table.client_id_owner("user-2") is None  # its registry item went with it
    assert signal.getsignal(signal.SIGTERM) is before  # restored
