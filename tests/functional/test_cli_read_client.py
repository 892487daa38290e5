"""`iotauth devices list` on the project's standard-library AWS client
(:func:`iotauth.identities.paging.wire_store`), differential-tested against botocore's path
on the same moto table: the same rows, tokens, counts, messages and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iotauth.cli.devices import listing
from iotauth.identities.paging import wire_store
from iotauth.identities.store import DynamoDBStore
from tests.functional.test_cli_devices import Run, authorize

pytest_plugins = ["tests.functional.test_cli_devices"]

ROOT = Path(__file__).resolve().parents[2]


def _both(run: Run, monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[object, object]:
    """``argv`` through the standard-library client, then through botocore."""
    wire = run(*argv)
    with monkeypatch.context() as patch:
        patch.setattr(listing, "wire_store", lambda *a, **k: None)
        boto = run(*argv)
    return wire, boto


def test_list_reads_the_same_through_either_client(
    run: Run, table: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(7):
        assert run("devices", "add", f"dev-{i}", "--subscribe", "broadcast/news")[0] == 0
    table.client.update_item(  # disabled (`devices disable` would also close its sessions)
        TableName=table.table,
        Key={"pk": {"S": "identity#dev-3"}},
        UpdateExpression="SET #s = :d",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":d": {"S": "disabled"}},
    )
    for _ in range(6):  # dev-5 locked out
        authorize(run, "dev-5", "a wrong password")
    assert isinstance(wire_store(table.table), DynamoDBStore)  # this environment: the wire
    seen: dict[tuple[str, ...], object] = {}
    for argv in (
        ("devices", "list"),
        ("devices", "list", "--json"),
        ("devices", "list", "--limit", "3"),
        ("devices", "list", "--status", "locked", "--json"),
        ("devices", "list", "--status", "disabled"),
        ("devices", "list", "--prefix", "dev-1"),
        ("devices", "list", "--count"),
        ("devices", "list", "--count", "--status", "active", "--json"),
        ("devices", "list", "--next", "bm90LWEtdG9rZW4"),
    ):
        wire, boto = _both(run, monkeypatch, *argv)
        assert wire == boto, argv
        seen[argv[2:]] = wire
    assert '"username": "dev-5"' in seen[("--status", "locked", "--json")][1]  # type: ignore[index]
    assert seen[("--count",)] == (0, "7\n", "")
    assert "dev-3" in seen[("--status", "disabled")][1]  # type: ignore[index]
    _, _, err = run("devices", "list", "--limit", "3")
    token = err.split("--next ")[1].split()[0]
    wire, boto = _both(run, monkeypatch, "devices", "list", "--next", token, "--json")
    assert wire == boto and wire[0] == 0  # type: ignore[index]


def test_failures_read_the_same_through_either_client(
    run: Run, table: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire, boto = _both(run, monkeypatch, "devices", "list", "--table", "no-such-table")
    assert wire == boto == (2, "", "iotauth: error: table 'no-such-table' does not exist\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    wire, boto = _both(run, monkeypatch, "devices", "list")
    expected = "iotauth: error: DynamoDB scan failed: EndpointConnectionError\n"
    assert wire == boto == (3, "", expected)


def test_list_does_not_import_boto3(table: DynamoDBStore) -> None:
    code = (
        "import sys; from iotauth.cli import main; rc = main(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'urllib3')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "devices", "list", "--limit", "5", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "IOTAUTH_TABLE": table.table},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_botocore_reads_whenever_the_environment_does_not_say_it_all(
    tmp_path: Path,
) -> None:
    base = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": os.devnull,
    }
    local = {**base, "AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
    assert wire_store("t", env=base) is not None  # the region's own https endpoint
    assert wire_store("t", env=local) is not None
    assert wire_store("t", env={**local, "AWS_CA_BUNDLE": "/ca.pem"}) is not None  # no TLS
    assert wire_store("t", env={**local, "HTTPS_PROXY": "http://proxy:3128"}) is not None
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    assert wire_store("t", env={**base, "AWS_CONFIG_FILE": str(config)}) is not None
    region_only = {k: v for k, v in base.items() if k != "AWS_REGION"}
    assert wire_store("t", env=region_only, region="us-east-2") is not None  # --region
    config.write_text("[default]\nendpoint_url = http://127.0.0.1:8000\n")
    refused = [
        ({**base, "AWS_PROFILE": "sso-admin"}, None),
        ({**base, "AWS_DEFAULT_PROFILE": "old"}, None),
        (base, "sso-admin"),  # --profile
        ({k: v for k, v in base.items() if k != "AWS_SECRET_ACCESS_KEY"}, None),
        ({k: v for k, v in base.items() if not k.startswith("AWS_ACCESS")}, None),  # IMDS …
        (region_only, None),  # the region may be in a profile
        ({**base, "AWS_CA_BUNDLE": "/ca.pem"}, None),
        ({**base, "HTTPS_PROXY": "http://proxy:3128"}, None),
        ({**base, "AWS_CONFIG_FILE": str(config)}, None),
        ({**base, "AWS_USE_DUALSTACK_ENDPOINT": "true"}, None),
        ({**base, "AWS_CONFIG_FILE": str(tmp_path)}, None),  # unreadable: a directory
    ]
    for env, profile in refused:
        assert wire_store("t", env=env, profile=profile) is None, (env, profile)
