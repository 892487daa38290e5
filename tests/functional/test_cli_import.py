"""`iotauth devices import` against the moto server: dry run first, all or nothing, and the
imported users keep their passwords through the authorizer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from iotauth.store import DynamoDBStore, StoreError
from tests.functional.test_cli_devices import Run, authorize
from tests.unit.test_imported_hashes import MOSQUITTO_FILE, PASSWORDS

pytest_plugins = ["tests.functional.test_cli_devices"]


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
    assert code == 2 and out == "" and "line 3 ('oops')" in err and "nothing was written" in err
    assert "not-a-hash" not in err
    assert table.list_identities() == []
    assert run("devices", "add", "dev7")[0] == 0
    code, _, err = run("devices", "import", str(passwd), "--format", "mosquitto", "--apply")
    assert code == 2 and "1 identities already exist ('dev7')" in err
    assert [r.username for r in table.list_identities()] == ["dev7"]


def test_a_write_failure_rolls_back_what_this_run_added(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.csv"
    rows = "".join(f"user-{i},,a long passphrase {i},,,\n" for i in range(4))
    path.write_text("name,hash,secret,publish,subscribe,client_ids\n" + rows)
    real_add = DynamoDBStore.add_identity
    calls = {"n": 0}

    def failing_add(self: DynamoDBStore, record: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise StoreError("DynamoDB PutItem failed: ProvisionedThroughputExceededException")
        real_add(self, record)

    monkeypatch.setattr(DynamoDBStore, "add_identity", failing_add)
    code, _, err = run("devices", "import", str(path), "--format", "csv", "--apply")
    assert code == 2 and "writing 'user-2' failed" in err
    assert "the 2 identities it had added were removed again: nothing was written" in err
    assert table.list_identities() == []

    monkeypatch.setattr(
        DynamoDBStore, "remove_identity", lambda self, name: (_ for _ in ()).throw(StoreError("x"))
    )
    calls["n"] = 0
    code, _, err = run("devices", "import", str(path), "--format", "csv", "--apply")
    assert code == 2 and "which remain in the table: 'user-0', 'user-1'" in err
    assert sorted(r.username for r in table.list_identities()) == ["user-0", "user-1"]
