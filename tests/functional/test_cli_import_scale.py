"""`iotauth devices import` at scale and under signals: batched reads, parallel writes, a
real process stopped mid-apply (SIGINT, SIGTERM) against a moto server, and refusals that
never echo a value of the export."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.import_rate import mosquitto_lines
from iotauth.identities.store import DynamoDBStore
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


ARGON2ID = (
    "$argon2id$v=19$m=47104,t=1,p=1$"
    + base64.b64encode(b"s" * 64).decode().rstrip("=")
    + "$"
    + base64.b64encode(b"h" * 64).decode().rstrip("=")
)
BCRYPT = "$2b$12$" + "R9h/cIPz0gi.URNNX3kh2O" + "PST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"


def test_a_swapped_columns_csv_never_echoes_the_passwords(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    """A `secret,name` export read as `name,secret`: the passwords land in the name column."""
    export = tmp_path / "users.csv"
    export.write_text(
        "name,secret\n"
        "correct horse battery staple,alice\n"  # not a valid name
        "Sup3rS3cretPassw0rd,bob\n"  # a valid name; "bob" is too short for a password
        "Tr0ub4dor-and-3,carol-the-sensor\n"  # both valid on their own
    )
    code, out, err = run("devices", "import", str(export), "--format", "csv")
    assert code == 2 and out == "" and "nothing was written" in err
    assert "row 2:" in err and "row 3:" in err
    for secret in ("correct horse battery staple", "correct", "Sup3rS3cretPassw0rd"):
        assert secret not in err
    assert table.list_identities() == []


def test_argon2id_and_bcrypt_are_refused_with_a_true_hint_or_skipped(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    export = tmp_path / "passwd"
    export.write_text(MOSQUITTO_FILE + f"new-1:{ARGON2ID}\nweb-bc:{BCRYPT}\n")
    code, _, err = run("devices", "import", str(export), "--format", "mosquitto")
    assert code == 2 and "line 3: argon2id hash" in err and "line 4: bcrypt hash" in err
    assert "cannot verify it" in err and "--skip-unsupported" in err
    assert "mosquitto_passwd -U" not in err  # the old, wrong hint
    assert ARGON2ID.split("$")[4] not in err and "R9h/cIPz" not in err
    code, out, err = run(
        "devices", "import", str(export), "--format", "mosquitto", "--apply", "--skip-unsupported"
    )
    assert code == 0 and "imported 2 identities" in out
    assert "2 entries skipped" in err and "line 3: new-1 (argon2id)" in err
    # web-… is no device name (browser users' namespace), so the name is withheld: a field
    # that is not a valid name could be a secret in a swapped column
    assert "line 4: (its name field is not a valid name: not shown) (bcrypt)" in err
    assert "web-bc" not in err
    assert sorted(r.username for r in table.list_identities()) == ["dev6", "dev7"]
    assert authorize(run, "dev7", PASSWORDS["dev7"].decode())[0] == 0


def test_a_large_dry_run_reads_in_batches(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = tmp_path / "passwd"
    export.write_text(mosquitto_lines(450))
    calls: dict[str, int] = {}
    real = DynamoDBStore._call

    def counting(self: DynamoDBStore, operation: str, **kwargs: object) -> object:
        calls[operation] = calls.get(operation, 0) + 1
        return real(self, operation, **kwargs)

    monkeypatch.setattr(DynamoDBStore, "_call", counting)
    code, out, err = run("devices", "import", str(export), "--format", "mosquitto")
    assert code == 0 and "dry run: 450 identities would be imported" in out
    assert "get_item" not in calls  # no read per id
    assert "reading the table: 900/900" in err and "checking: 450/450" in err


def _cli(*argv: str) -> subprocess.Popen[str]:
    code = "import sys; from iotauth.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_process_stopped_mid_apply_rolls_back_every_write(
    run: Run, table: DynamoDBStore, tmp_path: Path, sig: signal.Signals
) -> None:
    """A real `iotauth devices import --apply` with 16 writes in flight, stopped by a signal
    once it has written some: it waits for the writes in flight and removes all it wrote."""
    assert run("devices", "add", "bystander")[0] == 0  # not this run's: must stay
    export = tmp_path / "passwd"
    export.write_text(mosquitto_lines(3000))
    proc = _cli("devices", "import", str(export), "--format", "mosquitto", "--apply")
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    while True:
        line = lines.get(timeout=120)
        seen.append(line)
        if line.startswith("importing: "):  # some are written (a line every 150)
            break
    proc.send_signal(sig)
    assert proc.wait(timeout=300) == 128 + sig
    proc.stdout.close()  # type: ignore[union-attr]
    while True:
        try:
            seen.append(lines.get(timeout=5))
        except queue.Empty:
            break
    err = "".join(seen)
    assert "import interrupted after" in err
    assert "rolled back: the" in err and "nothing was written" in err, err
    assert [r.username for r in table.list_identities()] == ["bystander"]
    items = table.client.scan(TableName=table.table)["Items"]
    keys = sorted(
        i["pk"]["S"] for i in items if i["pk"]["S"].startswith(("identity#", "clientid#"))
    )
    assert keys == ["clientid#bystander", "identity#bystander"]
