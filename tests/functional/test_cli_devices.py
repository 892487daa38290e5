"""`iotauth devices …` and `iotauth authorize` against a moto DynamoDB table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iotauth.cli import main
from iotauth.identities.credentials import is_generated_shape
from iotauth.identities.store import DynamoDBStore
from iotauth.wire import aliyun
from tests.cli_support import Run, cli_runner


@pytest.fixture
def run(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.setenv("IOTAUTH_TABLE", "iotauth-cli")

    return cli_runner(monkeypatch, capsys)


def authorize(run: Run, username: str, password: str, *argv: str) -> tuple[int, str, str]:
    """`iotauth authorize` with the password piped in, as a user does it."""
    return run(
        "authorize", "--username", username, "--password-stdin", *argv, stdin=password.encode()
    )


@pytest.fixture
def table(run: Run) -> DynamoDBStore:
    code, _, _ = run("devices", "create-table")
    assert code == 0
    return DynamoDBStore("iotauth-cli")


def test_create_table_schema(run: Run, table: DynamoDBStore) -> None:
    description = table.client.describe_table(TableName="iotauth-cli")["Table"]
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = table.client.describe_time_to_live(TableName="iotauth-cli")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}
    code, _, err = run("devices", "create-table")
    assert code == 2 and "already exists" in err


def test_add_prints_secret_once_and_it_authorizes(run: Run, table: DynamoDBStore) -> None:
    code, out, err = run("devices", "add", "alice", "--subscribe", "broadcast/news")
    assert code == 0
    secret = out.strip()
    assert is_generated_shape(secret.encode()) and "shown only this once" in err
    code, out, _ = authorize(run, "alice", secret)
    assert code == 0
    response = json.loads(out)
    assert response["isAuthenticated"] is True
    assert any("broadcast/news" in d for d in response["policyDocuments"])
    code, out, _ = run("devices", "list")
    assert "alice" in out and secret not in out
    code, out, _ = authorize(run, "alice", secret, "--client-id", "bob")
    assert code == 1 and json.loads(out) == {"isAuthenticated": False}


def test_chosen_password(run: Run, table: DynamoDBStore) -> None:
    code, out, _ = run("devices", "add", "carol", "--password-stdin", stdin=b"a long passphrase\n")
    assert code == 0 and out == ""
    record = table.get_identity("carol")
    assert record is not None and record.kind == "password"
    code, _, _ = authorize(run, "carol", "a long passphrase")
    assert code == 0
    code, _, _ = authorize(run, "carol", "a long passphrase\n")  # one newline is dropped
    assert code == 0


def test_authorize_reads_the_password_from_the_environment(
    run: Run, table: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("devices", "add", "carol", "--password-stdin", stdin=b"a long passphrase")
    monkeypatch.setenv("IOTAUTH_PASSWORD", "a long passphrase")
    assert run("authorize", "--username", "carol")[0] == 0
    monkeypatch.setenv("IOTAUTH_PASSWORD", "a long passphrase\n")  # taken as it is
    assert run("authorize", "--username", "carol")[0] == 1
    monkeypatch.delenv("IOTAUTH_PASSWORD")
    code, out, err = run("authorize", "--username", "carol")
    assert code == 2 and out == "" and "--password-stdin" in err


@pytest.mark.parametrize(
    "argv",
    [
        ("devices", "add", "carol", "--password", "a long passphrase"),
        ("devices", "add", "carol", "--secret", "a long passphrase"),
        ("devices", "rotate", "carol", "--password", "a long passphrase"),
        ("devices", "rotate", "carol", "--device-secret", "a long passphrase"),
        ("devices", "add-aliyun", "--product-key", "pk", "--device-name", "d",
         "--device-secret", "a long passphrase"),
    ],
)  # fmt: skip
def test_devices_refuse_secrets_on_the_command_line(
    run: Run, table: DynamoDBStore, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run(*argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "shell history" in err and "a long passphrase" not in err
    assert table.list_identities() == []


def test_password_on_the_command_line_is_refused(
    run: Run, table: DynamoDBStore, capsys: pytest.CaptureFixture[str]
) -> None:
    run("devices", "add", "carol", "--password-stdin", stdin=b"a long passphrase")
    with pytest.raises(SystemExit) as exc:
        run("authorize", "--username", "carol", "--password", "a long passphrase")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "shell history" in err and "--password-stdin" in err
    assert "a long passphrase" not in err


def test_generated_secret_restored_only_with_secret_stdin(run: Run, table: DynamoDBStore) -> None:
    secret = "iotsk_" + "r" * 43
    code, out, _ = run("devices", "add", "moved", "--secret-stdin", stdin=secret.encode())
    assert code == 0 and out == ""
    record = table.get_identity("moved")
    assert record is not None and record.kind == "secret"
    assert authorize(run, "moved", secret)[0] == 0


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (("devices", "add", "web-alice"), b"", "reserved"),
        (("devices", "add", "al/ice"), b"", "a name is"),
        (("devices", "add", "alice", "--client-id", "alice*"), b"", "client id"),
        (("devices", "add", "alice", "--client-id", "#"), b"", "client id"),
        (("devices", "add", "alice", "--publish", "*"), b"", "every topic"),
        (("devices", "add", "alice", "--refresh-after", "10"), b"", "300-86400"),
        (("devices", "add", "alice", "--password-stdin"), b"short", "at least"),
        (("devices", "add", "alice", "--password-stdin"), b"", "no password"),
        # A chosen password may not look generated: the authorizer would not lock it out.
        (("devices", "add", "alice", "--password-stdin"), b"iotsk_" + b"A" * 43, "--secret-stdin"),
        (("devices", "add", "alice", "--password-stdin"), b"iotsk_short-but-12", "iotsk_"),
        (("devices", "add", "alice", "--secret-stdin"), b"a chosen passphrase", "generated"),
        (
            (
                "devices",
                "add",
                "alice",
                *[a for i in range(120) for a in ("--subscribe", f"b/{i:03d}/{'x' * 200}")],
            ),
            b"",
            "policy documents",
        ),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    run: Run, table: DynamoDBStore, argv: tuple[str, ...], stdin: bytes, message: str
) -> None:
    code, out, err = run(*argv, stdin=stdin)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("iotauth: error:") and message in err
    assert out == ""
    assert table.list_identities() == []


def test_duplicate_and_missing(run: Run, table: DynamoDBStore) -> None:
    assert run("devices", "add", "alice")[0] == 0
    code, _, err = run("devices", "add", "alice")
    assert code == 2 and "already exists" in err
    for action in ("disable", "enable", "rotate", "remove"):
        code, _, err = run("devices", action, "nobody")
        assert code == 2 and "no identity" in err


def test_missing_table(run: Run) -> None:
    code, _, err = run("devices", "add", "alice")
    assert code == 2 and "does not exist" in err
    code, _, err = run("devices", "list", "--table", "other")
    assert code == 2 and "does not exist" in err


def test_no_table_configured(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTAUTH_TABLE")
    code, _, err = run("devices", "list")
    assert code == 2 and "IOTAUTH_TABLE" in err


def test_disable_enable_rotate_remove(run: Run, table: DynamoDBStore) -> None:
    secret = run("devices", "add", "alice")[1].strip()
    # Closing live connections is tested in test_cli_revocation.py.
    assert run("devices", "disable", "alice", "--no-disconnect")[0] == 0
    assert authorize(run, "alice", secret)[0] == 1
    assert run("devices", "enable", "alice")[0] == 0
    assert authorize(run, "alice", secret)[0] == 0
    code, out, _ = run("devices", "rotate", "alice", "--no-disconnect")
    new_secret = out.strip()
    assert code == 0 and is_generated_shape(new_secret.encode()) and new_secret != secret
    assert authorize(run, "alice", secret)[0] == 1
    assert authorize(run, "alice", new_secret)[0] == 0
    code, out, _ = run(
        "devices",
        "rotate",
        "alice",
        "--no-disconnect",
        "--password-stdin",
        stdin=b"now a passphrase",
    )
    assert code == 0 and out == ""
    assert authorize(run, "alice", "now a passphrase")[0] == 0
    assert run("devices", "remove", "alice", "--no-disconnect")[0] == 0
    assert table.get_identity("alice") is None


def test_enable_lifts_lockout(run: Run, table: DynamoDBStore) -> None:
    run("devices", "add", "alice", "--password-stdin", stdin=b"the right passphrase")
    for _ in range(5):
        authorize(run, "alice", "a wrong passphrase")
    assert authorize(run, "alice", "the right passphrase")[0] == 1  # locked
    run("devices", "enable", "alice")
    assert authorize(run, "alice", "the right passphrase")[0] == 0


def test_guesses_never_lock_out_a_generated_secret(run: Run, table: DynamoDBStore) -> None:
    secret = run("devices", "add", "bob")[1].strip()
    for _ in range(6):
        authorize(run, "bob", "a wrong passphrase")
        authorize(run, "bob", "iotsk_" + "Z" * 43)
    assert authorize(run, "bob", secret)[0] == 0


def test_add_aliyun(run: Run, table: DynamoDBStore) -> None:
    code, out, _ = run(
        "devices",
        "add-aliyun",
        "--product-key",
        "pk1",
        "--device-name",
        "sensor1",
        "--device-secret-stdin",
        stdin=b"dev-secret\n",
    )
    assert code == 0 and out == ""
    record = table.get_identity("sensor1&pk1")
    assert record is not None and record.device_secret == "dev-secret"
    code, out, _ = run("devices", "list", "--json")
    listed: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert listed[0]["username"] == "sensor1&pk1" and "dev-secret" not in out
    import time

    timestamp = str(int(time.time() * 1000))
    password = aliyun.sign(
        "dev-secret",
        client_id="pk1&sensor1",
        device_name="sensor1",
        product_key="pk1",
        timestamp=timestamp,
    )
    client_id = f"pk1&sensor1|securemode=2,signmethod=hmacsha1,timestamp={timestamp}|"
    code, out, _ = authorize(run, "sensor1&pk1", password, "--client-id", client_id)
    assert code == 0, out
    code, _, err = run(
        "devices",
        "add-aliyun",
        "--product-key",
        "p-k",
        "--device-name",
        "x",
        "--device-secret-stdin",
        stdin=b"s",
    )
    assert code == 2 and "deviceName&productKey" in err


def test_aws_errors_are_one_line(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No credentials anywhere (and no instance metadata): botocore raises at call time.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for argv in (("devices", "create-table"), ("devices", "list")):
        capsys.readouterr()
        code = main([*argv, "--table", "t"])
        out, err = capsys.readouterr()
        assert code == 3, argv  # EXIT_AWS: not the user's input
        assert err.count("\n") == 1 and err.startswith("iotauth: error:"), err
        assert out == ""


def test_region_from_aws_region(
    run: Run, monkeypatch: pytest.MonkeyPatch, table: DynamoDBStore
) -> None:
    # AWS_REGION (what Lambda and AWS CLI v2 set) is enough; botocore reads only the other.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code, out, err = run("devices", "list", "--json")
    assert code == 0, err
    assert out == ""  # JSON Lines: no identity, no line
