"""`iotauth devices add/add-aliyun/list` and the identity rules (issues 9.2-9.4, 8.3),
against the moto server, as an operator types them."""

from __future__ import annotations

import json

import pytest

from tests.cli_support import Run, cli_runner


@pytest.fixture
def run(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.setenv("IOTAUTH_TABLE", "iotauth-identity-cli")
    monkeypatch.delenv("IOTAUTH_SHARED_TOPIC_ROOTS", raising=False)

    call = cli_runner(monkeypatch, capsys)
    code, _, err = call("devices", "create-table")
    assert code == 0, err
    return call


def listed(run: Run) -> dict[str, dict[str, object]]:
    code, out, _ = run("devices", "list", "--json")
    assert code == 0
    return {v["username"]: v for v in map(json.loads, out.splitlines())}  # JSON Lines


def test_client_id_of_another_identity_is_refused(run: Run) -> None:
    assert run("devices", "add", "sensor-1")[0] == 0
    code, out, err = run("devices", "add", "sensor-2", "--client-id", "sensor-1")
    assert code == 2 and "'sensor-1' is already bound to identity 'sensor-1'" in err
    assert out == ""  # no secret printed for a refused identity
    assert "sensor-2" not in listed(run)


@pytest.mark.parametrize(
    "argv",
    [
        ("--subscribe", "**"),
        ("--subscribe", "+/#"),
        ("--publish", "$aws/things/x/shadow/update"),
        ("--subscribe", "chat/#"),
        ("--subscribe", "web-alice/#"),
    ],
)
def test_broad_grants_need_allow_broad_which_is_loud_and_listed(
    run: Run, argv: tuple[str, str]
) -> None:
    code, _, err = run("devices", "add", "wide-1", *argv)
    assert code == 2 and "--allow-broad" in err
    assert "wide-1" not in listed(run)
    code, _, err = run("devices", "add", "wide-1", *argv, "--allow-broad")
    assert code == 0 and "WARNING (--allow-broad)" in err
    assert listed(run)["wide-1"]["allowBroad"] is True
    _, out, _ = run("devices", "list")
    assert "ALLOW-BROAD" in next(line for line in out.splitlines() if "wide-1" in line)


def test_names_and_grants_cannot_pair_in_either_order(run: Run) -> None:
    assert run("devices", "add", "reader", "--subscribe", "target/#")[0] == 0
    code, _, err = run("devices", "add", "target")  # named like an existing grant
    assert code == 2 and "'reader' has grant 'target/#'" in err
    assert run("devices", "add", "owner")[0] == 0
    code, _, err = run("devices", "add", "spy", "--subscribe", "owner/#")  # grant into a name
    assert code == 2 and "another identity (owner/…)" in err


def test_shared_roots_are_reserved(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run("devices", "add", "chat", "--allow-broad")
    assert code == 2 and "shared topic root" in err
    monkeypatch.setenv("IOTAUTH_SHARED_TOPIC_ROOTS", "chat,plaza")
    code, _, err = run("devices", "add", "plaza")
    assert code == 2 and "shared topic root" in err
    assert run("devices", "add", "roomie", "--room", "plaza/main")[0] == 0
    assert listed(run)["roomie"]["rooms"] == ["plaza/main"]
    code, _, err = run("devices", "add", "roomie2", "--room", "elsewhere/main")
    assert code == 2 and "shared root" in err


def test_add_aliyun_any_client_id_and_form(run: Run) -> None:
    code, _, err = run(
        "devices",
        "add-aliyun",
        "--product-key",
        "pk9",
        "--device-name",
        "dev9",
        "--device-secret-stdin",
        "--any-client-id",
        "--client-id-form",
        "linkkit",
        stdin=b"s3cret",
    )
    assert code == 0, err
    view = listed(run)["dev9&pk9"]
    assert view["anyClientId"] is True and view["clientIdForm"] == "linkkit"
    _, out, _ = run("devices", "list")
    assert "(any it signs)" in out
    code, _, err = run(
        "devices",
        "add-aliyun",
        "--product-key",
        "pk9",
        "--device-name",
        "dev10",
        "--device-secret-stdin",
        "--client-id-form",
        "securemode=2,signmethod={signmethod}",
        stdin=b"s3cret",
    )
    assert code == 2 and "securemode={securemode}" in err
