"""No error of `devices import` (or of `devices add` reading a secret) prints a field of the
export that could be a secret (issue 16, item 10): with swapped columns the "name" is a
password, and it must not land in a terminal or a CI log. Errors say the line and what is
wrong, naming fields; names are printed only where they are the table's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotauth.identities.store import DynamoDBStore
from tests.functional.test_cli_devices import Run

pytest_plugins = ["tests.functional.test_cli_devices"]

# Passwords that are also valid names: read from a "name" column they pass every name rule.
PASSWORD_1 = "Tr0ub4dor-and-3"
PASSWORD_2 = "correct.horse.battery"
HEADER = "name,hash,secret,publish,subscribe,client_ids\n"


def _everything(*outputs: tuple[int, str, str]) -> str:
    return "\n".join(out + err for _, out, err in outputs)


def test_swapped_columns_clashing_on_a_registered_client_id(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    assert run("devices", "add", "owner", "--client-id", "gateway-7")[0] == 0
    export = tmp_path / "swapped.csv"  # name and secret swapped by the exporter
    export.write_text(HEADER + f"{PASSWORD_1},,the-real-username,,,gateway-7\n")
    result = run("devices", "import", str(export), "--format", "csv")
    assert result[0] == 2
    text = _everything(result)
    assert "row 2" in text and "client" in text and "'owner'" in text  # the table's name
    assert PASSWORD_1 not in text and "the-real-username" not in text


def test_swapped_columns_clashing_with_each_other(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    export = tmp_path / "swapped.csv"
    export.write_text(
        HEADER
        + f"{PASSWORD_1},,first-real-username,,,shared-id\n"
        + f"{PASSWORD_2},,second-real-username,,,shared-id\n"
    )
    for extra in ((), ("--json",), ("--apply",)):
        result = run("devices", "import", str(export), "--format", "csv", *extra)
        assert result[0] == 2
        text = _everything(result)
        assert "row 2" in text or "row 3" in text
        assert PASSWORD_1 not in text and PASSWORD_2 not in text and "shared-id" not in text
    assert table.list_identities() == []


def test_pairings_and_allow_broad_warnings_quote_no_entry(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    export = tmp_path / "pairs.csv"
    export.write_text(
        HEADER
        + f"{PASSWORD_1},,a long passphrase 1,,{PASSWORD_2}/#,\n"
        + f"{PASSWORD_2},,a long passphrase 2,,,\n"
    )
    refused = run("devices", "import", str(export), "--format", "csv")
    assert refused[0] == 2 and "row 2" in refused[2]
    warned = run("devices", "import", str(export), "--format", "csv", "--allow-broad")
    assert warned[0] == 0 and "WARNING" in warned[2]
    # The dry run lists what it would import (that is its purpose); its warnings do not.
    warnings = "\n".join(line for line in warned[2].splitlines() if "WARNING" in line)
    assert "row 2" in warnings
    for text in (_everything(refused), warnings):
        assert PASSWORD_1 not in text and PASSWORD_2 not in text


def test_a_short_name_is_never_quoted_in_a_parse_error(
    run: Run, table: DynamoDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTAUTH_SHARED_TOPIC_ROOTS", "pw")
    export = tmp_path / "short.json"
    export.write_text(json.dumps([{"name": "pw", "secret": "a long passphrase"}]))
    code, out, err = run("devices", "import", str(export), "--format", "json")
    assert code == 2 and "entry 1" in err
    assert "'pw'" not in out + err


def test_skipped_unsupported_entries_show_only_names_that_can_be_names(
    run: Run, table: DynamoDBStore, tmp_path: Path
) -> None:
    argon = "$argon2id$v=19$m=47104,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    passwd = tmp_path / "passwd"
    passwd.write_text(f"my secret pw!:{argon}\nalice:{argon}\n")
    for extra in ((), ("--json",)):
        result = run(
            "devices", "import", str(passwd), "--format", "mosquitto", "--skip-unsupported", *extra
        )
        assert result[0] == 0
        text = _everything(result)
        assert "my secret pw!" not in text and "line 1" in text
        assert "alice" in text  # a valid name: shown, so its user can be given a new one


@pytest.mark.parametrize(
    "stdin",
    [b"a weak chosen secret", b"iotsk_too-short", b"iotsk_" + b"A" * 44, b"iotsk_" + b"!" * 43],
)
def test_devices_add_secret_stdin_errors_quote_no_input(
    run: Run, table: DynamoDBStore, stdin: bytes
) -> None:
    for flag in ("--secret-stdin", "--password-stdin"):
        code, out, err = run("devices", "add", f"dev{flag}", flag, stdin=stdin)
        assert code in (0, 2)
        value = stdin.decode()
        assert value not in out + err and value[6:] not in out + err
